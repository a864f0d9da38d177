"""The session a BuildKit client hosts: the daemon calls back into it for files, secrets, auth.

The session is a gRPC *server* run by the client; the daemon is its gRPC client. llbook runs
it with grpcio on a private unix socket and joins that socket to the daemon:

- dockerd: `POST /session` upgraded to h2c with the `X-Docker-Expose-Session-*` headers
  (uuid, name, sharedkey, one grpc-method header per served method), as `docker build` does;
- buildkitd: the `Control.Session` stream, whose BytesMessages carry the raw HTTP/2 bytes,
  with the same headers as gRPC metadata.

Services: FileSync.DiffCopy (local directories such as the build context), FileSend.DiffCopy
(outputs written on the client: `type=local` directories, `type=tar|oci|docker` files),
Secrets.GetSecret, Auth.Credentials, SSH.CheckAgent/ForwardAgent (``--ssh``: agent sockets
relayed read-only, as buildx's sshprovider) and grpc.health.v1.Health.Check (the daemon closes a
session whose health check fails).
"""

from __future__ import annotations

import os
import secrets as pysecrets
import shutil
import socket
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import grpc

from solver.buildkit import messages as m
from solver.buildkit.filesync import DirReceiver, SyncRequest, receive_bytes, send_dir
from solver.llb.codec import Message
from solver.buildkit.transport import SocketStream, Stream, hijack, pump
from solver.source.local import LocalContext

HEADER_ID = "X-Docker-Expose-Session-Uuid"
HEADER_NAME = "X-Docker-Expose-Session-Name"
HEADER_SHARED_KEY = "X-Docker-Expose-Session-Sharedkey"
HEADER_METHOD = "X-Docker-Expose-Session-Grpc-Method"


def new_id() -> str:
    """A random 25-character base-36 id, like BuildKit's identity.NewID."""
    number = int.from_bytes(pysecrets.token_bytes(17), "big")
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while len(out) < 25:
        number, rem = divmod(number, 36)
        out += digits[rem]
    return out


@dataclass(frozen=True)
class OutputTarget:
    """Where a client-side export lands: a directory (`type=local`) or a file (tar/oci/docker)."""

    kind: str  # "dir" | "file"
    path: Path


@dataclass
class SessionServices:
    dirs: dict[str, Path] = field(default_factory=dict)  # local source name -> directory
    secrets: dict[str, Path | bytes] = field(default_factory=dict)  # secret id -> file or value
    output: OutputTarget | None = None
    credentials: Callable[[str], tuple[str, str] | None] | None = None  # host -> (username, secret)
    ssh: dict[str, Path] = field(default_factory=dict)  # --ssh id -> agent socket


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    """End the RPC with `code` (grpcio's abort raises; the raise below is for the type checker)."""
    context.abort(code, message)
    raise RuntimeError(message)


def _metadata(context: grpc.ServicerContext) -> dict[str, list[str]]:
    """Incoming metadata, with fsutil's `KEY-encoded` values unescaped."""
    raw: dict[str, list[str]] = {}
    for key, value in context.invocation_metadata():
        raw.setdefault(key.lower(), []).append(value if isinstance(value, str) else value.decode())
    out: dict[str, list[str]] = {}
    for key, values in raw.items():
        encoded = raw.get(key + "-encoded", ["0"])[0].lower() in ("1", "true")
        out[key] = [urllib.parse.unquote_plus(v) for v in values] if encoded else values
    return out


