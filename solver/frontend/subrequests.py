"""BuildKit's frontend subrequests ``frontend.outline`` and ``frontend.targets``: their JSON and text.

The outline of a target (``dockerfile2llb/outline.go``): the build args its stages use
(the args the stage declares, the global args its FROM expands, what their defaults
expand, the same of its base stage and of the stages it copies or mounts from), with
the doc comment above each ARG (``# NAME text``), and the secrets and ssh ids its RUNs
mount. The targets list (``ListTargets``): every stage with its doc comment, base,
platform and location. ``print_outline``/``print_targets`` are BuildKit's printers
(Go's tabwriter), ``to_json`` its ``json.MarshalIndent``.
"""

from __future__ import annotations

import base64
import json
import posixpath
from dataclasses import dataclass, field
from typing import Any

from solver.frontend.build_setup import default_args, target_platform
from solver.frontend.checks.source_scan import comments_before
from solver.frontend.instructions import (ArgInstruction, EnvInstruction, FromInstruction, Instruction,
                                          RunInstruction, parse_instructions)
from solver.frontend.mounts import MountError, parse_mount
from solver.frontend.parser import parse_dockerfile
from solver.frontend.shell_words import Lexer, WordError
from solver.frontend.stages import Stage, build_graph, split_stages

OUTLINE_VERSION = "1.0.0"
TARGETS_VERSION = "1.0.0"


@dataclass
class _ArgInfo:
    key: str
    value: str | None
    description: str
    line: int
    end_line: int
    order: int  # position on its ARG line, for a stable sort
    deps: set[str] = field(default_factory=set)


@dataclass
class _MountInfo:
    required: bool
    line: int
    end_line: int


@dataclass
class _Capture:
    """``outlineCapture``: what one stage has seen (cloned from its base stage)."""

    all_args: dict[str, _ArgInfo] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    secrets: dict[str, _MountInfo] = field(default_factory=dict)
    ssh: dict[str, _MountInfo] = field(default_factory=dict)

    def clone(self) -> "_Capture":
        return _Capture(dict(self.all_args), set(self.used), dict(self.secrets), dict(self.ssh))

    def mark_all_used(self) -> None:
        todo = list(self.used)
        while todo:
            name = todo.pop()
            info = self.all_args.get(name)
            for dep in (info.deps if info else ()):
                if dep not in self.used:
                    self.used.add(dep)
                    todo.append(dep)


def _location(line: int, end_line: int) -> dict[str, Any]:
    """``pb.Location`` as Go's encoding/json writes it (zero fields omitted)."""
    return {"ranges": [{"start": {"line": line}, "end": {"line": end_line}}]}


def _doc_comment(comments: list[str], name: str) -> str:
    """``getDocComment``: the text after ``NAME `` of the first comment line that starts so."""
    if not name:
        return ""
    for line in comments:
        if line.startswith(name + " "):
            return line[len(name) + 1:]
    return ""


