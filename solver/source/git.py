"""Git sources (``git://HOST/PATH#REF:SUBDIR``) fetched with the system ``git``, as BuildKit's
``source/git``.

- ``resolve``: the ref to a commit with ``ls-remote`` (a full commit SHA needs no network;
  no ref: the remote's default branch; fetch-by-commit: the checksum, trusted); a
  ``git.checksum`` must be a prefix of the commit (or of an annotated tag's commit). The
  cache key is the commit (``cache_key``, BuildKit's ``shaToCacheKey``: ``.git#REF`` with the
  .git dir kept, ``:SUBDIR``, ``(skip-submodules)``, ``(mtime=commit)``).
- ``checkout``: a shallow fetch of that commit into one bare repository per remote under
  ``CACHE/git/`` (made in a temp dir and renamed in, fetched under a per-remote lock;
  ``remove_bare_repos`` for ``prune --all``), then
  the tree into ``dest``: ``git checkout`` with a private index file, the subdir's entries
  moved up, or with ``keep_git_dir`` a fresh repository whose HEAD is the commit (origin
  the remote's URL), then ``submodule update --init --recursive --depth=1``. Files get
  git's modes under umask 022 and the checkout's mtimes (``mtime=commit``: the committer
  time), as BuildKit's checkout.
- Auth as BuildKit: the secrets ``GIT_AUTH_HEADER[.HOST]`` / ``GIT_AUTH_TOKEN[.HOST]`` as an
  ``http.<url>.extraheader`` (given through ``GIT_CONFIG_*``, never on a command line);
  ssh remotes through the forwarded agent (``SSH_AUTH_SOCK``) and ``git.knownsshhosts``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from solver.errors import GitSourceError

_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})\Z")
_HEX = re.compile(r"^[a-fA-F0-9]+\Z")
_DEFAULT_BRANCH = re.compile(r"ref: refs/heads/(\S+)\tHEAD")
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
               "http_proxy", "https_proxy", "no_proxy", "all_proxy")


@dataclass(frozen=True)
class GitSpec:
    """What a git source op asks for (its identifier and ``git.*`` attrs)."""

    remote: str  # the URL git fetches (git.fullurl)
    ref: str = ""
    subdir: str = ""
    keep_git_dir: bool = False
    skip_submodules: bool = False
    checksum: str = ""
    fetch_by_commit: bool = False  # trust the checksum as the commit: no ls-remote
    mtime: str = ""  # "" / "checkout" (the checkout's times) or "commit"
    known_hosts: str = ""
    ssh_socket: Path | None = None  # the forwarded agent for ssh remotes
    auth_header: str = ""  # the Authorization header value from the session's secrets

    @property
    def shown(self) -> str:
        """The remote without credentials, with its ref (for messages)."""
        text = redact(self.remote)
        return f"{text}#{self.ref}" if self.ref else text


@dataclass(frozen=True)
class Resolved:
    """A ref resolved on the remote: the ref git used and the object it names."""

    ref: str  # refs/heads/x, refs/tags/x or the commit SHA
    checksum: str  # the object the ref names (an annotated tag's own object)
    commit: str = ""  # an annotated tag's commit ("" otherwise)


@dataclass
class GitRunner:
    """Runs ``git`` with BuildKit's environment; stops on ``cancel``."""

    spec: GitSpec
    cancel: threading.Event | None = None
    known_hosts_file: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        ssh = "ssh -F /dev/null " + (f"-o UserKnownHostsFile={self.known_hosts_file}"
                                     if self.known_hosts_file else "-o StrictHostKeyChecking=no")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_TERMINAL_PROMPT": "0",
               "GIT_SSH_COMMAND": ssh, "LC_ALL": "C", "GIT_CONFIG_NOSYSTEM": "1",
               "HOME": os.devnull, "GIT_CONFIG_GLOBAL": os.devnull}
        env.update({k: os.environ[k] for k in _PROXY_VARS if k in os.environ})
        if self.spec.ssh_socket is not None:
            env["SSH_AUTH_SOCK"] = str(self.spec.ssh_socket)
        if self.spec.auth_header:
            env.update({"GIT_CONFIG_COUNT": "1",
                        "GIT_CONFIG_KEY_0": f"http.{token_scope(self.spec.remote)}.extraheader",
                        "GIT_CONFIG_VALUE_0": "Authorization: " + self.spec.auth_header})
        env.update(self.extra_env)
        return env

    def run(self, *args: str, git_dir: Path | None = None, work_tree: Path | None = None,
            cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
        """``git ARGS`` → stdout; a failure raises ``GitCommandError`` with git's stderr."""
        argv = ["git", "-c", "protocol.file.allow=user"]
        if work_tree is not None:
            argv += ["--work-tree", str(work_tree)]
        if git_dir is not None:
            argv += ["--git-dir", str(git_dir)]
        argv += list(args)
        full_env = {**self.env(), **(env or {})}
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=full_env, cwd=cwd, umask=0o022,
                                    start_new_session=True)
        except OSError as error:  # no git on PATH, an unusable cwd
            what = "the git command is not installed" if isinstance(error, FileNotFoundError) and \
                error.filename == "git" else f"cannot run git: {error.strerror}"
            raise _error(self.spec, what) from None
        try:
            out, err = _communicate(proc, self.cancel)
        except BaseException:
            _kill(proc)
            raise
        if proc.returncode != 0:
            raise GitCommandError(args[0], proc.returncode, err.decode("utf-8", "replace"))
        return out.decode("utf-8", "replace")