class _Services:
    """The method handlers, bound to one SessionServices."""

    def __init__(self, services: SessionServices) -> None:
        self.s = services
        self.errors: list[str] = []

    def methods(self) -> dict[str, grpc.RpcMethodHandler]:
        def ser(msg: Message) -> bytes:
            return msg.to_bytes()
        table: dict[str, grpc.RpcMethodHandler] = {
            m.HEALTH_CHECK: grpc.unary_unary_rpc_method_handler(
                self.health, m.HealthCheckRequest.from_bytes, ser),
            m.FILESYNC_DIFFCOPY: grpc.stream_stream_rpc_method_handler(
                self.diffcopy, m.Packet.from_bytes, ser),
            m.SECRETS_GETSECRET: grpc.unary_unary_rpc_method_handler(
                self.get_secret, m.GetSecretRequest.from_bytes, ser),
        }
        if self.s.credentials is not None:
            table[m.AUTH_CREDENTIALS] = grpc.unary_unary_rpc_method_handler(
                self.credentials, m.CredentialsRequest.from_bytes, ser)
        if self.s.ssh:  # without it the daemon says 'no SSH key "ID" forwarded from the client'
            table[m.SSH_CHECKAGENT] = grpc.unary_unary_rpc_method_handler(
                self.check_agent, m.CheckAgentRequest.from_bytes, ser)
            table[m.SSH_FORWARDAGENT] = grpc.stream_stream_rpc_method_handler(
                self.forward_agent, m.BytesMessage.from_bytes, ser)
        if self.s.output is not None:
            deserialize = m.Packet.from_bytes if self.s.output.kind == "dir" else m.BytesMessage.from_bytes
            table[m.FILESEND_DIFFCOPY] = grpc.stream_stream_rpc_method_handler(self.filesend, deserialize, ser)
        return table

    def health(self, request: m.HealthCheckRequest, context: grpc.ServicerContext) -> m.HealthCheckResponse:
        return m.HealthCheckResponse(status=m.ServingStatus.SERVING)

    def diffcopy(self, requests: Iterator[m.Packet], context: grpc.ServicerContext) -> Iterator[m.Packet]:
        md = _metadata(context)
        request = SyncRequest(dir_name=(md.get("dir-name") or [""])[0],
                              include_patterns=tuple(md.get("include-patterns", ())),
                              exclude_patterns=tuple(md.get("exclude-patterns", ())),
                              follow_paths=tuple(md.get("followpaths", ())))
        root = self.s.dirs.get(request.dir_name)
        if root is None:
            self.errors.append(f"no local directory {request.dir_name!r} in this session")
            _abort(context, grpc.StatusCode.NOT_FOUND, f"no access allowed to dir {request.dir_name!r}")
        local = LocalContext(root, exclude_patterns=request.exclude_patterns,
                             include_patterns=request.include_patterns, follow_paths=request.follow_paths)
        return send_dir(local, requests)

    def get_secret(self, request: m.GetSecretRequest, context: grpc.ServicerContext) -> m.GetSecretResponse:
        value = self.s.secrets.get(request.id)
        if value is None:
            _abort(context, grpc.StatusCode.NOT_FOUND, f"secret {request.id} not found")
        if isinstance(value, bytes):
            return m.GetSecretResponse(data=value)
        try:
            return m.GetSecretResponse(data=Path(value).read_bytes())
        except OSError as error:
            _abort(context, grpc.StatusCode.NOT_FOUND, f"secret {request.id}: cannot read {value}: {error.strerror}")

    def check_agent(self, request: m.CheckAgentRequest, context: grpc.ServicerContext) -> m.CheckAgentResponse:
        ssh_id = request.id or "default"
        if ssh_id not in self.s.ssh:
            _abort(context, grpc.StatusCode.NOT_FOUND, f"unset ssh forward key {ssh_id}")
        return m.CheckAgentResponse()

    def forward_agent(self, requests: Iterator[m.BytesMessage],
                      context: grpc.ServicerContext) -> Iterator[m.BytesMessage]:
        """One connection of a RUN's ssh socket: agent messages in BytesMessages, answered read-only."""
        from solver.solve.agent_relay import answer, frame, split_frames
        ssh_id = (_metadata(context).get(m.SSH_ID_KEY) or [""])[0] or "default"
        path = self.s.ssh.get(ssh_id)
        if path is None:
            _abort(context, grpc.StatusCode.NOT_FOUND, f"unset ssh forward key {ssh_id}")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as agent:
            try:
                agent.connect(str(path))
            except OSError as error:
                _abort(context, grpc.StatusCode.UNAVAILABLE, f"failed to connect to {path}: {error.strerror}")
            buffer = b""
            for message in requests:
                bodies, buffer = split_frames(buffer + message.data)
                for body in bodies:
                    yield m.BytesMessage(data=frame(answer(body, agent)))

    def credentials(self, request: m.CredentialsRequest, context: grpc.ServicerContext) -> m.CredentialsResponse:
        assert self.s.credentials is not None
        found = self.s.credentials(request.host)
        if found is None:
            return m.CredentialsResponse()
        return m.CredentialsResponse(username=found[0], secret=found[1])

    def filesend(self, requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        target = self.s.output
        assert target is not None
        if target.kind == "dir":
            return DirReceiver(target.path).run(requests)
        target.path.parent.mkdir(parents=True, exist_ok=True)
        with open(target.path, "wb") as handle:
            return receive_bytes(requests, handle)


class _Router(grpc.GenericRpcHandler):
    def __init__(self, table: dict[str, grpc.RpcMethodHandler]) -> None:
        self.table = table

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return self.table.get(handler_call_details.method)


class Session:
    """One client session: a local gRPC server plus its connection to the daemon."""

    def __init__(self, services: SessionServices, name: str = "llbook", shared_key: str = "") -> None:
        self.id = new_id()
        self.name = name
        self.shared_key = shared_key or "llbook"
        self._services = _Services(services)
        self._table = self._services.methods()
        self._dir = tempfile.mkdtemp(prefix="llbook-bk-session-")
        os.chmod(self._dir, 0o700)
        self.socket_path = str(Path(self._dir) / "session.sock")
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="llbook-bk-sess"),
                                   handlers=[_Router(self._table)],
                                   options=[("grpc.max_receive_message_length", 64 * 1024 * 1024),
                                            ("grpc.max_send_message_length", 64 * 1024 * 1024)])
        self._server.add_insecure_port(f"unix:{self.socket_path}")
        self._server.start()
        self._threads: list[threading.Thread] = []
        self._closers: list[Callable[[], None]] = []

    @property
    def methods(self) -> list[str]:
        return sorted(self._table)

    @property
    def errors(self) -> list[str]:
        return list(self._services.errors)

    def headers(self) -> dict[str, list[str]]:
        return {HEADER_ID: [self.id], HEADER_NAME: [self.name], HEADER_SHARED_KEY: [self.shared_key],
                HEADER_METHOD: self.methods}

    def _local(self) -> SocketStream:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self.socket_path)
        return SocketStream(sock)

    def _run(self, upstream: Stream) -> None:
        thread = threading.Thread(target=pump, args=(self._local(), upstream), daemon=True,
                                  name="llbook-bk-session-pump")
        thread.start()
        self._threads.append(thread)
        self._closers.append(upstream.close)

    def attach_dockerd(self, socket_path: str, address: str) -> None:
        """dockerd: hijack `/session` and serve the session over it."""
        self._run(hijack(socket_path, "/session", address, "h2c", self.headers()))

    def attach_control(self, channel: grpc.Channel) -> None:
        """buildkitd: tunnel the session through the `Control.Session` bidirectional stream."""
        local = self._local()
        call = channel.stream_stream(m.CONTROL + "Session", request_serializer=lambda msg: msg.to_bytes(),
                                     response_deserializer=m.BytesMessage.from_bytes)
        metadata = [(key.lower(), value) for key, values in self.headers().items() for value in values]

        def outgoing() -> Iterator[m.BytesMessage]:
            while True:
                try:
                    data = local.recv(64 * 1024)
                except OSError:
                    return
                if not data:
                    return
                yield m.BytesMessage(data=data)

        responses = call(outgoing(), metadata=metadata)

        def incoming() -> None:
            try:
                for message in responses:
                    local.sendall(message.data)
            except (grpc.RpcError, OSError):
                pass
            finally:
                local.close()

        thread = threading.Thread(target=incoming, daemon=True, name="llbook-bk-session-control")
        thread.start()
        self._threads.append(thread)
        self._closers.append(responses.cancel)

    def close(self) -> None:
        for closer in self._closers:
            try:
                closer()
            except Exception:
                pass
        self._server.stop(grace=1).wait(5)
        for thread in self._threads:
            thread.join(timeout=5)
        shutil.rmtree(self._dir, ignore_errors=True)
