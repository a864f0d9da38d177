"""Executing FileOp actions (copy, mkfile, mkdir, rm, symlink) on real directories.

Two entry points:

- ``apply_action(action, dest_root, src_root, *, user_lookup_root=...)`` runs one action:
  ``dest_root`` is the writable directory it changes (the action's ``input``, already
  copied), ``src_root`` the read-only directory a copy reads from (its
  ``secondary_input``), ``user_lookup_root`` the directory whose ``/etc/passwd`` and
  ``/etc/group`` resolve owner names.
- ``run_file_actions(actions, inputs, make_output_dir)`` runs a whole FileOp with
  BuildKit's index rules (``solver/llbsolver/ops/file.go``, ``FileOpSolver``): an index
  below ``len(inputs)`` is an op input, ``len(inputs) + k`` is the result of action
  ``k``, ``-1`` is scratch; the action with ``output = i`` gives output ``i``.

Action semantics follow BuildKit's ``solver/llbsolver/file/backend.go``; the copy
engine is in ``fileops_copy`` (over ``fileops_paths``, ``fileops_mode``, ``fileops_attrs``
and ``fileops_primitives``), ADD's archive unpacking in ``fileops_unpack``, owner
names in ``usermap``. All paths are resolved inside their root (see
``fileops_paths.root_path``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from solver.llb import gopath, pb
from solver.errors import FileOpError
from solver.solve.fileops_attrs import Owner, chown_path, mkdir_all, set_times, with_owner_access
from solver.solve.fileops_copy import DEFAULT_DIRECTORY_MODE, Copier, CopyOptions, copy_tree
from solver.solve.fileops_mode import ModeSet
from solver.solve.fileops_paths import clean_action_path, display_path, resolve_wildcards, root_path
from solver.solve.fileops_primitives import remove_all
from solver.solve.fileops_unpack import attempt_unpack
from solver.solve.usermap import OwnerRoots, chown_inputs, resolve_owner

__all__ = [
    "FileOpError",
    "FileOpPlan",
    "FileOpResult",
    "MakeOutputDir",
    "apply_action",
    "copy",
    "copy_options",
    "directory_factory",
    "mkdir",
    "mkfile",
    "plan_file_actions",
    "rm",
    "run_file_actions",
    "symlink",
]

ROOT_OWNER = Owner(0, 0)

MakeOutputDir = Callable[[Path | None], Path]
"""Returns a new writable directory holding a copy of the given one (empty for None)."""

AnyAction = pb.FileAction | pb.FileActionCopy | pb.FileActionMkFile | pb.FileActionMkDir | \
    pb.FileActionRm | pb.FileActionSymlink


def timestamp_ns(value: int) -> int | None:
    """BuildKit's ``timestampToTime``: -1 means "leave times alone", else unix nanoseconds."""
    return None if value == -1 else value


def _os_failure(op: str, shown: str, exc: OSError) -> FileOpError:
    return FileOpError(f"{op} {shown}: {exc.strerror or exc}", shown)


# ----------------------------------------------------------------- single actions


def mkdir(root: Path, action: pb.FileActionMkDir, owner: Owner | None) -> None:
    """Create ``action.path``; an existing entry is fine (as ``os.Mkdir``'s ErrExist)."""
    path = root_path(root, action.path)
    shown = gopath.join("/", action.path)
    mode = action.mode & 0o777
    ts = timestamp_ns(action.timestamp)
    try:
        if action.make_parents:
            # BuildKit leaves created parents with the mtime their children gave them;
            # re-timing them (as copies do) keeps a fixed timestamp reproducible.
            _retime_created_dirs(mkdir_all(path, mode, owner, ts), ts)
            return
        try:
            os.mkdir(path, mode)
        except FileExistsError:
            return
        os.chmod(path, with_owner_access(mode, True))
        chown_path(path, owner)
        set_times(path, ts)
    except OSError as exc:
        raise _os_failure("mkdir", shown, exc) from exc


def mkfile(root: Path, action: pb.FileActionMkFile, owner: Owner | None) -> None:
    """Write ``action.data`` to ``action.path``; an existing file keeps its mode, as
    ``os.WriteFile`` does."""
    shown = gopath.join("/", action.path)
    path = root_path(root, shown)
    mode = action.mode & 0o777
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        created = True
    except FileExistsError:
        created = False
        fd = _open_existing_for_write(path, shown)
    except OSError as exc:
        raise _os_failure("open", shown, exc) from exc
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(action.data)
        if created:
            os.chmod(path, with_owner_access(mode, False))
        chown_path(path, owner)
        set_times(path, timestamp_ns(action.timestamp))
    except OSError as exc:
        raise _os_failure("write", shown, exc) from exc


