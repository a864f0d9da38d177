""""Why was this rebuilt?": compare a vertex's key inputs with the last build at its place.

The place of a vertex is a stable name for "the same step" across edits (e.g. the stage
and step number ``builder 2``), so that after a command is edited the previous build of
that step is found and the reason reads "command changed: old → new".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from solver.solve.cachekey import KeyInputs

NO_PREVIOUS = "no previous build"
NO_CACHE = "--no-cache"
IGNORE_CACHE = "cache disabled for this vertex"


@dataclass(frozen=True)
class Reason:
    kind: str  # no-previous | no-cache | command | env | parent | files | cwd | user | op
    message: str
    old: Any = None
    new: Any = None
    files: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "message": self.message}
        if self.old is not None:
            out["old"] = self.old
        if self.new is not None:
            out["new"] = self.new
        if self.files:
            out["files"] = list(self.files)
        return out


def _command(plain: dict[str, Any]) -> Any:
    if "args" in plain:
        return " ".join(plain["args"])
    if "actions" in plain:
        return "; ".join(plain["actions"])
    if "source" in plain:
        return plain.get("source_key") or plain["source"]
    return None


def _env_diff(old: list[str], new: list[str]) -> str:
    old_map = dict(e.split("=", 1) if "=" in e else (e, "") for e in old)
    new_map = dict(e.split("=", 1) if "=" in e else (e, "") for e in new)
    parts = []
    for k in sorted(set(old_map) | set(new_map)):
        if k not in old_map:
            parts.append(f"+{k}={new_map[k]}")
        elif k not in new_map:
            parts.append(f"-{k}")
        elif old_map[k] != new_map[k]:
            parts.append(f"{k}: {old_map[k]} → {new_map[k]}")
    return ", ".join(parts)


def changed_files(old: dict[str, str] | None, new: dict[str, str] | None) -> tuple[str, ...]:
    """Paths added, removed or with different content between two file-digest maps."""
    old = old or {}
    new = new or {}
    return tuple(sorted(p for p in set(old) | set(new) if old.get(p) != new.get(p)))


def _plaintext_reasons(old: dict[str, Any], new: dict[str, Any]) -> list[Reason]:
    reasons: list[Reason] = []
    old_cmd, new_cmd = _command(old), _command(new)
    if old_cmd != new_cmd:
        reasons.append(Reason("command", f"command changed: {old_cmd} → {new_cmd}", old_cmd, new_cmd))
    if old.get("env", []) != new.get("env", []):
        diff = _env_diff(old.get("env", []), new.get("env", []))
        reasons.append(Reason("env", f"env changed: {diff}", old.get("env"), new.get("env")))
    for name in ("cwd", "user", "network", "security", "mounts"):
        if old.get(name) != new.get(name):
            reasons.append(Reason(name, f"{name} changed: {old.get(name)} → {new.get(name)}",
                                  old.get(name), new.get(name)))
    return reasons


def _dep_reasons(old: KeyInputs, new: KeyInputs, input_names: list[str]) -> list[Reason]:
    reasons: list[Reason] = []
    for i, dep in enumerate(new.deps):
        label = f"input {i}: {input_names[i]}" if i < len(input_names) and input_names[i] else f"input {i}"
        prev = old.deps[i] if i < len(old.deps) else None
        if prev is None:
            reasons.append(Reason("parent", f"{label} is new"))
            continue
        if dep.checksum is not None or prev.checksum is not None:
            if dep.checksum != prev.checksum or dep.selector != prev.selector:
                files = changed_files(prev.files, dep.files)
                shown = ", ".join(files[:10]) + (" …" if len(files) > 10 else "")
                msg = f"files changed: {shown}" if files else f"selected files changed ({label})"
                reasons.append(Reason("files", msg, files=files))
        elif dep.input_key != prev.input_key or dep.selector != prev.selector:
            reasons.append(Reason("parent", f"parent changed ({label})",
                                  prev.input_key, dep.input_key))
    if len(old.deps) > len(new.deps):
        reasons.append(Reason("parent", "an input was removed"))
    return reasons


def explain(new: KeyInputs, old: KeyInputs | None, *, no_cache: bool = False,
            ignore_cache: bool = False, input_names: list[str] | None = None) -> list[Reason]:
    """Reasons why the vertex with key inputs ``new`` was executed."""
    if no_cache:
        return [Reason("no-cache", NO_CACHE)]
    if ignore_cache:
        return [Reason("no-cache", IGNORE_CACHE)]
    if old is None:
        return [Reason("no-previous", NO_PREVIOUS)]
    reasons = _plaintext_reasons(old.plaintext, new.plaintext)
    reasons += _dep_reasons(old, new, input_names or [])
    if not reasons and old.op_digest != new.op_digest:
        reasons.append(Reason("op", "operation changed", old.op_digest, new.op_digest))
    if not reasons:
        reasons.append(Reason("evicted", "same key as the previous build, whose result was pruned"))
    return reasons