@dataclass
class _Walk:
    """The pieces of ``toDispatchState`` the outline needs."""

    text: str
    filename: str
    build_args: dict[str, str]
    lexer: Lexer
    comments: dict[int, list[str]]
    global_args: dict[str, str] = field(default_factory=dict)
    root: _Capture = field(default_factory=_Capture)
    captures: dict[int, _Capture] = field(default_factory=dict)

    def meta_args(self, meta: list[ArgInstruction]) -> None:
        """``buildMetaArgs``: global values, and each global arg's info with the args its default used."""
        for ins in meta:
            for order, arg in enumerate(ins.args):
                info = _ArgInfo(arg.key, None, _doc_comment(self.comments.get(ins.line, []), arg.key),
                                ins.line, ins.end_line, order)
                if arg.key in self.build_args:
                    info.value = self.build_args[arg.key]
                elif arg.value is not None:
                    info.value, matched = self._expand(arg.value, self.global_args, ins)
                    info.deps = set(matched) - {arg.key}
                    if arg.key in matched and arg.key in self.root.all_args:
                        info.deps |= self.root.all_args[arg.key].deps
                if info.value is not None:
                    self.global_args.pop(arg.key, None)
                    self.global_args[arg.key] = info.value
                self.root.all_args[arg.key] = info

    def _expand(self, word: str, env: dict[str, str], ins: Instruction) -> tuple[str, set[str]]:
        try:
            result, matched, _ = self.lexer.process_word_with_matches(word, env)
        except WordError as err:
            raise ins.error(str(err)) from None
        return result, matched

    def stage(self, stage: Stage) -> None:
        """Dispatch one stage's FROM, ARGs, ENVs and RUN mounts into its capture."""
        head = stage.from_instruction
        assert head is not None
        used = self._expand(head.base_name, self.global_args, head)[1]
        if head.platform:
            used |= self._expand(head.platform, self.global_args, head)[1]
        base = self.captures.get(stage.base.index) if stage.base is not None else None
        capture = (base or self.root).clone()
        capture.used |= used
        env: dict[str, str] = {}
        for ins in stage.instructions:
            if isinstance(ins, ArgInstruction):
                self._arg(capture, env, ins)
            elif isinstance(ins, EnvInstruction):
                for pair in ins.pairs:
                    env[pair.key] = self._expand(pair.value, env, ins)[0]
            elif isinstance(ins, RunInstruction):
                self._run_mounts(capture, env, ins)
        self.captures[stage.index] = capture

    def _arg(self, capture: _Capture, env: dict[str, str], ins: ArgInstruction) -> None:
        """``dispatchArg``: an arg inherited from the global scope keeps the global info."""
        for order, arg in enumerate(ins.args):
            has_value, value = arg.key in self.build_args, arg.value
            inherited = value is None and not has_value and arg.key in self.global_args
            if inherited:
                value = self.global_args[arg.key]
            elif has_value:
                value = self.build_args[arg.key]
            elif value is not None:
                value = self._expand(value, env, ins)[0]
            if value is not None:
                env[arg.key] = value
            if not inherited:
                capture.all_args[arg.key] = _ArgInfo(arg.key, value, _doc_comment(self.comments.get(ins.line, []),
                                                                                   arg.key),
                                                     ins.line, ins.end_line, order)
            capture.used.add(arg.key)

    def _run_mounts(self, capture: _Capture, env: dict[str, str], ins: RunInstruction) -> None:
        for raw in ins.mounts:
            try:
                mount = parse_mount(raw, lambda word: self._expand(word, env, ins)[0])
            except MountError as err:
                raise ins.error(str(err)) from None
            info = _MountInfo(mount.required, ins.line, ins.end_line)
            if mount.type == "secret":
                ident = mount.source or mount.id or posixpath.basename(mount.target)
                capture.secrets.setdefault(ident, info)
            elif mount.type == "ssh":
                capture.ssh.setdefault(mount.id or "default", info)


def _prepare(text: str, filename: str, build_args: dict[str, str], platform: Any,
             target: str | None) -> tuple[_Walk, list[ArgInstruction], list]:
    parsed = parse_dockerfile(text, filename)
    instructions = parse_instructions(parsed)
    meta, groups = split_stages(instructions, filename)
    walk = _Walk(text, filename, build_args, Lexer(escape_token=parsed.escape), comments_before(text, parsed))
    last = groups[-1][0]
    target_name = target or (last.stage_name if isinstance(last, FromInstruction) else "")
    walk.global_args = default_args(target_platform(platform), build_args, target_name)
    walk.meta_args(meta)
    return walk, meta, groups


def _sources(text: str) -> list[str]:
    return [base64.b64encode(text.encode("utf-8", "surrogateescape")).decode()]


def outline(text: str, *, filename: str = "Dockerfile", target: str | None = None,
            build_args: dict[str, str] | None = None, platform: Any = None) -> dict[str, Any]:
    """``Dockerfile2Outline``: the outline of the target stage, as BuildKit's JSON object."""
    walk, meta, groups = _prepare(text, filename, dict(build_args or {}), platform, target)
    graph = build_graph(meta, groups, walk.global_args, walk.lexer)
    chosen = graph.target(target, filename)
    for stage in graph.reachable(chosen):  # file order, so a base stage is dispatched first
        if not stage.implicit:
            walk.stage(stage)
    args, secrets, ssh = _collect(graph, chosen, walk)
    head = chosen.from_instruction
    out: dict[str, Any] = {}
    if chosen.name:
        out["name"] = chosen.name
    description = _doc_comment(walk.comments.get(head.line, []), chosen.name) if head else ""
    if description:
        out["description"] = description
    for key, items in (("args", args), ("secrets", secrets), ("ssh", ssh)):
        if items:
            out[key] = items
    out["sources"] = _sources(text)
    return out


