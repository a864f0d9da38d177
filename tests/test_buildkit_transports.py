"""The other transports and session services, against dockerd's BuildKit.

No standalone buildkitd is installed on the test machine, so the `unix://` and `tcp://`
transports are exercised against dockerd's embedded BuildKit exposed on a unix socket and
on a loopback TCP port by a test bridge (each connection upgraded on dockerd's `/grpc`).
Through such an address the client behaves as with a buildkitd: grpcio dials the socket
itself and the session runs over `Control.Session`, not dockerd's `/session`.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from solver import llb
from solver.buildkit.backend import registry_credentials
from solver.buildkit.client import BuildKitClient, CapabilityError, Export
from solver.buildkit.session import SessionServices
from solver.buildkit.transport import LocalBridge, SocketStream, hijack, pump
from solver.errors import BuildError
from solver.llb import pb
from solver.source.registry_config import load_registry_config

DOCKER_SOCKET = "/var/run/docker.sock"


@pytest.fixture
def unix_address(dockerd):
    bridge = LocalBridge(lambda: hijack(DOCKER_SOCKET, "/grpc", "test-bridge"), "buildkitd")
    yield f"unix://{bridge.path}"
    bridge.close()


@pytest.fixture
def tcp_address(dockerd):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            upstream = hijack(DOCKER_SOCKET, "/grpc", "test-bridge")
            threading.Thread(target=pump, args=(SocketStream(conn), upstream), daemon=True).start()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(2)
    listener.close()


def _with_context(busybox_ref: str) -> pb.Definition:
    st = llb.image(busybox_ref).run("cat /ctx/hello.txt > /copied && cat /copied", shell=True,
                                    network=pb.NetMode.HOST,
                                    mounts=[llb.bind("/ctx", llb.local("context"), readonly=True)]).root()
    return st.marshal(platform="linux/amd64")


@pytest.mark.parametrize("which", ["unix", "tcp"])
def test_unix_and_tcp_transports_with_control_session(which: str, request, registry_with_busybox,
                                                      tmp_path: Path) -> None:
    address = request.getfixturevalue(f"{which}_address")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    nonce = uuid.uuid4().hex
    (ctx / "hello.txt").write_text(nonce)
    logs: list[bytes] = []
    with BuildKitClient(address) as client:
        assert client.session_via == "auto" and client.address.scheme == which
        assert client.list_workers()
        result = client.solve(_with_context(f"{registry_with_busybox.host}/library/busybox:latest"),
                              services=SessionServices(dirs={"context": ctx}),
                              export=Export("tar", dest=str(tmp_path / "out.tar")),
                              progress=lambda e: logs.append(getattr(e, "data", b"")))
    assert nonce.encode() in b"".join(logs)  # the context came over Control.Session's file sync
    assert not [v for v in result.vertices if v.error]
    import tarfile
    with tarfile.open(tmp_path / "out.tar") as archive:
        assert archive.extractfile("copied").read() == nonce.encode()  # type: ignore[union-attr]


def test_registry_credentials_are_served_to_the_daemon(dockerd, auth_registry, tmp_path: Path) -> None:
    """dockerd's BuildKit asks the session's Auth service for the registry's credentials."""
    ref = f"{auth_registry.host}/library/busybox:latest"
    st = llb.image(ref).run("echo pulled-with-auth", shell=True, network=pb.NetMode.HOST).root()
    defn = st.marshal(platform="linux/amd64")
    config = load_registry_config(env={"DOCKER_CONFIG": str(auth_registry.docker_config_dir)}, home=tmp_path)
    asked: list[str] = []
    lookup = registry_credentials(config)
    assert lookup is not None

    def credentials(host: str) -> tuple[str, str] | None:
        asked.append(host)
        return lookup(host)

    with BuildKitClient("dockerd://") as client:
        with pytest.raises(BuildError):  # without credentials the pull is refused
            client.solve(defn, services=SessionServices())
        client.solve(defn, services=SessionServices(credentials=credentials))
    assert auth_registry.host in asked


def test_push_through_dockerd_is_a_named_missing_exporter(dockerd, registry_with_busybox) -> None:
    """dockerd 20.10's BuildKit has the exporters moby, local and tar only: no `image` (push)."""
    st = llb.image(f"{registry_with_busybox.host}/library/busybox:latest")
    name = f"{registry_with_busybox.host}/llbook/pushed:latest"
    with BuildKitClient("dockerd://") as client:
        try:
            client.solve(st.marshal(platform="linux/amd64"),
                         export=Export("image", {"name": name, "push": "true"}))
        except CapabilityError as error:
            assert "dockerd://" in str(error) and "'image'" in str(error)
        else:
            pytest.skip("this dockerd's BuildKit has the image exporter")


