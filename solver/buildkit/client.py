"""A client of BuildKit's Control API (`moby.buildkit.v1.Control`): workers, solve, status, usage.

    with BuildKitClient("dockerd://") as client:
        client.list_workers()
        result = client.solve(definition, export=Export("moby", {"name": "demo:latest"}),
                              services=SessionServices(dirs={"context": Path(".")}),
                              progress=bus.emit)

A solve opens a session (see `session.py`) so that the daemon can pull local directories,
secrets and credentials and push client-side outputs; it follows the Status stream of the
same ref and turns it into llbook progress events (`progress.py`). Errors name the address:
`DaemonUnreachableError`, `CapabilityError`, `EntitlementError`, or a `BuildError` shaped
like the embedded solver's (vertex, name, exit code, log tail, Dockerfile line).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc

from solver.buildkit import messages as m
from solver.buildkit.address import Address, TLSFiles, parse_address
from solver.buildkit.progress import DaemonVertex, Emit, StatusTranslator
from solver.buildkit.session import OutputTarget, Session, SessionServices, new_id
from solver.buildkit.transport import Connection, DaemonUnreachableError, open_channel
from solver.errors import BuildError, LLBookError
from solver.llb import pb
from solver.llb.codec import Message

CLIENT_SIDE_EXPORTERS = ("local", "tar", "oci", "docker")
_EXIT_CODE = re.compile(r"exit code: (-?\d+)")
_UNKNOWN_CAP = re.compile(r"unknown API capability ([\w.]+)")
_NO_EXPORTER = re.compile(r'exporter "([\w.-]+)" could not be found')


class CapabilityError(LLBookError):
    """The daemon lacks something the build needs (an API method, an op feature, an exporter)."""


class EntitlementError(LLBookError):
    """The daemon refused an entitlement (network.host, security.insecure)."""


@dataclass(frozen=True)
class Export:
    """One exporter: `moby` (dockerd's image store), `image`, or a client-side `local|tar|oci|docker`."""

    type: str
    attrs: dict[str, str] = field(default_factory=dict)
    dest: str | None = None  # client-side path for local/tar/oci/docker

    def target(self) -> OutputTarget | None:
        if self.type not in CLIENT_SIDE_EXPORTERS:
            return None
        if not self.dest:
            raise LLBookError(f"--output type={self.type} needs dest=PATH")
        from pathlib import Path
        return OutputTarget("dir" if self.type == "local" else "file", Path(self.dest).expanduser().absolute())


@dataclass
class BuildKitResult:
    """What the daemon returned: exporter response and every vertex it reported."""

    ref: str
    exporter_response: dict[str, str]
    vertices: list[DaemonVertex]

    @property
    def cached_count(self) -> int:
        return sum(1 for v in self.vertices if v.cached)

    @property
    def executed(self) -> list[DaemonVertex]:
        return [v for v in self.vertices if not v.cached]


def _serialize(msg: Message) -> bytes:
    return msg.to_bytes()


def needs_entitlements(definition: pb.Definition) -> list[str]:
    """Entitlements the Definition's exec ops ask for (host network, privileged)."""
    wanted: set[str] = set()
    for data in definition.def_:
        op = pb.Op.from_bytes(data)
        if isinstance(op.op, pb.ExecOp):
            if op.op.network == pb.NetMode.HOST:
                wanted.add("network.host")
            if op.op.security == pb.SecurityMode.INSECURE:
                wanted.add("security.insecure")
    return sorted(wanted)


class BuildKitClient:
    """A connection to one BuildKit daemon."""

    def __init__(self, address: str | Address, tls: TLSFiles | None = None, timeout: float = 20.0,
                 session_via: str = "auto") -> None:
        """`session_via`: "auto" (dockerd: its `/session` endpoint; others: `Control.Session`),
        "hijack" or "control"."""
        self.address = address if isinstance(address, Address) else parse_address(address, tls)
        self.timeout = timeout
        if session_via not in ("auto", "hijack", "control"):
            raise ValueError(f"session_via must be auto, hijack or control, not {session_via!r}")
        if session_via == "hijack" and self.address.scheme != "dockerd":
            raise ValueError("session_via='hijack' needs a dockerd:// address")
        self.session_via = session_via
        self._conn: Connection = open_channel(self.address)

    def __enter__(self) -> "BuildKitClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    @property
    def channel(self) -> grpc.Channel:
        return self._conn.channel

    # ---------------------------------------------------------------- errors

    def _error(self, error: grpc.RpcError, method: str) -> LLBookError:
        code = error.code() if hasattr(error, "code") else None
        details = (error.details() if hasattr(error, "details") else "") or str(error)
        if code == grpc.StatusCode.UNAVAILABLE:
            cause = self._conn.bridge.last_error if self._conn.bridge is not None else None
            if cause is None and self._conn.bridge is not None:
                time.sleep(0.3)  # a failed helper is reported once its stderr is read
                cause = self._conn.bridge.last_error
            return DaemonUnreachableError(str(self.address), str(getattr(cause, "cause", cause) or details))
        if code == grpc.StatusCode.UNIMPLEMENTED:
            return CapabilityError(f"BuildKit daemon at {self.address} does not implement {method}: {details}")
        cap = _UNKNOWN_CAP.search(details)
        if cap:
            return CapabilityError(f"BuildKit daemon at {self.address} lacks the capability {cap.group(1)!r} "
                                   f"this build needs: {details}")
        exporter = _NO_EXPORTER.search(details)
        if exporter:
            hint = " (dockerd 20.10's embedded BuildKit has moby, local and tar)" \
                if self.address.scheme == "dockerd" else ""
            return CapabilityError(f"BuildKit daemon at {self.address} has no exporter "
                                   f"{exporter.group(1)!r}{hint}: {details}")
        if "entitlement" in details.lower() or "is not allowed" in details:
            return EntitlementError(f"BuildKit daemon at {self.address} refused an entitlement: {details}")
        return LLBookError(f"BuildKit daemon at {self.address}: {method} failed: {details}")

    def _unary(self, method: str, request: Any, response_type: type[Message], timeout: float | None = None) -> Any:
        call = self.channel.unary_unary(m.CONTROL + method, request_serializer=_serialize,
                                        response_deserializer=response_type.from_bytes)
        try:
            return call(request, timeout=timeout or self.timeout)
        except grpc.RpcError as error:
            raise self._error(error, method) from None

    # ---------------------------------------------------------------- simple calls

    def list_workers(self, filters: Iterable[str] = ()) -> list[m.WorkerRecord]:
        return list(self._unary("ListWorkers", m.ListWorkersRequest(filter=list(filters)),
                                m.ListWorkersResponse).record)

    def info(self) -> m.BuildkitVersion | None:
        """The daemon's BuildKit version, or None for daemons without Control.Info (before v0.11)."""
        try:
            response: m.InfoResponse = self._unary("Info", m.InfoRequest(), m.InfoResponse)
            return response.buildkit_version
        except CapabilityError:
            return None

    def disk_usage(self, filters: Iterable[str] = ()) -> list[m.UsageRecord]:
        return list(self._unary("DiskUsage", m.DiskUsageRequest(filter=list(filters)), m.DiskUsageResponse,
                                timeout=300).record)

    def prune(self, *, all: bool = False, filters: Iterable[str] = (), keep_duration_s: float = 0) -> list[m.UsageRecord]:
        call = self.channel.unary_stream(m.CONTROL + "Prune", request_serializer=_serialize,
                                         response_deserializer=m.UsageRecord.from_bytes)
        request = m.PruneRequest(filter=list(filters), all=all, keep_duration=int(keep_duration_s * 1e9))
        try:
            return list(call(request, timeout=600))
        except grpc.RpcError as error:
            raise self._error(error, "Prune") from None

    # ---------------------------------------------------------------- solve

    def _attach(self, session: Session) -> None:
        if self.session_via == "hijack" or (self.session_via == "auto" and self.address.scheme == "dockerd"):
            session.attach_dockerd(self.address.path, str(self.address))
        else:
            session.attach_control(self.channel)

    def solve(self, definition: pb.Definition | Any, *, export: Export | None = None,
              services: SessionServices | None = None, entitlements: Iterable[str] | None = None,
              progress: Emit | None = None, cancel: threading.Event | None = None,
              locations: dict[str, tuple[str | None, int | None]] | None = None,
              frontend_attrs: dict[str, str] | None = None,
              image_config: dict[str, Any] | None = None) -> BuildKitResult:
        """Solve a Definition (or a State) on the daemon, following its Status stream.

        With `image_config` (an OCI image config, e.g. the Dockerfile frontend's), llbook acts
        as the build's frontend through the daemon's LLBBridge (as Go's `client.Build` does):
        exporters take an image's config only from a frontend result's metadata, never from a
        bare Definition.
        """
        defn = definition if isinstance(definition, pb.Definition) else definition.marshal()
        services = services or SessionServices()
        if export is not None:
            services.output = export.target()
        ents = sorted(set(entitlements if entitlements is not None else needs_entitlements(defn)))
        ref = new_id()
        translator = StatusTranslator(progress)
        session = Session(services, shared_key=shared_key(services))
        try:
            self._attach(session)
            status = _StatusFollower(self.channel, ref, translator)
            gateway = image_config is not None
            request = m.SolveRequest(ref=ref, definition=None if gateway else defn, session=session.id,
                                     entitlements=ents, frontend_attrs=dict(frontend_attrs or {}))
            if export is not None:
                request.exporter_deprecated = export.type
                request.exporter_attrs_deprecated = dict(export.attrs)
            call = self.channel.unary_unary(m.CONTROL + "Solve", request_serializer=_serialize,
                                            response_deserializer=m.SolveResponse.from_bytes)
            future = call.future(request)
            watcher = _cancel_on(cancel, future)
            try:
                if gateway:
                    self._frontend(ref, defn, {"containerimage.config": json.dumps(image_config).encode()})
                response = future.result()
            except grpc.RpcError as error:
                status.join()
                raise self._solve_error(error, translator, locations or {}) from None
            except grpc.FutureCancelledError:
                status.join()
                raise KeyboardInterrupt("build canceled") from None
            except KeyboardInterrupt:  # interrupted while waiting (Ctrl-C, a kernel interrupt)
                future.cancel()
                status.join(timeout=5)
                raise
            finally:
                watcher.set()
            status.join()
            vertices = [translator.records[d] for d in translator.order]
            return BuildKitResult(ref, dict(response.exporter_response), vertices)
        finally:
            session.close()

    def _frontend(self, ref: str, defn: pb.Definition, metadata: dict[str, bytes]) -> None:
        """Be the build's frontend: solve `defn` through LLBBridge and return it with `metadata`.

        A failure is returned to the daemon as the build's error; Control.Solve then fails
        with it, and the caller reports it from there.
        """
        md = [(m.BUILDID_METADATA_KEY, ref)]
        solve = self.channel.unary_unary(m.LLBBRIDGE + "Solve", request_serializer=_serialize,
                                         response_deserializer=m.GatewaySolveResponse.from_bytes)
        give_back = self.channel.unary_unary(m.LLBBRIDGE + "Return", request_serializer=_serialize,
                                             response_deserializer=m.ReturnResponse.from_bytes)
        try:
            response = solve(m.GatewaySolveRequest(definition=defn, allow_result_return=True,
                                                   allow_result_array_ref=True), metadata=md)
            ref_id = response.result.ref_id() if response.result is not None else response.ref
            result = m.GatewayResult(result=m.GatewayRef(id=ref_id), metadata=metadata)
            give_back(m.ReturnRequest(result=result), metadata=md)
        except grpc.RpcError as error:
            status = m.RpcStatus(code=error.code().value[0], message=error.details() or str(error))
            try:
                give_back(m.ReturnRequest(error=status), metadata=md)
            except grpc.RpcError:
                pass  # the daemon already ended the build; Control.Solve reports why

    def _solve_error(self, error: grpc.RpcError, translator: StatusTranslator,
                     locations: dict[str, tuple[str | None, int | None]]) -> LLBookError:
        details = (error.details() if hasattr(error, "details") else "") or str(error)
        failed = translator.failed()
        if failed and error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNIMPLEMENTED):
            vertex = failed[0]
            code = _EXIT_CODE.search(vertex.error)
            filename, line = locations.get(vertex.digest, (None, None))
            return BuildError(vertex.error, vertex=vertex.digest, name=vertex.name,
                              exit_code=int(code.group(1)) if code else None, log_tail=vertex.tail.lines(20),
                              filename=filename, line=line)
        wrapped = self._error(error, "Solve")
        if type(wrapped) is LLBookError:  # not unreachable, capability or entitlement: the build failed
            return BuildError(f"BuildKit daemon at {self.address}: {details}")
        return wrapped


