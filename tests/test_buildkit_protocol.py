"""The BuildKit client's pieces that need no daemon: addresses, message bytes, fsutil's
DiffCopy protocol (llbook's sender wired to llbook's receiver), Go file modes, status
translation, and the bridge's HTTP upgrade against a local fake of dockerd's endpoint."""

from __future__ import annotations

import os
import queue
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from solver.buildkit import messages as m
from solver.buildkit.address import BuildKitAddressError, TLSFiles, address_from_env, parse_address
from solver.buildkit.filesync import DirReceiver, go_mode, send_dir, unix_mode
from solver.buildkit.progress import StatusTranslator
from solver.buildkit.transport import DaemonUnreachableError, hijack
from solver.llb import pb
from solver.solve import progress as p
from solver.source.local import LocalContext


def test_addresses() -> None:
    assert parse_address("dockerd://").path == "/var/run/docker.sock"
    assert parse_address("dockerd:///run/alt.sock").path == "/run/alt.sock"
    assert parse_address("unix:///run/buildkit/buildkitd.sock").path == "/run/buildkit/buildkitd.sock"
    tcp = parse_address("tcp://buildkitd.example:1234", TLSFiles(ca_cert="ca.pem"))
    assert (tcp.host, tcp.port, tcp.tls.enabled) == ("buildkitd.example", 1234, True)
    assert parse_address("docker-container://buildx_buildkit_default0").container == "buildx_buildkit_default0"
    for bad in ("buildkitd", "tcp://nohost", "unix://", "ssh://x", "docker-container://"):
        with pytest.raises(BuildKitAddressError):
            parse_address(bad)
    assert address_from_env({"BUILDKIT_HOST": "tcp://a:1"}) == "tcp://a:1"
    assert address_from_env({"BUILDKIT_HOST": "tcp://a:1", "LLBOOK_BUILDKIT_HOST": "dockerd://"}) == "dockerd://"
    assert address_from_env({}) is None


def test_solve_request_bytes() -> None:
    defn = pb.Definition(def_=[b"\x1a\x00"])
    req = m.SolveRequest(ref="r", definition=defn, exporter_deprecated="moby",
                         exporter_attrs_deprecated={"name": "a"}, session="s", entitlements=["network.host"])
    # Ref(1) Definition(2) ExporterDeprecated(3) ExporterAttrsDeprecated(4) Session(5) Entitlements(9)
    assert req.to_bytes() == (b"\x0a\x01r" + b"\x12\x04\x0a\x02\x1a\x00" + b"\x1a\x04moby"
                              + b"\x22\x09\x0a\x04name\x12\x01a" + b"\x2a\x01s" + b"\x4a\x0cnetwork.host")
    assert m.SolveRequest.from_bytes(req.to_bytes()) == req


def test_status_response_decodes_timestamps_and_logs() -> None:
    vertex = m.ControlVertex(digest="sha256:a", name="RUN x", started=m.Timestamp(10, 500_000_000))
    log = m.ControlVertexLog(vertex="sha256:a", stream=2, msg=b"oops\n", timestamp=m.Timestamp(11))
    data = m.StatusResponse(vertexes=[vertex], logs=[log]).to_bytes()
    back = m.StatusResponse.from_bytes(data)
    assert back.vertexes[0].started.to_float() == 10.5 and back.logs[0].msg == b"oops\n"


def test_status_translation_sequences() -> None:
    events: list[p.ProgressEvent] = []
    t = StatusTranslator(events.append)
    t.feed(m.StatusResponse(vertexes=[m.ControlVertex(digest="d1", name="a")]))  # known, not started
    t.feed(m.StatusResponse(vertexes=[m.ControlVertex(digest="d1", name="a", started=m.Timestamp(1))]))
    t.feed(m.StatusResponse(logs=[m.ControlVertexLog(vertex="d1", stream=1, msg=b"hi\n")]))
    t.feed(m.StatusResponse(vertexes=[m.ControlVertex(digest="d1", name="a", started=m.Timestamp(1),
                                                      completed=m.Timestamp(2))]))
    t.feed(m.StatusResponse(vertexes=[m.ControlVertex(digest="d2", name="b", cached=True, started=m.Timestamp(3),
                                                      completed=m.Timestamp(3))]))
    t.feed(m.StatusResponse(vertexes=[m.ControlVertex(digest="d3", name="c", started=m.Timestamp(4),
                                                      completed=m.Timestamp(5), error="exit code: 2")]))
    kinds = [(type(e).__name__, getattr(e, "digest", "")) for e in events]
    assert kinds == [("VertexStarted", "d1"), ("VertexLog", "d1"), ("VertexCompleted", "d1"),
                     ("VertexCached", "d2"), ("VertexStarted", "d3"), ("VertexFailed", "d3")]
    assert t.records["d1"].tail.lines() == ["hi"] and [v.digest for v in t.failed()] == ["d3"]


@pytest.mark.parametrize("mode", [stat.S_IFDIR | 0o755, stat.S_IFREG | 0o4755, stat.S_IFLNK | 0o777,
                                  stat.S_IFIFO | 0o600, stat.S_IFCHR | 0o666, stat.S_IFBLK | 0o660,
                                  stat.S_IFDIR | 0o1777, stat.S_IFREG | 0o2644])
