"""Finding and killing a process tree through /proc (for runners without a pid namespace)."""

from __future__ import annotations

import os
import signal
import time


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # the command name is in parentheses and may contain spaces or ')'
    rest = data[data.rfind(b")") + 2:].split()
    return int(rest[1]) if len(rest) > 1 else None


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (children first found, then theirs)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent = _parent_of(int(entry))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry))
    found: list[int] = []
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return False


def kill_tree(root: int, pgid: int | None, timeout: float = 2.0, *, root_alive: bool = True) -> None:
    """SIGKILL the process group and every descendant of ``root``; wait until gone.

    Pass ``root_alive=False`` once ``root`` was reaped: its pid may belong to another
    process by then, so only the process group is signalled.
    """
    deadline = time.monotonic() + timeout
    while True:
        targets = descendants(root) if root_alive else []
        if pgid is not None:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in ([root] if root_alive else []) + targets:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if not any(alive(pid) for pid in targets) or time.monotonic() > deadline:
            return
        time.sleep(0.02)


def identity(pid: int) -> tuple[int, int] | None:
    """(pid, start time in clock ticks): tells a process apart from a later one with its pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return pid, int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def still_running(ident: tuple[int, int]) -> bool:
    return identity(ident[0]) == ident and alive(ident[0])


def wait_gone(idents: list[tuple[int, int]], timeout: float) -> bool:
    """Wait until none of these processes runs any more; SIGKILL the ones that do at the
    end of ``timeout`` and wait as long again. True when all are gone."""
    for attempt in range(2):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(still_running(i) for i in idents):
                return True
            time.sleep(0.02)
        if attempt == 0:
            for ident in idents:
                if still_running(ident):
                    try:
                        os.kill(ident[0], signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
    return not any(still_running(i) for i in idents)
