"""Byte streams to a BuildKit daemon, and the gRPC channel over them.

grpcio dials unix and tcp sockets itself, but cannot do dockerd's HTTP/1.1 upgrade
(`POST /grpc` with `Upgrade: h2c`, as buildx's docker driver does) nor run buildctl's
`docker exec ... buildctl dial-stdio` helper. For those a `LocalBridge` listens on a private
unix socket in a temporary directory; each connection grpcio makes there is joined, byte for
byte, to a fresh upstream stream (an upgraded docker socket connection, or a helper process).
grpcio then speaks plain h2c to the bridge.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from solver.buildkit.address import Address
from solver.errors import LLBookError

CHUNK = 64 * 1024
GRPC_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.enable_http_proxy", 0),
]


class DaemonUnreachableError(LLBookError):
    """The daemon's address does not answer (or answers with something else than BuildKit)."""

    def __init__(self, address: str, cause: str) -> None:
        self.address = address
        self.cause = cause
        super().__init__(f"BuildKit daemon at {address} is unreachable: {cause}")


# ------------------------------------------------------------------ upstream streams


class Stream:
    """A bidirectional byte stream: a socket, or a helper process's stdin/stdout."""

    def fileno(self) -> int:
        raise NotImplementedError

    def recv(self, size: int) -> bytes:
        raise NotImplementedError

    def sendall(self, data: bytes) -> None:
        raise NotImplementedError

    def shutdown_write(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


@dataclass
class SocketStream(Stream):
    sock: socket.socket
    pending: bytes = b""  # bytes read past the HTTP response, delivered first

    def fileno(self) -> int:
        return self.sock.fileno()

    def recv(self, size: int) -> bytes:
        if self.pending:
            data, self.pending = self.pending, b""
            return data
        return self.sock.recv(size)

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def shutdown_write(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()


@dataclass
class ProcessStream(Stream):
    """`docker exec -i NAME buildctl dial-stdio`: stdout is read, stdin is written."""

    process: subprocess.Popen[bytes]
    address: str = ""
    _stderr: bytearray = field(default_factory=bytearray)

    def __post_init__(self) -> None:
        threading.Thread(target=self._collect_stderr, daemon=True, name="llbook-bk-helper-stderr").start()

    def _collect_stderr(self) -> None:
        stream = self.process.stderr
        if stream is None:
            return
        for line in iter(stream.readline, b""):
            self._stderr += line[:4096]

    def failure(self) -> DaemonUnreachableError | None:
        """Why the helper ended, when it failed (its exit status and stderr)."""
        try:
            code = self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return None
        if code == 0:
            return None
        text = bytes(self._stderr).decode("utf-8", "replace").strip() or f"exit status {code}"
        return DaemonUnreachableError(self.address, f"{' '.join(self.process.args)}: {text}")  # type: ignore[arg-type]

    def fileno(self) -> int:
        assert self.process.stdout is not None
        return self.process.stdout.fileno()

    def recv(self, size: int) -> bytes:
        return os.read(self.fileno(), size)

    def sendall(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def shutdown_write(self) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.close()
        except OSError:
            pass

    def close(self) -> None:
        self.shutdown_write()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _connect_unix(path: str, address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as error:
        sock.close()
        raise DaemonUnreachableError(address, f"cannot connect to {path}: {error.strerror or error}") from error
    return sock


def _read_response_head(sock: socket.socket, address: str) -> tuple[str, dict[str, str], bytes]:
    """Status line, headers and the bytes read past them."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise DaemonUnreachableError(address, "connection closed during the HTTP upgrade")
        data += chunk
        if len(data) > 64 * 1024:
            raise DaemonUnreachableError(address, "HTTP upgrade response too large")
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers, rest


def hijack(socket_path: str, endpoint: str, address: str, proto: str = "h2c",
           headers: Mapping[str, Sequence[str]] | None = None) -> SocketStream:
    """`POST endpoint` on a docker socket with `Upgrade: proto`; the upgraded stream on 101."""
    sock = _connect_unix(socket_path, address)
    lines = [f"POST {endpoint} HTTP/1.1", "Host: docker", "Connection: Upgrade", f"Upgrade: {proto}",
             "Content-Length: 0"]
    for name, values in (headers or {}).items():
        lines.extend(f"{name}: {value}" for value in values)
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        status, _, rest = _read_response_head(sock, address)
    except OSError as error:
        sock.close()
        raise DaemonUnreachableError(address, f"HTTP upgrade of {endpoint} failed: {error}") from error
    except DaemonUnreachableError:
        sock.close()
        raise
    if " 101 " not in status + " ":
        body = rest[:300].decode("utf-8", "replace").strip()
        sock.close()
        raise DaemonUnreachableError(address, f"dockerd refused the upgrade of {endpoint}: {status} {body}".strip())
    return SocketStream(sock, rest)


def dial_stdio(container: str, address: str) -> ProcessStream:
    """buildctl's docker-container helper: `docker exec -i CONTAINER buildctl dial-stdio`."""
    docker = shutil.which("docker") or "/usr/bin/docker"
    try:
        process = subprocess.Popen([docker, "exec", "-i", container, "buildctl", "dial-stdio"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   bufsize=0)
    except OSError as error:
        raise DaemonUnreachableError(address, f"cannot run {docker}: {error.strerror}") from error
    return ProcessStream(process, address)


# ------------------------------------------------------------------ joining two streams


def pump(a: Stream, b: Stream) -> None:
    """Copy bytes both ways until both directions are closed; then close both."""
    def one_way(src: Stream, dst: Stream) -> None:
        try:
            while True:
                data = src.recv(CHUNK)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            dst.shutdown_write()

    other = threading.Thread(target=one_way, args=(b, a), daemon=True, name="llbook-bk-pump")
    other.start()
    one_way(a, b)
    other.join()
    a.close()
    b.close()


class LocalBridge:
    """A unix socket in a private temporary directory whose connections are joined to `dial()`."""

    def __init__(self, dial: Callable[[], Stream], name: str = "bridge") -> None:
        self._dial = dial
        self._dir = tempfile.mkdtemp(prefix="llbook-bk-")
        os.chmod(self._dir, 0o700)
        self.path = str(Path(self._dir) / f"{name}.sock")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        self._listener.listen(16)
        self._closed = threading.Event()
        self._errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._serve, daemon=True, name=f"llbook-bk-{name}")
        self._thread.start()

    @property
    def target(self) -> str:
        return f"unix:{self.path}"

    @property
    def last_error(self) -> BaseException | None:
        return self._errors[-1] if self._errors else None

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                ready, _, _ = select.select([self._listener], [], [], 0.2)
                if not ready:
                    continue
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._join, args=(conn,), daemon=True, name="llbook-bk-conn").start()

    def _join(self, conn: socket.socket) -> None:
        try:
            upstream = self._dial()
        except BaseException as error:  # reported through last_error; grpcio sees a closed socket
            self._errors.append(error)
            conn.close()
            return
        pump(SocketStream(conn), upstream)
        failure = upstream.failure() if isinstance(upstream, ProcessStream) else None
        if failure is not None:
            self._errors.append(failure)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        self._thread.join(timeout=2)
        shutil.rmtree(self._dir, ignore_errors=True)


# ------------------------------------------------------------------ channels


@dataclass
class Connection:
    """A gRPC channel to the daemon, and what is needed to close it."""

    address: Address
    channel: grpc.Channel
    bridge: LocalBridge | None = None

    def close(self) -> None:
        self.channel.close()
        if self.bridge is not None:
            self.bridge.close()


def _tls_credentials(address: Address) -> grpc.ChannelCredentials:
    def read(path: str | None) -> bytes | None:
        if not path:
            return None
        try:
            return Path(path).expanduser().read_bytes()
        except OSError as error:
            raise LLBookError(f"BuildKit address {address}: cannot read {path}: {error.strerror}") from error
    return grpc.ssl_channel_credentials(read(address.tls.ca_cert), read(address.tls.key), read(address.tls.cert))


def open_channel(address: Address) -> Connection:
    """A channel for the address's transport (not yet known to answer; see client.BuildKitClient)."""
    if address.scheme == "unix":
        return Connection(address, grpc.insecure_channel(f"unix:{address.path}", options=GRPC_OPTIONS))
    if address.scheme == "tcp":
        target = f"{address.host}:{address.port}"
        if address.tls.enabled:
            options = list(GRPC_OPTIONS)
            if address.tls.server_name:
                options.append(("grpc.ssl_target_name_override", address.tls.server_name))
            return Connection(address, grpc.secure_channel(target, _tls_credentials(address), options=options))
        return Connection(address, grpc.insecure_channel(target, options=GRPC_OPTIONS))
    if address.scheme == "dockerd":
        bridge = LocalBridge(lambda: hijack(address.path, "/grpc", str(address)), "grpc")
    elif address.scheme == "docker-container":
        bridge = LocalBridge(lambda: dial_stdio(address.container, str(address)), "dial-stdio")
    else:
        raise LLBookError(f"BuildKit address {address}: no transport for {address.scheme!r}")
    return Connection(address, grpc.insecure_channel(bridge.target, options=GRPC_OPTIONS), bridge)