def shared_key(services: SessionServices) -> str:
    """The session's shared key: the daemon keeps one synced copy of each local directory per
    (name, key), so this machine's directories do not overwrite other clients' copies."""
    import hashlib
    import socket
    text = socket.gethostname() + "\0" + "\0".join(f"{k}={v}" for k, v in sorted(services.dirs.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _cancel_on(cancel: threading.Event | None, future: Any) -> threading.Event:
    """Cancel the Solve call when `cancel` is set; the returned event stops the watcher."""
    done = threading.Event()
    if cancel is None:
        return done

    def watch() -> None:
        while not done.is_set():
            if cancel.wait(0.2):
                future.cancel()
                return
    threading.Thread(target=watch, daemon=True, name="llbook-bk-cancel").start()
    return done


class _StatusFollower:
    """Reads `Control.Status(ref)` on a thread and feeds the translator until the stream ends."""

    def __init__(self, channel: grpc.Channel, ref: str, translator: StatusTranslator) -> None:
        call = channel.unary_stream(m.CONTROL + "Status", request_serializer=_serialize,
                                    response_deserializer=m.StatusResponse.from_bytes)
        self._stream = call(m.StatusRequest(ref=ref))
        self._translator = translator
        self.error: grpc.RpcError | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="llbook-bk-status")
        self._thread.start()

    def _run(self) -> None:
        try:
            for response in self._stream:
                self._translator.feed(response)
        except grpc.RpcError as error:
            self.error = error

    def join(self, timeout: float = 30) -> None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._stream.cancel()
            self._thread.join(5)


def connect(address: str, tls: TLSFiles | None = None, callback: Callable[[list[m.WorkerRecord]], None] | None = None
            ) -> BuildKitClient:
    """A client whose daemon has answered ListWorkers (so an unreachable one fails here, by name)."""
    client = BuildKitClient(address, tls)
    try:
        workers = client.list_workers()
    except BaseException:
        client.close()
        raise
    if not workers:
        client.close()
        raise CapabilityError(f"BuildKit daemon at {address} has no workers")
    if callback is not None:
        callback(workers)
    return client
