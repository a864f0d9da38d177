"""`python -m solver.cli.serve`: the resident build server's process (started by the client).

Each request runs `main.run_here(argv)` as the client's process would: in its working
directory, environment and umask, with `sys.stdin/stdout/stderr` over the client's own
file descriptors (same encodings, and buffered as CPython buffers them at start-up: stdout
by line on a terminal, stderr always by line). Builds keep their Solvers (`solver_pool`).
"""

from __future__ import annotations

import io
import os
import sys
from contextlib import contextmanager
from typing import Any, Iterator

from solver.cli import dataclass_cache

dataclass_cache.install()

from solver.cli import solver_pool  # noqa: E402
from solver.server.daemon import Request, Server  # noqa: E402


def _stream(fd: int, mode: str, encoding: list[str], line_buffering: bool) -> io.TextIOWrapper:
    stream = open(fd, mode, encoding=encoding[0], errors=encoding[1], closefd=False)
    stream.reconfigure(line_buffering=line_buffering)
    return stream


@contextmanager
def client_process(request: Request) -> Iterator[None]:
    """This process made to look like the client's for the length of one build."""
    message = request.message
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    encodings = message.get("encodings") or {}
    default = ["utf-8", "strict"]
    os.environ.clear()
    os.environ.update(message["env"])
    saved_umask = os.umask(int(message["umask"]))
    fd_in, fd_out, fd_err = request.stdio
    try:
        os.chdir(message["cwd"])
        sys.stdin = _stream(fd_in, "r", encodings.get("stdin", default), False)
        sys.stdout = _stream(fd_out, "w", encodings.get("stdout", default), os.isatty(fd_out))
        sys.stderr = _stream(fd_err, "w", encodings.get("stderr", ["utf-8", "backslashreplace"]), True)
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        os.umask(saved_umask)
        os.environ.clear()
        os.environ.update(saved_env)
        try:
            os.chdir(saved_cwd)
        except OSError:
            os.chdir("/")


def handle(request: Request) -> int:
    """One build request, run as `llbook build` runs in its own process."""
    from solver.cli.main import run_here
    with client_process(request):
        try:
            return run_here(list(request.message["argv"]))
        except SystemExit as done:  # argparse: usage errors, --help
            if done.code is None or isinstance(done.code, int):
                return int(done.code or 0)
            print(done.code, file=sys.stderr)
            return 1
        except Exception:  # as an uncaught exception ends a process: traceback, exit 1
            import traceback
            traceback.print_exc()
            return 1


def _status() -> dict[str, Any]:
    return {"solvers": solver_pool.kept_count()}


def main() -> int:
    os.chdir("/")  # hold no directory of a client's
    solver_pool.keep()
    import solver.cli.build  # noqa: F401  (warm: the first build pays no import)
    import solver.solve.solver  # noqa: F401
    import solver.frontend  # noqa: F401
    server = Server(handle, status=_status)
    try:
        return server.serve()
    finally:
        solver_pool.close_all()


if __name__ == "__main__":
    sys.exit(main())