class GitCommandError(Exception):
    """One ``git`` command that failed (turned into a ``GitSourceError`` by the callers)."""

    def __init__(self, command: str, code: int, stderr: str) -> None:
        self.command, self.code, self.stderr = command, code, stderr
        super().__init__(f"git {command} failed (exit {code}): {last_line(stderr)}")


class Canceled(Exception):
    """The solve was canceled while git ran."""


def _communicate(proc: subprocess.Popen, cancel: threading.Event | None) -> tuple[bytes, bytes]:
    while True:
        try:
            return proc.communicate(timeout=0.2)
        except subprocess.TimeoutExpired:
            if cancel is not None and cancel.is_set():
                _kill(proc)
                raise Canceled("git canceled") from None


def _kill(proc: subprocess.Popen) -> None:
    """Kill git and the helpers it started (its process group)."""
    try:
        os.killpg(proc.pid, 9)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


_GENERIC = ("fatal: Could not read from remote repository.", "Please make sure you have the correct access rights",
            "and the repository exists.")


def last_line(text: str) -> str:
    """The line of git's stderr that says why (its last ``fatal:``, else its last line, git's
    generic "Could not read from remote repository" advice skipped), credentials redacted."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and line.strip() not in _GENERIC]
    fatal = [line for line in lines if line.startswith("fatal:")]
    return redact((fatal or lines)[-1]) if lines else ""


def redact(url: str) -> str:
    """``url`` without a password or token in its user info."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:xxxxx@{host}"))


def token_scope(remote: str) -> str:
    """The URL an auth header is scoped to (BuildKit's ``tokenScope``)."""
    for prefix in ("https://github.com/", "https://www.github.com/"):
        if remote.startswith(prefix):
            return prefix
    return remote


def auth_header(remote: str, header_secret: str, token_secret: str,
                read_secret: Callable[[str], bytes | None]) -> str:
    """The Authorization value from the first secret found, in BuildKit's order
    (``NAME.HOST`` before ``NAME``, a header before a token); "" when none is given."""
    host = _host(remote)
    names: list[tuple[str, bool]] = []
    for suffix in ("." + host, ""):
        if host or not suffix:
            if header_secret:
                names.append((header_secret + suffix, False))
            if token_secret:
                names.append((token_secret + suffix, True))
    for name, is_token in names:
        value = read_secret(name)
        if value is None:
            continue
        if is_token:
            return "basic " + base64.b64encode(b"x-access-token:" + value).decode()
        return value.decode("utf-8", "replace")
    return ""


def _host(remote: str) -> str:
    try:
        return urlsplit(remote).netloc.rsplit("@", 1)[-1] if "://" in remote else ""
    except ValueError:
        return ""


def is_commit_sha(text: str) -> bool:
    return bool(_SHA.match(text))


# ------------------------------------------------------------------------------ resolution


