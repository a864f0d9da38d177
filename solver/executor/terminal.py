"""Interactive runs on the caller's terminal: the checks, its saved modes, and its resizes.

A ``ProcessSpec(terminal=True)`` run hands this process's stdin, stdout and stderr to the
process. runc (``process.terminal: true``, run in the foreground) makes a pty inside the
container, puts ours in raw mode and copies between the two; it resizes the container's
pty on SIGWINCH, which we pass on (runc runs in a session of its own, so the terminal's
SIGWINCH does not reach it). proot hands the terminal to the process as it is.
"""

from __future__ import annotations

import os
import signal
import sys
import termios
import threading
from collections.abc import Callable
from typing import Any

from solver.executor.base import ExecutorError

STDIO = (0, 1, 2)


def require_terminal() -> None:
    """Raise unless stdin and stdout are terminals (what an interactive run talks to)."""
    if not all(os.isatty(fd) for fd in STDIO[:2]):
        raise ExecutorError("an interactive run needs a terminal: stdin and stdout must be a tty")


def saved_modes() -> Callable[[], None]:
    """Remember the terminal's modes; the returned call puts them back (runc leaves the
    terminal raw when it is killed before it can restore it)."""
    try:
        modes: list[Any] | None = termios.tcgetattr(0)
    except termios.error:
        modes = None

    def restore() -> None:
        if modes is not None:
            try:
                termios.tcsetattr(0, termios.TCSADRAIN, modes)
            except termios.error:
                pass
    return restore


def forward_resizes(pid: int) -> Callable[[], None]:
    """Send this process's SIGWINCH on to ``pid``; the returned call stops that. Only the
    main thread can set signal handlers: elsewhere the size stays the initial one."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def forward(signum: int, frame: Any) -> None:
        try:
            os.kill(pid, signal.SIGWINCH)
        except ProcessLookupError:
            pass
    previous = signal.signal(signal.SIGWINCH, forward)
    return lambda: signal.signal(signal.SIGWINCH, previous)


def flush_stdio() -> None:
    """Write out what Python buffered before the process takes over the terminal."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