def _open_existing_for_write(path: Path, shown: str) -> int:
    try:
        return os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW)
    except OSError as exc:
        raise _os_failure("open", shown, exc) from exc


def rm(root: Path, action: pb.FileActionRm) -> None:
    """Remove ``action.path`` (and everything below it); wildcards when allowed."""
    if not action.allow_wildcard:
        _rm_path(root, action.path, action.allow_not_found)
        return
    for match in resolve_wildcards(root, clean_action_path(action.path), False):
        _rm_path(root, match, action.allow_not_found)


def _rm_path(root: Path, src: str, allow_not_found: bool) -> None:
    """BuildKit's ``rmPath``: the parent is resolved in the root, the entry itself is
    removed without following it."""
    shown = gopath.join("/", src)
    parent, base = gopath.split(shown)
    if base == "":
        raise FileOpError("rmPath: invalid empty path", shown)
    path = root_path(root, parent) / base
    if not allow_not_found and not _exists_in_root(root, path):
        raise FileOpError(f"stat {shown}: no such file or directory", shown)
    try:
        remove_all(path)
    except OSError as exc:
        raise _os_failure("remove", shown, exc) from exc


def _exists_in_root(root: Path, path: Path) -> bool:
    """``os.Stat`` succeeds, following a final symlink inside the root only."""
    if not os.path.islink(path):
        return os.path.lexists(path)
    return os.path.lexists(root_path(root, display_path(root, path)))


def symlink(root: Path, action: pb.FileActionSymlink, owner: Owner | None) -> None:
    """Create symlink ``newpath`` -> ``oldpath`` (the target is stored verbatim)."""
    shown = gopath.join("/", action.newpath)
    path = root_path(root, shown)
    try:
        os.symlink(action.oldpath, path)
        chown_path(path, owner)
        set_times(path, timestamp_ns(action.timestamp))
    except OSError as exc:
        raise _os_failure("symlink", shown, exc) from exc


def copy_options(action: pb.FileActionCopy, owner: Owner | None,
                 source_owner: Owner | None = None) -> CopyOptions:
    """The copier settings BuildKit's ``docopy`` derives from a copy action."""
    mode: int | None = None
    if not action.mode_str and action.mode != -1:
        mode = action.mode
    if action.mode_str:
        ModeSet.parse(action.mode_str)  # fail before touching anything
    return CopyOptions(
        owner=owner,
        source_owner=source_owner,
        mode=mode,
        mode_str=action.mode_str,
        timestamp_ns=timestamp_ns(action.timestamp),
        copy_dir_contents=action.dir_copy_contents,
        follow_links=action.follow_symlink,
        include_patterns=tuple(action.include_patterns),
        exclude_patterns=tuple(action.exclude_patterns),
        always_replace_existing_dest_paths=action.always_replace_existing_dest_paths,
    )


def copy(src_root: Path, dest_root: Path, action: pb.FileActionCopy, owner: Owner | None,
         source_owner: Owner | None = None) -> None:
    """BuildKit's ``docopy``: wildcards, ADD unpacking, then the fsutil copy per match.

    ``source_owner`` is the owner the source's entries count as (a local context's are
    0:0); archives unpacked by ADD keep their members' owners either way."""
    src_path = clean_action_path(action.src)
    dest_path = clean_action_path(action.dest)
    if not action.create_dest_path:
        _check_dest_parent(dest_root, action.dest)
    options = copy_options(action, owner, source_owner)
    matches = _copy_sources(src_root, src_path, action)
    included: list[str] = []
    for match in matches:
        if action.attempt_unpack_docker_compatibility and attempt_unpack(
                src_root, match, dest_root, dest_path, owner, options.timestamp_ns):
            included.append(gopath.join("/", match))
            continue
        included += _copy_one(src_root, dest_root, match, dest_path, options, bool(action.required_paths))
    _check_required_paths(action.required_paths, included)


def _copy_one(src_root: Path, dest_root: Path, src: str, dest: str, options: CopyOptions,
              track_included: bool) -> list[str]:
    """One fsutil ``Copy``; file system failures become ``FileOpError``s naming the path."""
    copier = Copier(src_root, dest_root, options, track_included=track_included)
    try:
        created = copier.copy(src, dest)
        _retime_created_dirs(created, options.timestamp_ns)
    except OSError as exc:
        where = str(exc.filename or "")
        shown = display_path(dest_root, where) if where.startswith(str(dest_root)) \
            else display_path(src_root, where)
        raise FileOpError(f"failed to copy {gopath.join('/', src)} to {dest}: {shown}: "
                          f"{exc.strerror or exc}", shown) from exc
    return copier.included


