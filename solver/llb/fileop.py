"""File actions and the file op (Go's `client/llb/fileop.go`).

A chain such as `mkdir("/a", 0o755).mkfile("/a/b", 0o644, b"hi")` becomes one FileOp.
Action input indexes follow Go's `getIndex`: an index below len(op.inputs) is an op input,
`len(inputs)+k` is the result of action k, -1 is scratch; only the last action has output 0.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field, replace
from typing import Sequence, Union

from solver.errors import LLBookError
from solver.llb import gopath, pb
from solver.llb.stateref import StateRef
from solver.llb.vertex import MarshalContext, OpOptions, Output, Vertex


Timestamp = Union[int, _dt.datetime, None]  # unix nanoseconds or a datetime; None means unset (-1)


@dataclass(frozen=True)
class UserSpec:
    """A user or group by numeric ID or by name (looked up in the target's /etc/passwd|group)."""

    uid: int = 0
    name: str = ""

    def to_pb(self, base: int) -> pb.UserOpt:
        if self.name:
            return pb.UserOpt(user=pb.NamedUserOpt(name=self.name, input=base))
        return pb.UserOpt(user=self.uid)


@dataclass(frozen=True)
class Chown:
    """Owner of created files (Go's `ChownOpt`)."""

    user: UserSpec | None = None
    group: UserSpec | None = None

    @classmethod
    def parse(cls, spec: str) -> Chown:
        """`user[:group]`, numeric or by name, as Go's `WithUser`."""
        parts = spec.split(":", 1)
        user = _user_spec(parts[0])
        group = _user_spec(parts[1]) if len(parts) > 1 else None
        return cls(user, group)

    def to_pb(self, base: int) -> pb.ChownOpt:
        return pb.ChownOpt(user=self.user.to_pb(base) if self.user else None,
                           group=self.group.to_pb(base) if self.group else None)


def _user_spec(text: str) -> UserSpec:
    if text == "root":
        return UserSpec(uid=0)
    try:
        value = int(text, 10)
    except ValueError:
        return UserSpec(name=text)
    if not -(2**31) <= value < 2**31:
        return UserSpec(name=text)
    return UserSpec(uid=value)


Owner = Union[str, Chown, tuple[int, int], None]


def _chown(owner: Owner) -> Chown | None:
    if owner is None or isinstance(owner, Chown):
        return owner
    if isinstance(owner, str):
        return Chown.parse(owner)
    uid, gid = owner
    return Chown(UserSpec(uid=uid), UserSpec(uid=gid))


def _timestamp(value: Timestamp) -> int:
    """Go's `marshalTime`: -1 when unset, else unix nanoseconds."""
    if value is None:
        return -1
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        delta = value - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
        return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    return int(value)


def normalize_path(parent: str, p: str, keep_slash: bool) -> str:
    """Go's `normalizePath`: resolve against the state's dir; optionally keep a trailing / or /."""
    orig = p
    p = gopath.clean(p)
    if not gopath.is_abs(p):
        p = gopath.join("/", parent, p)
    if keep_slash:
        if orig.endswith("/") and not p.endswith("/"):
            p += "/"
        elif orig.endswith("/."):
            if p != "/":
                p += "/"
            p += "."
    return p


# ----------------------------------------------------------------- sub-actions


@dataclass(frozen=True)
class MkdirAction:
    path: str
    mode: int
    make_parents: bool = False
    owner: Chown | None = None
    created: Timestamp = None

    def to_pb(self, parent: str, base: int) -> pb.FileActionMkDir:
        return pb.FileActionMkDir(path=normalize_path(parent, self.path, False), mode=self.mode & 0o777,
                                  make_parents=self.make_parents,
                                  owner=self.owner.to_pb(base) if self.owner else None,
                                  timestamp=_timestamp(self.created))


@dataclass(frozen=True)
class MkfileAction:
    path: str
    mode: int
    data: bytes
    owner: Chown | None = None
    created: Timestamp = None

    def to_pb(self, parent: str, base: int) -> pb.FileActionMkFile:
        return pb.FileActionMkFile(path=normalize_path(parent, self.path, False), mode=self.mode & 0o777,
                                   data=self.data, owner=self.owner.to_pb(base) if self.owner else None,
                                   timestamp=_timestamp(self.created))


@dataclass(frozen=True)
class RmAction:
    path: str
    allow_not_found: bool = False
    allow_wildcard: bool = False

    def to_pb(self, parent: str, _base: int) -> pb.FileActionRm:
        return pb.FileActionRm(path=normalize_path(parent, self.path, False),
                               allow_not_found=self.allow_not_found, allow_wildcard=self.allow_wildcard)


@dataclass(frozen=True)
class SymlinkAction:
    oldpath: str
    newpath: str
    owner: Chown | None = None
    created: Timestamp = None

    def to_pb(self, _parent: str, base: int) -> pb.FileActionSymlink:
        # Go passes both paths through unchanged.
        return pb.FileActionSymlink(oldpath=self.oldpath, newpath=self.newpath,
                                    owner=self.owner.to_pb(base) if self.owner else None,
                                    timestamp=_timestamp(self.created))


@dataclass(frozen=True)
class CopyAction:
    """Copy `src` of `source` (a State or an action chain with a state) to `dest`."""

    source: object  # StateRef | FileActionWithState
    src: str
    dest: str
    mode: int | str | None = None
    follow_symlinks: bool = False
    copy_dir_contents: bool = False
    include_patterns: tuple[str, ...] = ()
    exclude_patterns: tuple[str, ...] = ()
    required_paths: tuple[str, ...] = ()
    attempt_unpack: bool = False
    create_dest_path: bool = False
    allow_wildcard: bool = False
    allow_empty_wildcard: bool = False
    owner: Chown | None = None
    created: Timestamp = None
    always_replace_existing_dest_paths: bool = False

    def source_dir(self) -> str:
        """The working directory of the copy source (relative `src` is resolved against it)."""
        if isinstance(self.source, FileActionWithState):
            return self.source.action.state.cwd if self.source.action.state is not None else "/"
        return getattr(self.source, "cwd", "/")

    def source_path(self) -> str:
        p = gopath.clean(self.src)
        return gopath.join(self.source_dir() if not gopath.is_abs(p) else "/", p)

    def to_pb(self, parent: str, base: int) -> pb.FileActionCopy:
        c = pb.FileActionCopy(
            src=self.source_path(), dest=normalize_path(parent, self.dest, True),
            owner=self.owner.to_pb(base) if self.owner else None,
            include_patterns=list(self.include_patterns), exclude_patterns=list(self.exclude_patterns),
            required_paths=list(self.required_paths), allow_wildcard=self.allow_wildcard,
            allow_empty_wildcard=self.allow_empty_wildcard, follow_symlink=self.follow_symlinks,
            dir_copy_contents=self.copy_dir_contents, attempt_unpack_docker_compatibility=self.attempt_unpack,
            create_dest_path=self.create_dest_path, timestamp=_timestamp(self.created),
            always_replace_existing_dest_paths=self.always_replace_existing_dest_paths)
        if self.mode is None:
            c.mode = -1
        elif isinstance(self.mode, str):
            c.mode_str = self.mode
        else:
            c.mode = self.mode
        return c


SubAction = Union[MkdirAction, MkfileAction, RmAction, SymlinkAction, CopyAction]


# ----------------------------------------------------------------- the chain


@dataclass(frozen=True, eq=False)
class FileAction:
    """An immutable chain of file actions; each method returns a longer chain."""

    action: SubAction
    prev: FileAction | None = None
    state: StateRef | None = None  # set when the chain is bound to the state it works on

    def mkdir(self, path: str, mode: int = 0o755, *, make_parents: bool = False, owner: Owner = None,
              created: Timestamp = None) -> FileAction:
        return FileAction(MkdirAction(path, mode, make_parents, _chown(owner), created), self)

    def mkfile(self, path: str, mode: int = 0o644, data: bytes | str = b"", *, owner: Owner = None,
               created: Timestamp = None) -> FileAction:
        raw = data.encode() if isinstance(data, str) else bytes(data)
        return FileAction(MkfileAction(path, mode, raw, _chown(owner), created), self)

    def rm(self, path: str, *, allow_not_found: bool = False, allow_wildcard: bool = False) -> FileAction:
        return FileAction(RmAction(path, allow_not_found, allow_wildcard), self)

    def symlink(self, oldpath: str, newpath: str, *, owner: Owner = None, created: Timestamp = None) -> FileAction:
        return FileAction(SymlinkAction(oldpath, newpath, _chown(owner), created), self)

    def copy(self, source: StateRef | FileActionWithState, src: str, dest: str, **options: object) -> FileAction:
        return replace(copy(source, src, dest, **options), prev=self)  # type: ignore[arg-type]

    def bind(self, state: StateRef) -> FileAction:
        """The same chain with every action working on `state` (Go's `bind`)."""
        prev = self.prev.bind(state) if self.prev is not None else None
        return FileAction(self.action, prev, state)

    def with_state(self, state: StateRef) -> FileActionWithState:
        """Use this chain, run on `state`, as the source of a copy."""
        return FileActionWithState(self.bind(state))

    def chain(self) -> list[FileAction]:
        """Actions from first to last."""
        out: list[FileAction] = []
        node: FileAction | None = self
        while node is not None:
            out.append(node)
            node = node.prev
        return out[::-1]

    def all_outputs(self, seen: list[Output]) -> list[Output]:
        """The outputs this chain reads, in Go's `allOutputs` order (last action first)."""
        node: FileAction | None = self
        while node is not None:
            _add_output(seen, node.state.output if node.state is not None else None)
            if isinstance(node.action, CopyAction):
                source = node.action.source
                if isinstance(source, FileActionWithState):
                    source.action.all_outputs(seen)
                else:
                    _add_output(seen, getattr(source, "output", None))
            node = node.prev
        return seen


def _add_output(seen: list[Output], out: Output | None) -> None:
    if out is not None and out not in seen:
        seen.append(out)


@dataclass(frozen=True, eq=False)
class FileActionWithState:
    """A bound action chain used as a copy source."""

    action: FileAction


def mkdir(path: str, mode: int = 0o755, *, make_parents: bool = False, owner: Owner = None,
          created: Timestamp = None) -> FileAction:
    """Create a directory."""
    return FileAction(MkdirAction(path, mode, make_parents, _chown(owner), created))


def mkfile(path: str, mode: int = 0o644, data: bytes | str = b"", *, owner: Owner = None,
           created: Timestamp = None) -> FileAction:
    """Create a file with `data`."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    return FileAction(MkfileAction(path, mode, raw, _chown(owner), created))


def rm(path: str, *, allow_not_found: bool = False, allow_wildcard: bool = False) -> FileAction:
    """Remove a path."""
    return FileAction(RmAction(path, allow_not_found, allow_wildcard))


def symlink(oldpath: str, newpath: str, *, owner: Owner = None, created: Timestamp = None) -> FileAction:
    """Create `newpath` pointing at `oldpath`."""
    return FileAction(SymlinkAction(oldpath, newpath, _chown(owner), created))


def copy(source: StateRef | FileActionWithState, src: str, dest: str, *, mode: int | str | None = None,
         follow_symlinks: bool = False, copy_dir_contents: bool = False,
         include_patterns: Sequence[str] = (), exclude_patterns: Sequence[str] = (),
         required_paths: Sequence[str] = (), attempt_unpack: bool = False, create_dest_path: bool = False,
         allow_wildcard: bool = False, allow_empty_wildcard: bool = False, owner: Owner = None,
         created: Timestamp = None, always_replace_existing_dest_paths: bool = False) -> FileAction:
    """Copy `src` from `source` to `dest`; `mode` is an int (chmod) or a string such as "u+x"."""
    if not isinstance(source, FileActionWithState) and not hasattr(source, "output"):
        raise LLBookError(f"invalid input type {type(source).__name__} for copy")
    return FileAction(CopyAction(
        source, src, dest, mode, follow_symlinks, copy_dir_contents, tuple(include_patterns),
        tuple(exclude_patterns), tuple(required_paths), attempt_unpack, create_dest_path, allow_wildcard,
        allow_empty_wildcard, _chown(owner), created, always_replace_existing_dest_paths))


# ----------------------------------------------------------------- the op


@dataclass
class _ActionState:
    """Go's `fileActionState` during marshal."""

    fa: FileAction
    base: int = -1
    input: int = -1
    input_relative: int | None = None
    input2: int = -1
    input2_relative: int | None = None
    target: int = 0


@dataclass
class _MarshalState:
    """Go's `marshalState`: op inputs and actions collected from the chain."""

    ctx: MarshalContext
    inputs: list[pb.Input] = field(default_factory=list)
    actions: list[_ActionState] = field(default_factory=list)
    visited: dict[int, _ActionState] = field(default_factory=dict)

    def add_input(self, out: Output) -> int:
        inp = self.ctx.to_input(out)
        for i, existing in enumerate(self.inputs):
            if existing == inp:
                return i
        self.inputs.append(inp)
        return len(self.inputs) - 1

    def add(self, fa: FileAction) -> _ActionState:
        """Register `fa` after its predecessors and copy sources (iterating the chain)."""
        for node in fa.chain():
            if id(node) not in self.visited:
                self._add_one(node)
        return self.visited[id(fa)]

    def _add_one(self, fa: FileAction) -> None:
        st = _ActionState(fa)
        source = fa.state.output if fa.state is not None else None
        if source is not None:
            st.base = self.add_input(source)
        if fa.prev is None:
            st.input = st.base
        else:
            st.input_relative = self.visited[id(fa.prev)].target
        if isinstance(fa.action, CopyAction):
            src = fa.action.source
            if isinstance(src, FileActionWithState):
                st.input2_relative = self.add(src.action).target
            else:
                out = getattr(src, "output", None)
                if out is not None:
                    st.input2 = self.add_input(out)
        st.target = len(self.actions)
        self.visited[id(fa)] = st
        self.actions.append(st)


def _index(value: int, n_inputs: int, relative: int | None) -> int:
    """Go's `getIndex`."""
    return n_inputs + relative if relative is not None else value


@dataclass(eq=False, repr=False)
class FileVertex(Vertex):
    """A file op: a bound action chain."""

    action: FileAction
    options: OpOptions = field(default_factory=OpOptions)

    def inputs(self) -> list[Output]:
        return self.action.all_outputs([])

    def build_op(self, ctx: MarshalContext) -> tuple[pb.Op, pb.OpMetadata]:
        # Go records only file.base: its per-action cap loop runs before any action is added.
        op, md = ctx.base_op(self.options.with_caps("file.base"))
        op.platform = None
        ms = _MarshalState(ctx)
        ms.add(self.action)
        op.inputs = ms.inputs
        fo = pb.FileOp()
        n = len(ms.inputs)
        for i, st in enumerate(ms.actions):
            parent = st.fa.state.cwd if st.fa.state is not None else ""
            fo.actions.append(pb.FileAction(
                input=_index(st.input, n, st.input_relative),
                secondary_input=_index(st.input2, n, st.input2_relative),
                output=0 if i + 1 == len(ms.actions) else pb.SKIP_OUTPUT,
                action=st.fa.action.to_pb(parent, st.base)))
        op.op = fo
        return op, md