def resolve(spec: GitSpec, runner: GitRunner, seen: dict[tuple[str, str], Any] | None = None) -> Resolved:
    """The commit ``spec.ref`` names on the remote (``ls-remote``), checksum verified.
    ``seen`` keeps what the remote answered per ref, so the sources of one build that name
    the same remote and ref get one commit (BuildKit's resolver cache, keyed remote#ref)."""
    if spec.checksum and not _HEX.match(spec.checksum):
        raise _error(spec, f"invalid checksum {spec.checksum} for Git URL, expected hex commit hash")
    if spec.ref.startswith("-"):
        raise _error(spec, f"invalid git ref {spec.ref!r}")
    if is_commit_sha(spec.ref):
        if spec.checksum and not spec.ref.startswith(spec.checksum):
            raise _mismatch(spec, spec.ref)
        return Resolved(spec.ref, spec.ref)
    if spec.fetch_by_commit:
        return _by_commit(spec)
    seen = {} if seen is None else seen
    key = (f"{spec.remote}#{spec.ref}", "git-ls-remote")
    if key not in seen:
        ref = spec.ref or default_branch(spec, runner)
        try:
            out = runner.run("ls-remote", "--", spec.remote, ref, ref + "^{}")
        except GitCommandError as error:
            raise _error(spec, f"failed to fetch remote {redact(spec.remote)}: "
                               f"{last_line(error.stderr)}") from None
        seen[key] = ref + "\0" + out
    ref, _, out = seen[key].partition("\0")
    return _pick(spec, ref, out)


def _by_commit(spec: GitSpec) -> Resolved:
    """BuildKit's fetch-by-commit: the checksum is the commit; an unqualified ref is a branch."""
    if not spec.checksum:
        raise _error(spec, "fetch-by-commit requires a checksum or a commit SHA ref")
    if not is_commit_sha(spec.checksum):
        raise _error(spec, f"fetch-by-commit requires a full commit SHA checksum, got {spec.checksum!r}")
    ref = spec.ref if not spec.ref or spec.ref.startswith("refs/") else "refs/heads/" + spec.ref
    return Resolved(ref or spec.checksum, spec.checksum)


def _pick(spec: GitSpec, ref: str, out: str) -> Resolved:
    """BuildKit's choice among ls-remote's lines: exact ref, branch, then tag."""
    bare = ref.removeprefix("refs/")
    partial, head = "refs/" + bare, "refs/heads/" + ref.removeprefix("refs/heads/")
    tag = "refs/tags/" + ref.removeprefix("refs/tags/")
    found: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, name = line.partition("\t")
        found.setdefault(name, sha)
    sha, used, peeled = found.get(partial, ""), partial, ""
    if not sha:
        sha, used = found.get(head, ""), head
    if not sha:
        sha, used, peeled = found.get(tag, ""), tag, found.get(tag + "^{}", "")
    if not sha:
        raise _error(spec, f"repository does not contain ref {ref}")
    if not is_commit_sha(sha):
        raise _error(spec, f"invalid commit sha {sha!r}")
    if spec.checksum and not sha.startswith(spec.checksum) and not peeled.startswith(spec.checksum):
        raise _mismatch(spec, sha + (f" or {peeled}" if peeled else ""))
    return Resolved(used, sha, peeled if peeled and not spec.keep_git_dir else "")


def default_branch(spec: GitSpec, runner: GitRunner) -> str:
    """The remote's HEAD branch (``ls-remote --symref REMOTE HEAD``)."""
    try:
        out = runner.run("ls-remote", "--symref", spec.remote, "HEAD")
    except GitCommandError as error:
        raise _error(spec, f"failed to fetch remote {redact(spec.remote)}: {last_line(error.stderr)}") from None
    match = _DEFAULT_BRANCH.search(out)
    if match is None:
        raise _error(spec, f"could not find default branch for repository: {redact(spec.remote)}")
    return match.group(1)


def cache_key(spec: GitSpec, resolved: Resolved) -> str:
    """BuildKit's ``shaToCacheKey`` of the resolved commit."""
    if is_commit_sha(resolved.ref):
        sha, ref = resolved.ref, resolved.ref
    else:
        sha, ref = resolved.commit or resolved.checksum, resolved.ref
    key = sha
    if spec.keep_git_dir:
        key += ".git" + (f"#{ref}" if ref else "")
    if spec.subdir:
        key += ":" + spec.subdir
    if spec.skip_submodules:
        key += "(skip-submodules)"
    if spec.mtime and spec.mtime != "checkout":
        key += f"(mtime={spec.mtime})"
    return key


def _error(spec: GitSpec, message: str) -> GitSourceError:
    return GitSourceError(f"git source {spec.shown}: {message}", remote=redact(spec.remote), ref=spec.ref)