def test_go_file_modes_round_trip(mode: int) -> None:
    assert unix_mode(go_mode(mode)) == mode
    if stat.S_ISDIR(mode):
        assert go_mode(mode) & (1 << 31)


def _wire(sender, receiver) -> None:
    """Run sender(requests) and receiver(requests) against each other, like a gRPC stream."""
    to_receiver: queue.Queue = queue.Queue()
    to_sender: queue.Queue = queue.Queue()

    def drain(q: queue.Queue) -> Iterator:
        while True:
            item = q.get()
            if item is None:
                return
            yield item

    def run_sender() -> None:
        for packet in sender(drain(to_sender)):
            to_receiver.put(m.Packet.from_bytes(packet.to_bytes()))
        to_receiver.put(None)

    thread = threading.Thread(target=run_sender)
    thread.start()
    for packet in receiver(drain(to_receiver)):
        to_sender.put(m.Packet.from_bytes(packet.to_bytes()))
    to_sender.put(None)
    thread.join(10)
    assert not thread.is_alive()


def test_diffcopy_sender_and_receiver_agree(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "a" / "b" / "deep.txt").write_bytes(b"deep")
    (src / "big.bin").write_bytes(os.urandom(100_000))
    (src / "empty").write_bytes(b"")
    (src / "link").symlink_to("a/b/deep.txt")
    (src / "skip.log").write_text("x")
    os.chmod(src / "a", 0o750)
    os.chmod(src / "big.bin", 0o600)
    context = LocalContext(src, exclude_patterns=["*.log"])
    dest = tmp_path / "dest"
    _wire(lambda requests: send_dir(context, requests), DirReceiver(dest).run)
    assert (dest / "a" / "b" / "deep.txt").read_bytes() == b"deep"
    assert (dest / "big.bin").read_bytes() == (src / "big.bin").read_bytes()
    assert (dest / "empty").read_bytes() == b""
    assert os.readlink(dest / "link") == "a/b/deep.txt"
    assert not (dest / "skip.log").exists()
    assert stat.S_IMODE((dest / "a").stat().st_mode) == 0o750
    assert stat.S_IMODE((dest / "big.bin").stat().st_mode) == 0o600
    assert (dest / "big.bin").stat().st_mtime_ns == (src / "big.bin").stat().st_mtime_ns


def test_receiver_refuses_paths_outside_its_root(tmp_path: Path) -> None:
    evil = [m.Packet(type=m.PacketType.PACKET_STAT, stat=m.FsStat(path="../escape", mode=0o644)),
            m.Packet(type=m.PacketType.PACKET_STAT)]
    with pytest.raises(ValueError, match="unsafe path"):
        list(DirReceiver(tmp_path / "d").run(iter(evil)))
    assert not (tmp_path / "escape").exists()


def _fake_dockerd(path: str, reply: bytes) -> threading.Thread:
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(4096)
        serve.request = request  # type: ignore[attr-defined]
        conn.sendall(reply)
        conn.close()
        listener.close()
    thread = threading.Thread(target=serve)
    thread.start()
    thread.serve = serve  # type: ignore[attr-defined]
    return thread


def test_hijack_sends_upgrade_and_keeps_early_bytes(tmp_path: Path) -> None:
    path = str(tmp_path / "docker.sock")
    server = _fake_dockerd(path, b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nEARLY")
    stream = hijack(path, "/session", "dockerd://x", headers={"X-Docker-Expose-Session-Uuid": ["abc"]})
    assert stream.recv(100) == b"EARLY"
    stream.close()
    server.join(5)
    request = server.serve.request  # type: ignore[attr-defined]
    assert request.startswith(b"POST /session HTTP/1.1\r\n")
    assert b"Upgrade: h2c\r\n" in request and b"X-Docker-Expose-Session-Uuid: abc\r\n" in request


def test_hijack_refused_names_address_and_status(tmp_path: Path) -> None:
    path = str(tmp_path / "docker.sock")
    server = _fake_dockerd(path, b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found")
    with pytest.raises(DaemonUnreachableError, match=r"dockerd://x.*404 Not Found"):
        hijack(path, "/grpc", "dockerd://x")
    server.join(5)


def test_rebuild_reasons_from_the_daemons_vertices() -> None:
    from solver.buildkit.backend import add_reasons
    from solver.solve.result import Ref, SolveResult, VertexRecord
    image = VertexRecord("d0", "FROM", kind="image", completed=1.0)
    first = VertexRecord("d1", "RUN a", kind="exec", inputs=["d0"], completed=2.0)
    second = VertexRecord("d2", "RUN b", kind="exec", inputs=["d1"], completed=3.0)
    kept = VertexRecord("d3", "COPY", kind="file", inputs=["d0"], cached=True, completed=3.0)
    result = SolveResult("d2", 0, Ref("remote"), [image, first, second, kept])
    add_reasons(result, "dockerd://", no_cache=False)
    assert first.reasons == [{"kind": "daemon", "message": "not in the cache of the BuildKit daemon at dockerd://"}]
    assert second.reasons == [{"kind": "parent", "message": "a parent was rebuilt: RUN a"}]
    assert image.reasons == [] and kept.reasons == []
    add_reasons(result, "dockerd://", no_cache=True)
    assert second.reasons == [{"kind": "no-cache", "message": "--no-cache"}]
