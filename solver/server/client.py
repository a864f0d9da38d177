"""The thin client: find or start this user's server, hand it a build, wait for its exit code.

The client passes its own stdin, stdout and stderr to the server (``SCM_RIGHTS``), so the
server's progress, warnings and errors are written to the same terminal or pipe, byte
for byte as an in-process build writes them, and the tty printer reads the terminal's
size itself. With them go argv, the working directory, the environment, the umask and
the stdio encodings. SIGINT and SIGTERM are forwarded as a cancel; if the client dies
the server sees end-of-file and cancels the build the same way.

Imports only built-in modules (``_socket``, ``fcntl``, ``marshal``): see ``bench_build``'s
start-up figure and ``tests/test_server.py``'s import bound.
"""

from __future__ import annotations

import os
import sys
import time
TYPE_CHECKING = False  # typing is only for the checker: the client path does not import it
if TYPE_CHECKING:
    from typing import Any

import _socket

from solver.server import paths, protocol

START_TIMEOUT = 60.0
SERVER_MAIN = "solver.cli.serve"


class ServerUnavailable(Exception):
    """No server could be reached or started; the caller builds in its own process."""


def connect(path: str) -> Any:
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock


def _spawn(directory: str) -> int:
    """Start a server in a new session, detached from our terminal; its output goes to the log."""
    log = os.open(paths.log_path(directory), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    pid = os.fork()
    if pid == 0:  # child: exec at once (no Python code of ours runs between fork and exec)
        try:
            os.setsid()
            os.dup2(null, 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.execve(sys.executable, [sys.executable, "-m", SERVER_MAIN], env)
        finally:
            os._exit(127)
    os.close(log)
    os.close(null)
    return pid


def _wait_ready(path: str, pid: int) -> Any:
    deadline = time.monotonic() + START_TIMEOUT
    delay = 0.002
    while time.monotonic() < deadline:
        try:
            return connect(path)
        except OSError:
            pass
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            raise ServerUnavailable(f"the server exited at start (status {status}); see {paths.log_path()}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    raise ServerUnavailable(f"the server did not answer within {START_TIMEOUT:.0f} s; see {paths.log_path()}")


def connect_or_start() -> Any:
    """A connection to this install's server, starting one (under a lock, so that two
    clients at once start one server) when none answers."""
    try:
        directory = paths.ensure_private_dir(paths.server_dir())
    except OSError as error:
        raise ServerUnavailable(str(error)) from error
    path = paths.socket_path(directory)
    try:
        return connect(path)
    except OSError:
        pass
    import fcntl
    lock = os.open(paths.lock_path(directory), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return connect(path)  # another client started it meanwhile
        except OSError:
            return _wait_ready(path, _spawn(directory))
    finally:
        os.close(lock)


def _stdio() -> tuple[list[int], list[int]]:
    """Our fds 0, 1, 2 (``/dev/null`` in place of a closed one) and the ones opened for that."""
    fds, opened = [], []
    for fd, mode in ((0, os.O_RDONLY), (1, os.O_WRONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            opened.append(os.open(os.devnull, mode))
            fds.append(opened[-1])
    return fds, opened


def _encodings() -> dict[str, Any]:
    streams = {"stdin": sys.stdin, "stdout": sys.stdout, "stderr": sys.stderr}
    return {name: [getattr(s, "encoding", None) or "utf-8", getattr(s, "errors", None) or "strict"]
            for name, s in streams.items()}


def request(argv: list[str]) -> dict[str, Any]:
    umask = os.umask(0o022)
    os.umask(umask)
    return {"op": "build", "argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ),
            "umask": umask, "encodings": _encodings(), "client_pid": os.getpid()}


def _forward_signals(sock: Any) -> None:
    import signal

    def cancel(signum: int, frame: Any) -> None:
        try:
            protocol.send(sock, {"op": "cancel", "signal": signum})
        except OSError:
            pass
    signal.signal(signal.SIGINT, cancel)
    signal.signal(signal.SIGTERM, cancel)


def _await_exit(sock: Any) -> int:
    while True:
        try:
            message, fds = protocol.receive(sock)
        except InterruptedError:
            continue
        protocol.close_all(fds)
        if message is None:
            print(f"llbook: error: the build server ended during the build; see {paths.log_path()}",
                  file=sys.stderr)
            return 1
        if "exit" in message:
            return int(message["exit"])


def run_build(argv: list[str]) -> int:
    """Build on the server and return the exit code; ``ServerUnavailable`` when there is none."""
    for _attempt in range(3):
        sock = connect_or_start()
        try:
            fds, opened = _stdio()
            try:
                protocol.send_request(sock, request(argv), fds)
            finally:
                for fd in opened:
                    os.close(fd)
            _forward_signals(sock)
            first, extra = protocol.receive(sock)
            protocol.close_all(extra)
            if first is None or first.get("stale"):
                continue  # it was running older code and is exiting: start a new one
            if "refused" in first:
                raise ServerUnavailable(str(first["refused"]))
            return _await_exit(sock)
        except (OSError, protocol.ProtocolError) as error:
            raise ServerUnavailable(f"the build server failed: {error}") from error
        finally:
            sock.close()
    raise ServerUnavailable("the build server kept restarting")


def ask(op: str) -> dict[str, Any] | None:
    """Send ``status`` or ``stop`` to a running server; None when none runs."""
    try:
        sock = connect(paths.socket_path())
    except OSError:
        return None
    try:
        protocol.send_request(sock, {"op": op})
        message, fds = protocol.receive(sock)
        protocol.close_all(fds)
        return message
    finally:
        sock.close()
