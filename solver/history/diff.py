"""``history diff``: per step of two build records, which input changed (command, env, a parent, the base image, context files)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from solver.history.record import BuildRecord, StepRecord


@dataclass(frozen=True)
class Change:
    kind: str  # command | env | args | parent | base-image | files | step-added | step-removed | op | ...
    message: str
    old: Any = None
    new: Any = None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()


@dataclass
class StepDiff:
    name: str  # the newer build's step name (the older one's for a removed step)
    old: StepRecord | None
    new: StepRecord | None
    changes: list[Change] = field(default_factory=list)


@dataclass
class RecordDiff:
    old: BuildRecord
    new: BuildRecord
    build: list[Change] = field(default_factory=list)  # args, target, platform, sources
    steps: list[StepDiff] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"--- {self.old.ref}  {self.old.name}", f"+++ {self.new.ref}  {self.new.name}"]
        out += [f"build: {c.message}" for c in self.build]
        for step in self.steps:
            out.append(f"step {step.name}")
            out += [f"  {c.message}" for c in step.changes]
        if not self.build and not self.steps:
            out.append("no step changed")
        return out


def _command(plain: dict[str, Any]) -> str | None:
    if "args" in plain:
        return " ".join(plain["args"])
    if "actions" in plain:
        return "; ".join(str(a) for a in plain["actions"])
    return None


def _image_digest(plain: dict[str, Any]) -> str | None:
    source = plain.get("source") or ""
    return source.rpartition("@")[2] if source.startswith("docker-image://") and "@" in source else None


def _env_map(env: list[str] | None) -> dict[str, str]:
    return dict(e.split("=", 1) if "=" in e else (e, "") for e in env or [])


def _mapping_changes(kind: str, old: dict[str, str], new: dict[str, str]) -> list[Change]:
    parts = []
    for key in sorted(set(old) | set(new)):
        if key not in old:
            parts.append(f"+{key}={new[key]}")
        elif key not in new:
            parts.append(f"-{key}={old[key]}")
        elif old[key] != new[key]:
            parts.append(f"{key}: {old[key]} → {new[key]}")
    return [Change(kind, f"{kind} changed: {', '.join(parts)}", old, new)] if parts else []


def _file_change(label: str, old: dict[str, str] | None, new: dict[str, str] | None) -> Change | None:
    old, new = old or {}, new or {}
    added = tuple(sorted(set(new) - set(old)))
    removed = tuple(sorted(set(old) - set(new)))
    changed = tuple(sorted(p for p in set(old) & set(new) if old[p] != new[p]))
    if not (added or removed or changed):
        return None
    parts = [f"{sign}{p}" for sign, paths in (("+", added), ("-", removed), ("~", changed)) for p in paths]
    return Change("files", f"context files changed ({label}): {' '.join(parts)}",
                  added=added, removed=removed, changed=changed)


def _dep_changes(old: StepRecord, new: StepRecord, names: dict[str, str]) -> list[Change]:
    changes = []
    old_deps, new_deps = old.key_inputs.get("deps", []), new.key_inputs.get("deps", [])
    for i, dep in enumerate(new_deps):
        label = names.get(new.parents[i], f"input {i}") if i < len(new.parents) else f"input {i}"
        prev = old_deps[i] if i < len(old_deps) else None
        if prev is None:
            changes.append(Change("parent", f"parent added: {label}"))
        elif dep.get("checksum") is not None or prev.get("checksum") is not None:
            if dep.get("checksum") != prev.get("checksum"):
                found = _file_change(label, prev.get("files"), dep.get("files"))
                changes.append(found or Change("files", f"selected files changed ({label})"))
        elif dep.get("input_key") != prev.get("input_key") or dep.get("selector") != prev.get("selector"):
            changes.append(Change("parent", f"parent changed: {label}", prev.get("input_key"), dep.get("input_key")))
    if len(old_deps) > len(new_deps):
        changes.append(Change("parent", f"{len(old_deps) - len(new_deps)} input(s) removed"))
    return changes


def step_changes(old: StepRecord, new: StepRecord, names: dict[str, str]) -> list[Change]:
    """Which inputs of a step differ between two builds (none when its digest is the same)."""
    po, pn = old.key_inputs.get("plaintext", {}), new.key_inputs.get("plaintext", {})
    changes: list[Change] = []
    io, inew = _image_digest(po), _image_digest(pn)
    if (io or inew) and io != inew:
        changes.append(Change("base-image", f"base image digest changed: {io} → {inew}", io, inew))
    elif po.get("source") != pn.get("source"):
        changes.append(Change("source", f"source changed: {po.get('source')} → {pn.get('source')}"))
    co, cn = _command(po), _command(pn)
    if co != cn:
        changes.append(Change("command", f"command changed: {co} → {cn}", co, cn))
    changes += _mapping_changes("env", _env_map(po.get("env")), _env_map(pn.get("env")))
    for name in ("cwd", "user", "network", "security", "mounts"):
        if po.get(name) != pn.get(name):
            changes.append(Change(name, f"{name} changed: {po.get(name)} → {pn.get(name)}", po.get(name), pn.get(name)))
    changes += _dep_changes(old, new, names)
    if not changes and old.digest != new.digest:
        changes.append(Change("op", "operation changed"))
    return changes


def _key(step: StepRecord) -> str:
    return step.place or step.name


def diff(old: BuildRecord, new: BuildRecord) -> RecordDiff:
    """The steps of ``new`` whose inputs differ from the same step (by place, else name) of ``old``."""
    out = RecordDiff(old, new)
    out.build += _mapping_changes("args", old.args, new.args)
    for name in ("target", "platform"):
        if getattr(old, name) != getattr(new, name):
            out.build.append(Change(name, f"{name} changed: {getattr(old, name)} → {getattr(new, name)}"))
    names = {s.digest: s.name for s in [*old.steps, *new.steps]}
    before = {_key(s): s for s in old.steps if s.kind != "local"}
    matched: set[str] = set()
    for step in new.steps:
        if step.kind == "local":
            continue  # context transfers: their file changes show on the steps that read them
        prev = before.get(_key(step))
        if prev is None:
            out.steps.append(StepDiff(step.name, None, step, [Change("step-added", "new step")]))
            continue
        matched.add(_key(step))
        if prev.digest != step.digest:
            out.steps.append(StepDiff(step.name, prev, step, step_changes(prev, step, names)))
    for key, prev in before.items():
        if key not in matched:
            out.steps.append(StepDiff(prev.name, prev, None, [Change("step-removed", "step removed")]))
    return out
