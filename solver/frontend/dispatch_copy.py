"""COPY and ADD → FileOp copy actions (BuildKit ``convert_copy.go``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from solver.frontend.dispatch_run import process_cmd_env, uppercase_cmd
from solver.frontend.dispatch_state import BuildState, StageState
from solver.frontend.instructions import CopyInstruction, SourceContent
from solver.frontend.paths import base as path_base
from solver.frontend.paths import contains_wildcards, normalize_path, relative_to_workdir
from solver.frontend.shell_words import Lexer
from solver.llb.fileop import Chown, FileAction, copy, mkfile
from solver.frontend.gitref import GitRef, GitRefError, parse_git_ref, ssh_keyscan
from solver.llb.sources import git, http
from solver.llb.state import State, merge, scratch

_SYMBOLIC_MODE = re.compile(r"^[ugoa]*(?:[-+=](?:[rwxXst]*|[ugo]))+(?:,[ugoa]*(?:[-+=](?:[rwxXst]*|[ugo]))+)*\Z")
_NUMERIC = re.compile(r"^[+-]?[0-9]+\Z")


@dataclass
class CopyPlan:
    """The expanded values of one COPY/ADD."""

    sources: list[str]
    contents: list[SourceContent]
    dest: str
    chown: str
    chmod: str
    mode: int | str | None
    excludes: list[str] = field(default_factory=list)
    checksum: str = ""


def parse_chmod(chmod: str) -> int | str | None:
    """Octal → int, symbolic (``u+x``) → str; raises ValueError like BuildKit."""
    if not chmod:
        return None
    bad = ValueError(f"invalid chmod parameter: '{chmod}'. it should be octal string and between 0 and 07777")
    if _NUMERIC.match(chmod):
        try:
            value = int(chmod, 8)
        except ValueError:
            raise bad from None
        if value < 0 or value > 0o7777:
            raise bad
        return value
    if not _SYMBOLIC_MODE.match(chmod):
        raise ValueError(f"invalid chmod parameter: '{chmod}'")
    return chmod


def is_http_source(src: str) -> bool:
    return (src.startswith("http://") or src.startswith("https://")) and parse_git_ref(src) is None


def _plan(build: BuildState, stage: StageState, ins: CopyInstruction) -> CopyPlan:
    lexer = build.lexer
    expand = lambda word: stage.expand(word, ins, lexer)  # noqa: E731
    chown = expand(ins.chown)
    chmod = expand(ins.chmod)
    try:
        mode = parse_chmod(chmod)
    except ValueError as err:
        raise ins.error(str(err)) from None
    raw_lexer = Lexer(escape_token="\\", skip_process_quotes=True)
    contents = [SourceContent(c.path, stage.expand(c.data, ins, raw_lexer) if c.expand else c.data, c.expand)
                for c in ins.contents]
    return CopyPlan([expand(s) for s in ins.sources], contents, expand(ins.dest), chown, chmod, mode,
                    list(ins.excludes), expand(ins.checksum))


def _check(ins: CopyInstruction, plan: CopyPlan) -> None:
    for src in plan.sources:  # a git URL with bad options fails here, naming the line
        try:
            parse_git_ref(src)
        except GitRefError as error:
            raise ins.error(str(error)) from None
    if plan.checksum:
        if not ins.is_add:
            raise ins.error("checksum can't be specified for COPY")
        if len(plan.sources) != 1:
            raise ins.error("checksum can't be specified for multiple sources")
        if not is_http_source(plan.sources[0]) and parse_git_ref(plan.sources[0]) is None:
            raise ins.error("checksum requires HTTP(S) or Git sources")
    for src in plan.sources:
        if parse_git_ref(src) is not None and not ins.is_add:
            raise ins.error("source can't be a git ref for COPY")
        if is_http_source(src) and not ins.is_add:
            raise ins.error("source can't be a URL for COPY")


def _commit_message(ins: CopyInstruction, plan: CopyPlan) -> str:
    parts = ["ADD" if ins.is_add else "COPY"]
    if ins.parents:
        parts.append("--parents")
    if plan.chown:
        parts.append("--chown=" + plan.chown)
    if plan.chmod:
        parts.append("--chmod=" + plan.chmod)
    parts.extend(plan.sources)
    parts.extend("<<" + c.path for c in plan.contents)
    parts.append(plan.dest)
    return " ".join(parts)


@dataclass
class _Chain:
    """Copy actions collected into one FileOp."""

    action: FileAction | None = None

    def add(self, source: State, src: str, dest: str, **options: Any) -> None:
        if self.action is None:
            self.action = copy(source, src, dest, **options)
        else:
            self.action = self.action.copy(source, src, dest, **options)


def _common(plan: CopyPlan, build: BuildState) -> dict[str, object]:
    options: dict[str, object] = {"mode": plan.mode, "create_dest_path": True,
                                  "created": build.timestamp if build.epoch is not None else None}
    if plan.chown:
        options["owner"] = Chown.parse(plan.chown)
    if plan.excludes:
        options["exclude_patterns"] = plan.excludes
    return options


def _http_copy(chain: _Chain, src: str, dest: str, ins: CopyInstruction, plan: CopyPlan, options: dict,
               name: str) -> None:
    filename = "__unnamed__"
    try:
        url_path = urlsplit(src).path
    except ValueError:
        url_path = ""
    candidate = path_base(url_path) if url_path else "."
    if candidate not in (".", "/"):
        filename = candidate
    state = http(src, filename=filename, checksum=plan.checksum or None, custom_name=name,
                 description={"com.docker.dockerfile.v1.command": ins.code})
    # docker build (BuildKit 0.8's dispatchCopyFileOp) gives a URL source no --chmod: the
    # file keeps the http source's 0600 (today's BuildKit applies it)
    options = {**options, "mode": None}
    chain.add(state, filename, dest, attempt_unpack=bool(ins.unpack), **options)


def _git_copy(chain: _Chain, ref: GitRef, dest: str, ins: CopyInstruction, plan: CopyPlan, options: dict,
              name: str) -> None:
    keep = ins.keep_git_dir
    if keep is not None and ref.keep_git_dir is not None and keep != ref.keep_git_dir:
        raise ins.error("inconsistent keep-git-dir configuration")
    if ref.keep_git_dir is not None:
        keep = ref.keep_git_dir
    if plan.checksum and ref.checksum and plan.checksum != ref.checksum:
        raise ins.error(f'checksum mismatch "{plan.checksum}" != "{ref.checksum}"')
    state = git(ref.remote, ref.ref, subdir=ref.subdir, keep_git_dir=bool(keep),
                checksum=ref.checksum or plan.checksum, skip_submodules=ref.submodules is False,
                host_key_scan=ssh_keyscan, fetch_by_commit=ref.fetch_by_commit, custom_name=name)
    chain.add(state, "/", dest, **options)


def _local_copy(chain: _Chain, source: State, src: str, dest: str, ins: CopyInstruction, options: dict) -> None:
    patterns: list[str] = []
    required: list[str] = []
    if ins.parents:
        parent, sep, pattern = src.partition("/./")
        if not sep:
            parent, pattern = "/", src
        pattern = normalize_path("/", pattern, False)
        patterns = [pattern.lstrip("/")]
        if not contains_wildcards(parent) and not contains_wildcards(pattern):
            required = [normalize_path("/", parent + "/" + pattern, False)]
        src = parent
    src = normalize_path("/", src, False)
    unpack = ins.is_add if ins.unpack is None else ins.unpack
    chain.add(source, src, dest, follow_symlinks=True, copy_dir_contents=True, include_patterns=patterns,
              required_paths=required, attempt_unpack=unpack, allow_wildcard=True, allow_empty_wildcard=True,
              **options)


def _inline_copy(chain: _Chain, content: SourceContent, dest: str, options: dict) -> None:
    state = scratch().file(mkfile(content.path, 0o644, content.data.encode("utf-8", "surrogateescape")),
                           custom_name="[internal] preparing inline document")
    chain.add(state, content.path, dest, **options)


def _record_context_paths(build: BuildState, ins: CopyInstruction, plan: CopyPlan, source: State | None) -> None:
    """Context paths this instruction reads (BuildKit skips only http(s) sources of ADD)."""
    if source is not None:
        return
    for src in plan.sources:
        if not (ins.is_add and src.startswith(("http://", "https://"))):
            build.ctx_paths.add(normalize_path("/", src, False))


def dispatch_copy(build: BuildState, stage: StageState, ins: CopyInstruction, source: State | None) -> list[str]:
    """Lower one COPY/ADD; ``source`` is the ``--from`` stage (None: the build context)."""
    plan = _plan(build, stage, ins)
    _check(ins, plan)
    dest = relative_to_workdir(stage.cwd, plan.dest)
    name_text = uppercase_cmd(process_cmd_env(build.lexer, ins.code, stage.env))
    name = stage.prefix(name_text)
    options = _common(plan, build)
    chain = _Chain()
    for src in plan.sources:
        git_ref = parse_git_ref(src)
        if git_ref is not None:
            _git_copy(chain, git_ref, dest, ins, plan, options, name)
        elif is_http_source(src):
            _http_copy(chain, src, dest, ins, plan, options, name)
        else:
            _local_copy(chain, source if source is not None else build.context, src, dest, ins, options)
    _record_context_paths(build, ins, plan, source)
    for content in plan.contents:
        _inline_copy(chain, content, dest, options)
    assert chain.action is not None
    names = [name]
    if ins.link and not plan.chmod:
        stage.cmd_index -= 1
        link_name = stage.prefix("LINK " + name_text)
        layer = scratch().file(chain.action, custom_name=name)
        merged = merge([stage.state, layer], custom_name=link_name)
        stage.state = stage.state.with_output(merged.output)
        names.append(link_name)
    else:
        stage.state = stage.state.file(chain.action, custom_name=name)
    stage.history(build, _commit_message(ins, plan), layer=True, buildkit_suffix=True)
    return names
