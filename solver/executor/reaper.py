"""A watcher process that ends a process's containers when that process dies, even by kill -9.

runc's config has no parent-death signal, and ``runc run`` keeps its container running
when the process that started it is killed. So each process that runs containers starts
one watcher (``reaper.main`` in a new Python process, in its own session so a terminal's
SIGINT or a group kill does not reach it first) and keeps the write end of a pipe to its
stdin. Before each ``runc run`` it writes a ``start`` line (the runc command prefix, the
container id, the bundle, runc's pid and start time), after the cleanup a ``done`` line.
The pipe reaches end-of-file when the owner exits in any way; the watcher then kills
each container still listed (``runc run`` first, so that it cannot start one more
process, then ``runc kill --all`` and ``runc delete --force``, then every process that
was below ``runc run``), removes its bundle directory, detaches the owner's mount of the
container's root filesystem and exits.

Should the watcher itself be killed too, ``llbook check`` ends the containers of dead
builds (``solver.solve.leftovers``): container ids and bundle names carry the owner's pid.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from solver.executor.netns import helper_pids as network_helper_pids
from solver.executor.proctree import descendants, identity, wait_gone
from solver.snapshot.mount import MountError, mount_points_under, unmount

RUNC_TIMEOUT = 10.0
GONE_TIMEOUT = 2.0
WATCHER_MAIN = "import sys; from solver.executor.reaper import main; sys.exit(main())"


@dataclass(frozen=True)
class Watched:
    """One container the watcher ends if its owner dies."""

    container_id: str
    runc: list[str]  # the runc command prefix: runtime, --root STATE, maybe --rootless=true
    bundle: str
    runc_pid: int = 0
    runc_start: int = 0  # start time in clock ticks, to tell runc's pid from a later process's


def end_container(runc: Sequence[str], container_id: str,
                  processes: Sequence[tuple[int, int]] = ()) -> None:
    """Kill the container's processes and delete its state; SIGKILL ``processes`` too."""
    for args in (("kill", "--all", container_id, "KILL"), ("delete", "--force", container_id)):
        try:
            subprocess.run([*runc, *args], capture_output=True, timeout=RUNC_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired):
            continue
    if processes:
        wait_gone(list(processes), GONE_TIMEOUT)


def end_watched(item: Watched) -> None:
    """End one container of a dead owner and remove its bundle."""
    processes: list[tuple[int, int]] = []
    if item.runc_pid and identity(item.runc_pid) == (item.runc_pid, item.runc_start):
        processes = [i for i in (identity(p) for p in descendants(item.runc_pid)) if i is not None]
        try:
            os.kill(item.runc_pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        wait_gone([(item.runc_pid, item.runc_start)], GONE_TIMEOUT)
    end_container(item.runc, item.container_id, processes)
    rootfs = _rootfs_of(Path(item.bundle))
    shutil.rmtree(item.bundle, ignore_errors=True)
    if rootfs:
        unmount_below(rootfs)


def _rootfs_of(bundle: Path) -> str:
    """The root filesystem the bundle's config.json names ("" when unreadable)."""
    try:
        return str(json.loads((bundle / "config.json").read_text())["root"]["path"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def unmount_below(root: str) -> None:
    """Unmount ``root`` and every mount below it (deepest first); only when ``root`` is
    itself a mount point (a snapshot mounted for the container), never ``/``."""
    try:
        points = mount_points_under(root)
    except OSError:
        return
    if os.path.realpath(root) == "/" or os.path.realpath(root) not in points:
        return
    for point in points:
        try:
            unmount(point)
        except MountError:
            continue


def watch(lines: IO[str]) -> list[str]:
    """Read the owner's lines until end-of-file, then end what is still listed; return those ids."""
    pending: dict[str, Watched] = {}
    for line in lines:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("op") == "start":
            item = Watched(**message["item"])
            pending[item.container_id] = item
        elif message.get("op") == "done":
            pending.pop(message.get("id", ""), None)
    for item in pending.values():
        end_watched(item)
    return list(pending)


CONTAINER_RE = re.compile(r"^llbook-(\d+)-[0-9a-f]{16}$")
BUNDLE_RE = re.compile(r"^llbook-bundle-(\d+)-")


def container_id_for(owner: int) -> str:
    return f"llbook-{owner}-{secrets.token_hex(8)}"


def bundle_prefix(owner: int) -> str:
    return f"llbook-bundle-{owner}-"


def _listed(runc: Sequence[str]) -> list[dict]:
    try:
        proc = subprocess.run([*runc, "list", "--format", "json"], capture_output=True, text=True,
                              timeout=RUNC_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if proc.returncode != 0:
        return []
    try:
        return list(json.loads(proc.stdout or "null") or [])
    except ValueError:
        return []


def end_orphans(runcs: Sequence[Sequence[str]], dead: Callable[[int], bool]) -> list[str]:
    """End the containers (listed by each runc command prefix) whose owner pid is dead."""
    ended = []
    for runc in runcs:
        for container in _listed(runc):
            match = CONTAINER_RE.match(str(container.get("id", "")))
            if not match or not dead(int(match.group(1))):
                continue
            init = identity(int(container.get("pid") or 0)) if container.get("pid") else None
            processes = [init] if init is not None else []
            if init is not None:
                processes += [i for i in (identity(p) for p in descendants(init[0])) if i is not None]
            end_container(runc, container["id"], processes)
            ended.append(f"container {container['id']}")
    return ended


def remove_orphan_bundles(parent: Path, dead: Callable[[int], bool]) -> list[str]:
    """Remove ``llbook-bundle-<pid>-*`` directories under ``parent`` whose owner pid is dead."""
    removed = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        match = BUNDLE_RE.match(entry.name)
        if match and entry.is_dir(follow_symlinks=False) and dead(int(match.group(1))):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(f"bundle {entry.path}")
    return removed


class Reaper:
    """The owner's side: starts the watcher on first use (again after a fork) and tells it
    about each container."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._owner = 0

    def _pipe(self) -> IO[str] | None:
        if self._proc is not None and self._owner == os.getpid() and self._proc.poll() is None:
            return self._proc.stdin
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH", "")]))
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", WATCHER_MAIN], stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                text=True, env=env, cwd="/")
        except OSError:
            self._proc = None
            return None
        self._owner = os.getpid()
        return self._proc.stdin

    def _send(self, message: dict) -> None:
        with self._lock:
            pipe = self._pipe()
            if pipe is None:
                return  # no watcher: `llbook check` is the fallback
            try:
                pipe.write(json.dumps(message) + "\n")
                pipe.flush()
            except (BrokenPipeError, OSError, ValueError):
                self._proc = None

    def started(self, item: Watched) -> None:
        self._send({"op": "start", "item": asdict(item)})

    def done(self, container_id: str) -> None:
        self._send({"op": "done", "id": container_id})

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None


REAPER = Reaper()


def helper_pids() -> set[int]:
    """This process's helper children that outlive a run by design: the watcher and the
    RUN networks' helpers (the spare, and those being reaped). Tests that count children
    leave them out."""
    watcher = {REAPER.pid} if REAPER.pid is not None and REAPER._owner == os.getpid() else set()
    return watcher | network_helper_pids()


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    watch(sys.stdin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