def _collect(graph: Any, target: Stage, walk: _Walk) -> tuple[list, list, list]:
    """``ds.args/secrets/ssh(visited)``: the target's own, then its base's, then its dependencies'."""
    arg_seen: set[str] = set()
    secret_seen: set[str] = set()
    ssh_seen: set[str] = set()
    args: list[tuple[tuple[int, int], dict]] = []
    secrets: list[tuple[tuple[int, int], dict]] = []
    ssh: list[tuple[tuple[int, int], dict]] = []

    def visit(stage: Stage) -> None:
        capture = walk.captures.get(stage.index)
        if capture is None:
            return
        capture.mark_all_used()
        for name in sorted(capture.used):
            info = capture.all_args.get(name)
            if info is None or name in arg_seen:
                continue
            arg_seen.add(name)
            item: dict[str, Any] = {"name": info.key}
            if info.description:
                item["description"] = info.description
            if info.value:
                item["value"] = info.value
            item["location"] = _location(info.line, info.end_line)
            args.append(((info.line, info.order), item))
        for table, seen, out in ((capture.secrets, secret_seen, secrets), (capture.ssh, ssh_seen, ssh)):
            for name, mount in table.items():
                if name in seen:
                    continue
                seen.add(name)
                item = {"name": name}
                if mount.required:
                    item["required"] = True
                item["location"] = _location(mount.line, mount.end_line)
                out.append(((mount.line, 0), item))
        if stage.base is not None:
            visit(stage.base)
        for index in stage.deps:
            visit(graph.stages[index])

    visit(target)
    return ([i for _, i in sorted(args, key=lambda p: p[0])], [i for _, i in sorted(secrets, key=lambda p: p[0])],
            [i for _, i in sorted(ssh, key=lambda p: p[0])])


def targets(text: str, *, filename: str = "Dockerfile") -> dict[str, Any]:
    """``ListTargets``: every stage, the last one the default."""
    parsed = parse_dockerfile(text, filename)
    instructions = parse_instructions(parsed)
    _, groups = split_stages(instructions, filename)
    comments = comments_before(text, parsed)
    out = []
    for i, group in enumerate(groups):
        head = group[0]
        assert isinstance(head, FromInstruction)
        item: dict[str, Any] = {}
        if head.stage_name:
            item["name"] = head.stage_name
        if i == len(groups) - 1:
            item["default"] = True
        description = _doc_comment(comments.get(head.line, []), head.stage_name)
        if description:
            item["description"] = description
        if head.base_name:
            item["base"] = head.base_name
        if head.platform:
            item["platform"] = head.platform
        item["location"] = _location(head.line, head.end_line)
        out.append(item)
    return {"targets": out, "sources": _sources(text)}


_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def to_json(data: dict[str, Any]) -> str:
    """Go's ``json.MarshalIndent(v, "", "  ")``, with its HTML-safe escapes."""
    text = json.dumps(data, indent=2, ensure_ascii=False)
    return "".join(_GO_ESCAPES.get(ch, ch) for ch in text)


def _tabwrite(rows: list[list[str]], padding: int) -> str:
    """Go's ``tabwriter.NewWriter(w, 0, 0, padding, ' ', 0)`` for rows of equal length: every
    cell but the last of a row is padded to its column's width plus ``padding``."""
    widths = [max(len(row[c]) for row in rows) + padding for c in range(len(rows[0]) - 1)]
    return "".join("".join(cell.ljust(widths[c]) for c, cell in enumerate(row[:-1])) + row[-1] + "\n"
                   for row in rows)


def print_outline(data: dict[str, Any]) -> str:
    """``outline.PrintOutline``."""
    out = []
    name, description = data.get("name", ""), data.get("description", "")
    if name or description:
        rows = [["TARGET:", name or "(default)"]] + ([["DESCRIPTION:", description]] if description else [])
        out.append(_tabwrite(rows, 1) + "\n")
    if data.get("args"):
        rows = [["BUILD ARG", "VALUE", "DESCRIPTION"]]
        rows += [[a["name"], a.get("value", ""), a.get("description", "")] for a in data["args"]]
        out.append(_tabwrite(rows, 3) + "\n")
    for key, title in (("secrets", "SECRET"), ("ssh", "SSH")):
        if data.get(key):
            rows = [[title, "REQUIRED"]] + [[s["name"], "true" if s.get("required") else ""] for s in data[key]]
            out.append(_tabwrite(rows, 3) + "\n")
    return "".join(out)


def print_targets(data: dict[str, Any]) -> str:
    """``targets.PrintTargets``."""
    rows = [["TARGET", "DESCRIPTION"]]
    for target in data["targets"]:
        name = target.get("name", "")
        if not name and target.get("default"):
            name = "(default)"
        elif target.get("default"):
            name = f"{name} (default)"
        rows.append([name, target.get("description", "")])
    return _tabwrite(rows, 1)

