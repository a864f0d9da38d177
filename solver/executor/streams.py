"""Pumping a child's stdout and stderr to callbacks, and its stdin from bytes, on threads."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

CHUNK = 65536


def _pump(stream: IO[bytes], sink: Callable[[bytes], None]) -> None:
    fd = stream.fileno()
    try:
        while True:
            data = os.read(fd, CHUNK)
            if not data:
                return
            try:
                sink(data)
            except Exception:  # a failing callback must not block the child on a full pipe
                continue
    except OSError:
        return
    finally:
        stream.close()


def _feed(stream: IO[bytes], data: bytes) -> None:
    try:
        stream.write(data)
    except (BrokenPipeError, OSError):
        pass
    finally:
        try:
            stream.close()
        except OSError:
            pass


@dataclass
class Pipes:
    """Threads that move a ``Popen``'s pipes; ``join`` waits for both outputs to end."""

    threads: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def start(cls, proc: subprocess.Popen, stdout: Callable[[bytes], None],
              stderr: Callable[[bytes], None], stdin: bytes | None) -> "Pipes":
        pipes = cls()
        for stream, sink in ((proc.stdout, stdout), (proc.stderr, stderr)):
            if stream is not None:
                pipes._spawn(_pump, stream, sink)
        if stdin is not None and proc.stdin is not None:
            pipes._spawn(_feed, proc.stdin, stdin)
        return pipes

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name="llbook-pipe")
        thread.start()
        self.threads.append(thread)

    def join(self, timeout: float = 5.0) -> None:
        for thread in self.threads:
            thread.join(timeout)