def _mismatch(spec: GitSpec, got: str) -> GitSourceError:
    return _error(spec, f"expected checksum to match {spec.checksum}, got {got}")


# ------------------------------------------------------------------------------ the bare cache


def bare_dir(cache_root: Path, remote: str) -> Path:
    """The bare repository that caches ``remote``'s objects."""
    return cache_root / "git" / hashlib.sha256(remote.encode()).hexdigest()[:32]


def lock_name(bare: Path) -> str:
    """The name of the store lock held while a bare repository is fetched, read or removed."""
    return "git:" + bare.name


def _ensure_bare(spec: GitSpec, runner: GitRunner, path: Path) -> None:
    """Create the bare repository once: made in a temp dir beside it and renamed in."""
    if (path / "HEAD").exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_inits(path.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".init-{os.getpid()}-", dir=path.parent))
    try:
        runner.run("init", "--bare", "--quiet", str(tmp))
        runner.run("remote", "add", "origin", spec.remote, git_dir=tmp)
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _remove_dead_inits(directory: Path) -> None:
    """``.init-<pid>-…`` dirs of processes that died while making a bare repository."""
    from solver.cache.locking import pid_alive
    for entry in directory.glob(".init-*-*"):
        pid = entry.name.split("-")[1]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def remove_bare_repos(cache_root: Path, lock: Callable[[str], Any]) -> list[tuple[str, str, int]]:
    """Remove every cached bare repository (``prune --all``), each under its lock;
    (directory name, remote URL, bytes) of each one removed."""
    top = cache_root / "git"
    removed: list[tuple[str, str, int]] = []
    if not top.is_dir():
        return removed
    _remove_dead_inits(top)
    for bare in sorted(p for p in top.iterdir() if not p.name.startswith(".")):
        with lock(lock_name(bare)):
            remote, size = _remote_of(bare), _tree_size(bare)
            shutil.rmtree(bare, ignore_errors=True)
        removed.append((bare.name, remote, size))
    return removed


@dataclass(frozen=True)
class BareRepo:
    """One cached bare repository, for ``llbook du``."""

    name: str  # its directory under CACHE/git
    remote: str
    size: int
    last_used: float
    created: float


def bare_repos(cache_root: Path) -> list[BareRepo]:
    """The cached bare repositories (their size, remote and last use)."""
    top = cache_root / "git"
    if not top.is_dir():
        return []
    out = []
    for bare in sorted(p for p in top.iterdir() if not p.name.startswith(".") and p.is_dir()):
        try:
            stat = bare.stat()
            created = (bare / "description").stat().st_mtime if (bare / "description").exists() else stat.st_mtime
        except OSError:
            continue
        out.append(BareRepo(bare.name, _remote_of(bare), _tree_size(bare), stat.st_mtime, created))
    return out


def _remote_of(bare: Path) -> str:
    try:
        for line in (bare / "config").read_text().splitlines():
            key, _, value = line.strip().partition("=")
            if key.strip() == "url":
                return redact(value.strip())
    except OSError:
        pass
    return bare.name


def _tree_size(path: Path) -> int:
    total = 0
    for top, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(top, name)).st_blocks * 512
            except OSError:
                pass
    return total


def fetch(spec: GitSpec, resolved: Resolved, runner: GitRunner, bare: Path) -> None:
    """Fetch the resolved commit into the bare repository (nothing when it is there)."""
    try:
        _ensure_bare(spec, runner, bare)
        os.utime(bare)  # its last use (llbook du)
        runner.run("remote", "set-url", "origin", spec.remote, git_dir=bare)
    except (GitCommandError, OSError) as error:
        raise _error(spec, f"cannot set up the repository cache {bare}: {error}") from None
    want = resolved.checksum
    if spec.fetch_by_commit:
        _fetch_pinned(spec, resolved, runner, bare)
        return
    if _has_object(runner, bare, want) and (is_commit_sha(resolved.ref) or _ref_is(runner, bare, resolved.ref, want)):
        return
    (bare / "shallow.lock").unlink(missing_ok=True)  # left by a killed fetch
    try:
        if is_commit_sha(resolved.ref):
            _fetch_commit(runner, bare, want)
        else:
            runner.run("fetch", "--depth=1", "--no-tags", "--force", "origin",
                       f"+{resolved.ref}:{resolved.ref}", git_dir=bare)
            if not _ref_is(runner, bare, resolved.ref, want):  # moved since ls-remote
                _fetch_commit(runner, bare, want)
                runner.run("update-ref", "--no-deref", resolved.ref, want, git_dir=bare)
    except GitCommandError as error:
        raise _error(spec, f"failed to fetch remote {redact(spec.remote)}: {last_line(error.stderr)}") from None
    if not _has_object(runner, bare, want):
        raise _error(spec, f"commit {want} cannot be found in the repository")