def _check_dest_parent(dest_root: Path, dest: str) -> None:
    path = root_path(dest_root, gopath.join("/", dest))
    if not os.path.lexists(path.parent):
        raise FileOpError(f"failed to stat {dest}: no such file or directory", dest)


def _copy_sources(src_root: Path, src_path: str, action: pb.FileActionCopy) -> list[str]:
    if not action.allow_wildcard:
        return [src_path]
    matches = resolve_wildcards(src_root, src_path, action.follow_symlink)
    if not matches and not action.allow_empty_wildcard:
        raise FileOpError(f'"{gopath.clean(src_path)}": not found', src_path)
    return matches


def _retime_created_dirs(created: list[Path], ts: int | None) -> None:
    """fsutil's ``fixCreatedParentDirs``: copying into new parents changed their mtime."""
    if ts is None:
        return
    for path in reversed(created):
        set_times(path, ts)


def _check_required_paths(required: Sequence[str], included: Sequence[str]) -> None:
    for path in required:
        if not any(p.startswith(path) for p in included):
            raise FileOpError(f'"{path}": not found', path)


def apply_action(action: AnyAction, dest_root: Path, src_root: Path | None = None, *,
                 user_lookup_root: Path | None = None, group_lookup_root: Path | None = None,
                 strict_users: bool = False, source_owner: Owner | None = None) -> None:
    """Run one FileOp action on ``dest_root`` (changed in place).

    ``action`` is a ``pb.FileAction`` or its inner ``FileActionCopy``/``MkFile``/``MkDir``/
    ``Rm``/``Symlink``. ``src_root`` is where a copy reads from (None: an empty
    directory, like BuildKit's scratch). Owner names are looked up in
    ``user_lookup_root`` (and ``group_lookup_root``, defaulting to the former).
    """
    inner = action.action if isinstance(action, pb.FileAction) else action
    dest_root = Path(dest_root)
    roots = OwnerRoots(user_lookup_root, group_lookup_root if group_lookup_root is not None
                       else user_lookup_root)
    if isinstance(inner, pb.FileActionRm):
        rm(dest_root, inner)
        return
    if not isinstance(inner, (pb.FileActionCopy, pb.FileActionMkFile, pb.FileActionMkDir,
                              pb.FileActionSymlink)):
        raise FileOpError(f"invalid action type {type(inner).__name__}")
    owner = resolve_owner(inner.owner, roots, strict=strict_users)
    if isinstance(inner, pb.FileActionMkDir):
        mkdir(dest_root, inner, owner)
    elif isinstance(inner, pb.FileActionMkFile):
        mkfile(dest_root, inner, owner)
    elif isinstance(inner, pb.FileActionSymlink):
        symlink(dest_root, inner, owner)
    elif src_root is not None:
        copy(Path(src_root), dest_root, inner, owner, source_owner)
    else:
        with tempfile.TemporaryDirectory(prefix="llbook-scratch-") as empty:
            copy(Path(empty), dest_root, inner, owner)


# ----------------------------------------------------------------- a whole FileOp


@dataclass
class FileOpResult:
    """Output directories by output index, and the other directories made on the way
    (results of actions that are not outputs), which the caller may delete."""

    outputs: list[Path]
    scratch: list[Path]


@dataclass
class FileOpPlan:
    """The checked shape of a FileOp: which action gives each output, and how often
    each index is read (an action result read once may be changed in place)."""

    n_inputs: int
    outputs: list[int]  # output i -> index (len(inputs) + action number)
    uses: dict[int, int]


def plan_file_actions(actions: Sequence[pb.FileAction], n_inputs: int) -> FileOpPlan:
    """Validate indexes as BuildKit's ``FileOpSolver.Solve`` does."""
    limit = n_inputs + len(actions)
    outputs: dict[int, int] = {}
    uses: dict[int, int] = {}
    for number, action in enumerate(actions):
        for idx in (action.input, action.secondary_input):
            if idx < -1 or idx >= limit:
                raise FileOpError(f"invalid input index {idx}, {limit} provided")
        for idx in _read_indexes(action):
            uses[idx] = uses.get(idx, 0) + 1
        if action.output != -1:
            if action.output in outputs:
                raise FileOpError(f"duplicate output {action.output}")
            outputs[action.output] = n_inputs + number
    if not outputs:
        raise FileOpError("no outputs specified")
    for i in range(len(outputs)):
        if i not in outputs:
            raise FileOpError(f"missing output index {i}")
    return FileOpPlan(n_inputs, [outputs[i] for i in range(len(outputs))], uses)


