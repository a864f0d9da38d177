"""The server loop: accept this user's clients, run their builds one at a time on the main
thread (where an in-process build runs too, so SIGINT-driven cancellation is the same),
answer ``status``/``stop``, exit when its code changed on disk or after an idle time.

The front end gives the handler (``solver.cli.serve``); this module knows nothing of builds.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from solver.server import paths, protocol

DEFAULT_IDLE = 900.0  # seconds without a build before the server exits (LLBOOK_SERVER_IDLE)


@dataclass
class Request:
    """One build a client asked for: what it sent, and its stdin, stdout and stderr."""

    message: dict[str, Any]
    stdio: list[int]
    conn: socket.socket
    cancelled: threading.Event = field(default_factory=threading.Event)


Handler = Callable[[Request], int]


class ModuleWatch:
    """The source files of the modules this process loaded from our package; a server whose
    code changed on disk stops serving, so a client never runs a build on stale code."""

    def __init__(self, root: str) -> None:
        self.root = root + os.sep
        self.seen: dict[str, tuple[int, int]] = {}

    def record(self) -> None:
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if path and path.startswith(self.root) and path not in self.seen:
                self.seen[path] = _signature(path)

    def changed(self) -> bool:
        return any(_signature(path) != sig for path, sig in self.seen.items())


def _signature(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
        return st.st_mtime_ns, st.st_size
    except OSError:
        return -1, -1


class Server:
    """Serves one socket until stopped, stale or idle."""

    def __init__(self, handler: Handler, directory: str | None = None, idle: float | None = None,
                 status: Callable[[], dict[str, Any]] | None = None) -> None:
        self.handler = handler
        self.directory = paths.ensure_private_dir(directory or paths.server_dir())
        self.path = paths.socket_path(self.directory)
        self.idle = idle if idle is not None else float(os.environ.get("LLBOOK_SERVER_IDLE") or DEFAULT_IDLE)
        self.extra_status = status or (lambda: {})
        self.builds: queue.Queue[Request | None] = queue.Queue()
        self.started = time.time()
        self.last_active = time.monotonic()
        self.count = 0
        self.current: Request | None = None
        self.stopping = threading.Event()
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self.watch = ModuleWatch(root)
        self._listener: socket.socket | None = None
        self._inode = 0

    # socket ------------------------------------------------------------------------------

    def bind(self) -> None:
        """Listen on a fresh name, 0600, then rename it over the final path (a stale socket
        of a killed server is replaced; a client holds the start lock meanwhile)."""
        tmp = os.path.join(self.directory, f".server-{os.getpid()}.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            listener.bind(tmp)
        finally:
            os.umask(old)
        os.chmod(tmp, 0o600)
        listener.listen(16)
        os.replace(tmp, self.path)
        self._inode = os.stat(self.path).st_ino
        self._listener = listener

    def unbind(self) -> None:
        try:
            if os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        except OSError:
            pass
        if self._listener is not None:
            self._listener.close()

    # threads -----------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self.stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._greet, args=(conn,), daemon=True).start()

    def _greet(self, conn: socket.socket) -> None:
        """Check who called, then read its first message (nothing is read from another uid)."""
        uid = protocol.peer_uid(conn)
        if uid != os.geteuid():
            print(f"llbook server: refused a connection from uid {uid}", file=sys.stderr, flush=True)
            try:
                protocol.send(conn, {"refused": f"this server serves uid {os.geteuid()} only"})
            except OSError:
                pass
            conn.close()
            return
        try:
            message, fds = protocol.receive(conn)
        except (OSError, protocol.ProtocolError):
            conn.close()
            return
        if message is None:
            conn.close()
            return
        op = message.get("op")
        if op == "build" and len(fds) == 3:
            if self.stopping.is_set() or self.watch.changed():
                self._stop()
                self._reply_close(conn, {"stale": True})
                protocol.close_all(fds)
                return
            self.builds.put(Request(message, fds, conn))
            return
        protocol.close_all(fds)
        if op == "status":
            self._reply_close(conn, self.status())
        elif op == "stop":
            self._reply_close(conn, {"stopping": True, "pid": os.getpid()})
            self._stop()
        else:
            self._reply_close(conn, {"error": f"unknown request {op!r}"})

    def _reply_close(self, conn: socket.socket, message: dict[str, Any]) -> None:
        try:
            protocol.send(conn, message)
        except OSError:
            pass
        conn.close()

    def _stop(self) -> None:
        self.stopping.set()
        self.builds.put(None)

    def status(self) -> dict[str, Any]:
        current = self.current
        return {"pid": os.getpid(), "uid": os.geteuid(), "socket": self.path, "started": self.started,
                "builds": self.count, "idle_timeout": self.idle,
                "idle_for": 0.0 if current else time.monotonic() - self.last_active,
                "building": current.message.get("argv") if current else None, **self.extra_status()}

    def _watch_client(self, request: Request, main: int) -> None:
        """A cancel message, or the client's end of the connection closing, interrupts the
        build as Ctrl-C interrupts an in-process one."""
        while True:
            try:
                message, fds = protocol.receive(request.conn)
            except (OSError, protocol.ProtocolError):
                message, fds = None, []
            protocol.close_all(fds)
            if message is not None and message.get("op") != "cancel":
                continue
            if self.current is request and not request.cancelled.is_set():
                request.cancelled.set()
                signal.pthread_kill(main, signal.SIGINT)
            if message is None:
                return

    # main thread -------------------------------------------------------------------------

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.current is not None:
            raise KeyboardInterrupt

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self._stop()
        if self.current is not None and not self.current.cancelled.is_set():
            self.current.cancelled.set()
            raise KeyboardInterrupt

    def _run(self, request: Request) -> None:
        self.current = request
        watcher = threading.Thread(target=self._watch_client, args=(request, threading.get_ident()),
                                   daemon=True)
        code = 1
        try:
            protocol.send(request.conn, {"accepted": True})
            watcher.start()
            code = self.handler(request)
        except KeyboardInterrupt:
            code = 130
        except OSError:
            code = 1  # the client went away before the build began
        except Exception:  # a handler's bug ends this build, not the server
            import traceback
            traceback.print_exc()
            code = 1
        finally:
            self.current = None
            protocol.close_all(request.stdio)
            self.count += 1
            self.last_active = time.monotonic()
            self.watch.record()  # modules this build imported for the first time
        self._reply_close(request.conn, {"exit": code})

    def serve(self) -> int:
        signal.signal(signal.SIGINT, self._on_sigint)
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.watch.record()
        self.bind()
        print(f"llbook server: pid {os.getpid()} on {self.path}, idle timeout {self.idle:.0f} s",
              file=sys.stderr, flush=True)
        threading.Thread(target=self._accept_loop, daemon=True).start()
        try:
            while not self.stopping.is_set():
                wait = self.idle - (time.monotonic() - self.last_active)
                if wait <= 0:
                    print("llbook server: idle, exiting", file=sys.stderr, flush=True)
                    break
                try:
                    request = self.builds.get(timeout=wait)
                except queue.Empty:
                    continue
                if request is not None:
                    self._run(request)
        finally:
            self.stopping.set()
            self.unbind()
            self._refuse_queued()
        return 0

    def _refuse_queued(self) -> None:
        while True:
            try:
                request = self.builds.get_nowait()
            except queue.Empty:
                return
            if request is not None:
                protocol.close_all(request.stdio)
                self._reply_close(request.conn, {"stale": True})