def _fetch_pinned(spec: GitSpec, resolved: Resolved, runner: GitRunner, bare: Path) -> None:
    """fetch-by-commit: the commit itself (unless there), its ref set locally."""
    want = resolved.checksum
    try:
        if not _has_object(runner, bare, want):
            (bare / "shallow.lock").unlink(missing_ok=True)
            _fetch_commit(runner, bare, want)
        if not is_commit_sha(resolved.ref):
            runner.run("update-ref", "--no-deref", resolved.ref, want, git_dir=bare)
    except GitCommandError as error:
        raise _error(spec, f"failed to fetch remote {redact(spec.remote)}: {last_line(error.stderr)}") from None
    if not _has_object(runner, bare, want):
        raise _error(spec, f"commit {want} cannot be found in the repository")


def _fetch_commit(runner: GitRunner, bare: Path, sha: str) -> None:
    """A commit by its SHA: shallow first; a server that refuses unadvertised wants gets
    the full history (all branches and tags), where the commit must then be."""
    try:
        runner.run("fetch", "--depth=1", "--no-tags", "origin", sha, git_dir=bare)
    except GitCommandError:
        args = ["fetch", "--tags", "--force"]
        if (bare / "shallow").exists():
            args.append("--unshallow")
        runner.run(*args, "origin", "+refs/heads/*:refs/remotes/origin/*", git_dir=bare)


def _has_object(runner: GitRunner, bare: Path, sha: str) -> bool:
    try:
        runner.run("cat-file", "-e", "--", sha, git_dir=bare)
    except GitCommandError:
        return False
    return True


def _ref_is(runner: GitRunner, bare: Path, ref: str, sha: str) -> bool:
    try:
        return runner.run("rev-parse", "--verify", "--quiet", ref, git_dir=bare).strip() == sha
    except GitCommandError:
        return False


# ------------------------------------------------------------------------------ checkout


def checkout(spec: GitSpec, resolved: Resolved, runner: GitRunner, bare: Path, dest: Path,
             scratch: Path) -> None:
    """The resolved tree (or its subdir) into the empty directory ``dest``."""
    try:
        if spec.keep_git_dir and not spec.subdir:
            _checkout_with_git_dir(spec, resolved, runner, bare, dest)
        else:
            _checkout_tree(spec, resolved, runner, bare, dest, scratch)
        if spec.mtime == "commit":
            stamp = int(runner.run("log", "-1", "--format=%ct", resolved.checksum + "^{commit}",
                                   git_dir=bare).strip())
            reset_mtimes(dest, stamp)
    except GitCommandError as error:
        raise _error(spec, f"failed to checkout remote {redact(spec.remote)}: {last_line(error.stderr)}") from None


def _checkout_tree(spec: GitSpec, resolved: Resolved, runner: GitRunner, bare: Path, dest: Path,
                   scratch: Path) -> None:
    """``git checkout --no-overlay COMMIT -- .`` with a private index; the subdir moved up."""
    target = Path(tempfile.mkdtemp(prefix="checkout", dir=dest)) if spec.subdir else dest
    with _temp_index(scratch) as index:
        env = {"GIT_INDEX_FILE": str(index)}
        runner.run("checkout", "--no-overlay", resolved.checksum, "--", ".", git_dir=bare,
                   work_tree=target, cwd=target, env=env)
        _submodules(spec, runner, bare, target, env)
    if not spec.subdir:
        return
    source = _subdir_path(spec, target)
    for name in os.listdir(source):
        os.rename(source / name, dest / name)
    shutil.rmtree(target)


def _subdir_path(spec: GitSpec, root: Path) -> Path:
    """``root/subdir``, every part of it a directory (no symlinks, as BuildKit checks)."""
    path = root
    for part in spec.subdir.split("/"):
        if part in ("", "."):
            continue
        path = path / part
        if path.is_symlink() or not path.is_dir():
            what = "does not exist" if not os.path.lexists(path) else "is not a directory"
            raise _error(spec, f"invalid subdir {spec.subdir}: {part} {what}")
    return path