def _read_indexes(action: pb.FileAction) -> list[int]:
    """Every index an action reads: input, secondary input, owner-name inputs."""
    found = [action.input, action.secondary_input]
    owner = getattr(action.action, "owner", None)
    found += [i for i in chown_inputs(owner) if i is not None]
    return [i for i in found if i != -1]


@dataclass
class _Runner:
    actions: Sequence[pb.FileAction]
    inputs: Sequence[Path]
    make_output_dir: MakeOutputDir
    plan: FileOpPlan
    strict_users: bool
    root_owned_inputs: frozenset[int] = frozenset()
    results: dict[int, Path] = field(default_factory=dict)
    made: list[Path] = field(default_factory=list)
    in_progress: set[int] = field(default_factory=set)

    def result(self, idx: int) -> Path:
        """The directory holding index ``idx`` (computing action results on demand)."""
        if idx < self.plan.n_inputs:
            return Path(self.inputs[idx])
        if idx in self.results:
            return self.results[idx]
        if idx in self.in_progress:
            raise FileOpError(f"loop from index {idx}")
        self.in_progress.add(idx)
        number = idx - self.plan.n_inputs
        try:
            self.results[idx] = self._run(number, self.actions[number])
        except FileOpError as exc:
            raise exc.for_action(number) from exc
        finally:
            self.in_progress.discard(idx)
        return self.results[idx]

    def _new_dir(self, base: Path | None) -> Path:
        path = Path(self.make_output_dir(base))
        self.made.append(path)
        return path

    def _dest_for(self, idx: int) -> Path:
        """A writable directory starting as index ``idx`` (reused in place when only
        this action reads that action result)."""
        if idx == -1:
            return self._new_dir(None)
        base = self.result(idx)
        if idx >= self.plan.n_inputs and self.plan.uses.get(idx, 0) == 1 \
                and idx not in self.plan.outputs:
            return base
        return self._new_dir(base)

    def _owner_root(self, opt: pb.UserOpt | None) -> Path | None:
        if opt is None or not isinstance(opt.user, pb.NamedUserOpt):
            return None
        if opt.user.input < 0:
            raise FileOpError(f"invalid user index: {opt.user.input}")
        return self.result(opt.user.input)

    def _run(self, number: int, action: pb.FileAction) -> Path:
        inner = action.action
        owner = getattr(inner, "owner", None)
        user_root = self._owner_root(owner.user if owner else None)
        group_root = self._owner_root(owner.group if owner else None)
        src_root: Path | None = None
        if isinstance(inner, pb.FileActionCopy):
            src_root = self._new_dir(None) if action.secondary_input == -1 \
                else self.result(action.secondary_input)
        dest = self._dest_for(action.input)
        source_owner = ROOT_OWNER if action.secondary_input in self.root_owned_inputs else None
        apply_action(inner, dest, src_root, user_lookup_root=user_root,
                     group_lookup_root=group_root, strict_users=self.strict_users,
                     source_owner=source_owner)
        return dest


def run_file_actions(actions: Sequence[pb.FileAction], inputs: Sequence[Path],
                     make_output_dir: MakeOutputDir, *, strict_users: bool = False,
                     root_owned_inputs: frozenset[int] = frozenset()) -> FileOpResult:
    """Run a FileOp's actions and return its output directories.

    ``inputs`` are the op's input directories (read, never changed).
    ``make_output_dir(base)`` must return a new writable directory holding a copy of
    ``base`` (an empty one for None); ``fileops_copy.copy_tree`` makes such copies.
    Only actions that some output depends on are run. Errors are ``FileOpError``s
    labelled with the failing action's number; directories already made by
    ``make_output_dir`` then remain the caller's to delete. Entries of the inputs in
    ``root_owned_inputs`` count as owned by 0:0 (local contexts, whose owners BuildKit's
    client resets when it sends them).
    """
    plan = plan_file_actions(actions, len(inputs))
    runner = _Runner(actions, inputs, make_output_dir, plan, strict_users, root_owned_inputs)
    outputs = [runner.result(idx) for idx in plan.outputs]
    kept = set(outputs)
    return FileOpResult(outputs, [p for p in runner.made if p not in kept])


def directory_factory(workdir: Path) -> MakeOutputDir:
    """A ``make_output_dir`` that makes numbered full copies below ``workdir``."""
    workdir = Path(workdir)
    counter = iter(range(1 << 62))

    def make(base: Path | None) -> Path:
        path = workdir / f"out-{next(counter)}"
        while path.exists():
            path = workdir / f"out-{next(counter)}"
        path.mkdir(mode=DEFAULT_DIRECTORY_MODE, parents=True)
        if base is not None:
            copy_tree(Path(base), path)
        return path

    return make