# A stand-in for `buildctl dial-stdio` inside a container: it runs this checkout's Python on
# the host filesystem (mounted read-only at /host) to upgrade dockerd's /grpc and relay the
# bytes on stdin/stdout, which is what buildctl dial-stdio does for a buildkitd socket.
FAKE_BUILDCTL = """#!/bin/sh
[ "$1" = dial-stdio ] || { echo "fake buildctl: only dial-stdio" >&2; exit 2; }
cd /work/main
exec chroot /host env PYTHONPATH=/work/main PYTHONDONTWRITEBYTECODE=1 {python} -c '
import os, sys, threading
from solver.buildkit.transport import hijack
up = hijack("/var/run/docker.sock", "/grpc", "fake-buildctl")
def down():
    while True:
        data = up.recv(65536)
        if not data:
            break
        os.write(1, data)
    os._exit(0)
threading.Thread(target=down, daemon=True).start()
while True:
    data = os.read(0, 65536)
    if not data:
        break
    up.sendall(data)
up.shutdown_write()
threading.Event().wait(30)
'
"""


@pytest.fixture
def fake_buildkit_container(dockerd, registry_with_busybox):
    import sys
    image = f"{registry_with_busybox.host}/library/busybox:latest"
    name = f"llbook-bk-fake-buildkitd-{uuid.uuid4().hex[:8]}"
    dockerd.docker("pull", image)
    dockerd.docker("run", "-d", "--name", name, "--network=host", "-v", "/:/host:ro", image, "sleep", "600")
    try:
        script = FAKE_BUILDCTL.replace("{python}", str(Path(sys.executable).absolute()))
        dockerd.docker("exec", "-i", name, "sh", "-c", "cat > /bin/buildctl && chmod 755 /bin/buildctl",
                       input=script.encode())
        yield name
    finally:
        dockerd.docker("rm", "-f", name, check=False)


def test_docker_container_transport(fake_buildkit_container: str, registry_with_busybox, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    nonce = uuid.uuid4().hex
    (ctx / "hello.txt").write_text(nonce)
    logs: list[bytes] = []
    with BuildKitClient(f"docker-container://{fake_buildkit_container}") as client:
        assert client.list_workers()
        client.solve(_with_context(f"{registry_with_busybox.host}/library/busybox:latest"),
                     services=SessionServices(dirs={"context": ctx}),
                     progress=lambda e: logs.append(getattr(e, "data", b"")))
    assert nonce.encode() in b"".join(logs)


def test_docker_container_that_does_not_exist_is_unreachable(dockerd) -> None:
    from solver.buildkit.client import connect
    from solver.buildkit.transport import DaemonUnreachableError
    with pytest.raises(DaemonUnreachableError, match="docker-container://llbook-no-such-container.*No such container"):
        connect("docker-container://llbook-no-such-container")


def _openssl(*args: str, cwd: Path) -> None:
    import subprocess
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def tls_files(tmp_path: Path) -> Path:
    """A CA, a server certificate for "buildkitd", and a client certificate (mutual TLS)."""
    import shutil
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path / "tls"
    d.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=llbook test CA",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    (d / "san.ext").write_text("subjectAltName=DNS:buildkitd\n")
    for who in ("server", "client"):
        cn = "buildkitd" if who == "server" else "llbook-client"
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout", f"{who}.key",
                 "-out", f"{who}.csr", cwd=d)
        _openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-out", f"{who}.pem", *(["-extfile", "san.ext"] if who == "server" else []), cwd=d)
    return d


@pytest.fixture
def tls_address(dockerd, tls_files: Path):
    """tcp:// with mutual TLS (ALPN h2), terminated here and relayed to dockerd's /grpc."""
    import ssl
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files / "server.pem", tls_files / "server.key")
    context.load_verify_locations(tls_files / "ca.pem")
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()
    refused: list[str] = []

    def relay(conn: socket.socket) -> None:
        try:
            tls = context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as error:
            refused.append(str(error))
            conn.close()
            return
        pump(SocketStream(tls), hijack(DOCKER_SOCKET, "/grpc", "tls-bridge"))

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.settimeout(None)
            threading.Thread(target=relay, args=(conn,), daemon=True).start()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{listener.getsockname()[1]}", refused
    stop.set()
    thread.join(2)
    listener.close()


def test_tcp_with_mutual_tls(tls_address, tls_files: Path) -> None:
    from solver.buildkit.address import TLSFiles
    from solver.buildkit.client import connect
    from solver.buildkit.transport import DaemonUnreachableError
    address, refused = tls_address
    tls = TLSFiles(str(tls_files / "ca.pem"), str(tls_files / "client.pem"), str(tls_files / "client.key"),
                   server_name="buildkitd")
    client = connect(address, tls)
    try:
        assert client.list_workers()
    finally:
        client.close()
    without_client_cert = TLSFiles(str(tls_files / "ca.pem"), server_name="buildkitd")
    with pytest.raises(DaemonUnreachableError, match=address):
        connect(address, without_client_cert)
    deadline = time.monotonic() + 30  # the server thread records its side of the handshake after the client gave up
    while not refused and time.monotonic() < deadline:
        time.sleep(0.05)
    assert refused  # the server refused the handshake without a client certificate