def _checkout_with_git_dir(spec: GitSpec, resolved: Resolved, runner: GitRunner, bare: Path, dest: Path) -> None:
    """A repository of its own in ``dest`` whose HEAD is the commit (BuildKit's keep-git-dir)."""
    git_dir = dest / ".git"
    runner.run("-c", "init.defaultBranch=master", "init", "--quiet", str(dest))
    runner.run("remote", "add", "origin", "file://" + str(bare), git_dir=git_dir, work_tree=dest)
    if is_commit_sha(resolved.ref):
        pull = "refs/llbook/" + resolved.ref
        runner.run("update-ref", pull, resolved.ref, git_dir=bare)
    else:
        pull = f"{resolved.ref}:{kept_ref(spec, resolved)}"
    # from the URL, not the remote's name: no remote-tracking ref is made on the side (BuildKit's
    # fetch makes none: its bare repository keeps what it fetched under tags/)
    runner.run("fetch", "-u", "--depth=1", "--quiet", "--", "file://" + str(bare), pull, git_dir=git_dir,
               work_tree=dest, cwd=dest)
    runner.run("checkout", "--quiet", "FETCH_HEAD", git_dir=git_dir, work_tree=dest, cwd=dest)
    _submodules(spec, runner, git_dir, dest, {})
    runner.run("remote", "set-url", "origin", redact(spec.remote), git_dir=git_dir)
    runner.run("reflog", "expire", "--all", "--expire=now", git_dir=git_dir)
    (git_dir / "FETCH_HEAD").unlink(missing_ok=True)


def _submodules(spec: GitSpec, runner: GitRunner, git_dir: Path, work_tree: Path, env: dict[str, str]) -> None:
    """BuildKit's ``submodule update --init --recursive --depth=1`` (unless skipped)."""
    if spec.skip_submodules or not (work_tree / ".gitmodules").exists():
        return
    try:
        runner.run("submodule", "update", "--init", "--recursive", "--depth=1", git_dir=git_dir,
                   work_tree=work_tree, cwd=work_tree, env=env)
    except GitCommandError as error:
        raise _error(spec, f"failed to update submodules for {redact(spec.remote)}: "
                           f"{last_line(error.stderr)}") from None


def kept_ref(spec: GitSpec, resolved: Resolved) -> str:
    """The ref a kept .git gets for the fetched commit. BuildKit stores what it fetched as
    ``tags/<ref>`` in its bare repository and fetches ``<ref>:<ref>`` from it, so an
    unqualified ref (``main``, ``v1``, the default branch) lands as ``refs/tags/<ref>``
    and a qualified one (``refs/heads/main``) under its own name."""
    if spec.fetch_by_commit:
        return resolved.ref  # BuildKit fetches COMMIT:REF (REF made refs/heads/… when unqualified)
    name = spec.ref or resolved.ref.removeprefix("refs/heads/")
    return name if name.startswith("refs/") else "refs/tags/" + name


@contextmanager
def _temp_index(scratch: Path) -> Iterator[Path]:
    """An index file of one checkout (the shared bare repository's own stays untouched)."""
    scratch.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix=f"git-{os.getpid()}-index-", dir=scratch))
    try:
        yield directory / "index"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def reset_mtimes(root: Path, stamp: int) -> None:
    """Every entry's mtime (and atime) to ``stamp``, directories last, links not followed."""
    dirs: list[str] = []
    for top, names, files in os.walk(root):
        dirs.append(top)
        for name in files + [n for n in names if os.path.islink(os.path.join(top, n))]:
            os.utime(os.path.join(top, name), (stamp, stamp), follow_symlinks=False)
    for top in reversed(dirs):
        os.utime(top, (stamp, stamp))


# ------------------------------------------------------------------------------ entry points


@contextmanager
def session(spec: GitSpec, cancel: threading.Event | None, scratch: Path) -> Iterator[GitRunner]:
    """A runner for ``spec`` with its known-hosts file written (removed afterwards)."""
    known = ""
    if spec.known_hosts:
        scratch.mkdir(parents=True, exist_ok=True)
        fd, known = tempfile.mkstemp(prefix=f"git-{os.getpid()}-known-hosts-", dir=scratch)
        with os.fdopen(fd, "w") as out:
            out.write(spec.known_hosts)
    try:
        yield GitRunner(spec, cancel, known)
    finally:
        if known:
            Path(known).unlink(missing_ok=True)
