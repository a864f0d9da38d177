"""RUN's own network: no way to the host's loopback by default, the "internet" still
reachable, and the host's loopback with `--network=host --allow network.host`.

Everything happens in network namespaces this test makes: ``host`` plays the machine a
build runs on (llbook, runc and slirp4netns run in it, with an HTTP server on its
127.0.0.1), ``net`` plays the internet (an HTTP server on an address the test assigns),
joined by a veth pair with 10.x addresses. No address of this machine's own interfaces
is used or changed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers_rootfs import BUSYBOX, busybox_available

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[1]
WAIT = 20.0  # bound for a server to answer


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "nsenter", "runc", "slirp4netns"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not busybox_available():
        return "no static busybox"
    return None


@dataclass(frozen=True)
class Net:
    host_ns: str
    internet_ns: str
    internet_ip: str
    port: int
    host_port: int  # the server on the build host's 127.0.0.1


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _subnet() -> tuple[str, str]:
    """Two addresses of a 10.x/30 that none of this machine's interfaces uses."""
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    for _ in range(100):
        a, b = 200 + secrets.randbelow(50), secrets.randbelow(256)
        prefix = f"10.{a}.{b}."
        if prefix not in used and prefix not in routes:
            return prefix + "1", prefix + "2"
    raise AssertionError("no free 10.x subnet")


def _serve(ns: str, address: str, port: int, directory: Path) -> subprocess.Popen:
    proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{ns}", "--", sys.executable, "-m", "http.server",
                             "-b", address, "-d", str(directory), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc


def _answers(ns: str, address: str, port: int) -> bool:
    probe = (f"import socket; s = socket.create_connection(('{address}', {port}), timeout=1); s.close()")
    return subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "--", sys.executable, "-c", probe],
                          capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    tag = secrets.token_hex(3)
    host_ns, internet_ns = f"llbook-test-host-{tag}", f"llbook-test-net-{tag}"
    host_ip, internet_ip = _subnet()
    www = tmp_path_factory.mktemp("www")
    (www / "hello.txt").write_text("hello from the internet\n")
    local = tmp_path_factory.mktemp("local")
    (local / "secret.txt").write_text("host loopback secret\n")
    servers: list[subprocess.Popen] = []
    try:
        _ip("netns", "add", host_ns)
        _ip("netns", "add", internet_ns)
        _ip("-n", host_ns, "link", "add", "veth-h", "type", "veth", "peer", "name", "veth-n", "netns", internet_ns)
        _ip("-n", host_ns, "addr", "add", f"{host_ip}/30", "dev", "veth-h")
        _ip("-n", internet_ns, "addr", "add", f"{internet_ip}/30", "dev", "veth-n")
        for ns, dev in ((host_ns, "veth-h"), (internet_ns, "veth-n")):
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", dev, "up")
        _ip("-n", host_ns, "route", "add", "default", "via", internet_ip)
        port, host_port = 8000 + secrets.randbelow(1000), 9000 + secrets.randbelow(1000)
        servers.append(_serve(internet_ns, internet_ip, port, www))
        servers.append(_serve(host_ns, "127.0.0.1", host_port, local))
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and not (_answers(host_ns, internet_ip, port)
                                                   and _answers(host_ns, "127.0.0.1", host_port)):
            time.sleep(0.1)
        assert _answers(host_ns, internet_ip, port) and _answers(host_ns, "127.0.0.1", host_port)
        yield Net(host_ns, internet_ns, internet_ip, port, host_port)
    finally:
        for server in servers:
            server.kill()
            server.wait()
        for ns in (host_ns, internet_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _build(net: Net, tmp_path: Path, run_lines: str, *extra: str) -> subprocess.CompletedProcess:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    shutil.copy2(BUSYBOX, ctx / "busybox")
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY busybox /bin/busybox\n"
                                    'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n' + run_lines)
    env = dict(os.environ, PYTHONPATH=str(ROOT), LLBOOK_EXECUTOR="runc")
    return subprocess.run(["nsenter", f"--net=/run/netns/{net.host_ns}", "--", sys.executable, "-m", "solver.cli",
                           "build", "--progress", "plain", "--no-cache", "--cache-dir", str(tmp_path / "cache"),
                           *extra, str(ctx)], env=env, capture_output=True, text=True, timeout=300)


def test_default_run_reaches_the_internet_but_not_host_loopback(net: Net, tmp_path: Path) -> None:
    internet = f"http://{net.internet_ip}:{net.port}/hello.txt"
    lines = (f"RUN wget -q -O - {internet} | sed 's/^/got: /'\n"
             f"RUN for target in 127.0.0.1 10.0.2.2; do "
             f"if wget -q -T 5 -O - http://$target:{net.host_port}/secret.txt; then echo reached-$target; exit 1; "
             f"else echo blocked-$target; fi; done\n"
             "RUN ls /sys/class/net | tr '\\n' ' ' | sed 's/^/interfaces: /'\n")
    proc = _build(net, tmp_path, lines)
    assert proc.returncode == 0, proc.stderr
    assert "got: hello from the internet" in proc.stderr
    assert "blocked-127.0.0.1" in proc.stderr and "blocked-10.0.2.2" in proc.stderr
    assert "host loopback secret" not in proc.stderr
    assert "interfaces: lo tap0" in proc.stderr


def test_network_host_with_the_entitlement_reaches_host_loopback(net: Net, tmp_path: Path) -> None:
    lines = f"RUN --network=host wget -q -O - http://127.0.0.1:{net.host_port}/secret.txt\n"
    refused = _build(net, tmp_path, lines)
    assert refused.returncode == 1 and "network.host" in refused.stderr
    proc = _build(net, tmp_path, lines, "--allow", "network.host")
    assert proc.returncode == 0, proc.stderr
    assert "host loopback secret" in proc.stderr


def test_network_none_reaches_nothing(net: Net, tmp_path: Path) -> None:
    lines = (f"RUN if wget -q -T 5 -O - http://{net.internet_ip}:{net.port}/hello.txt; then exit 1; fi; "
             "ls /sys/class/net | sed 's/^/iface: /'\n").replace("RUN ", "RUN --network=none ", 1)
    proc = _build(net, tmp_path, lines)
    assert proc.returncode == 0, proc.stderr
    assert "iface: lo" in proc.stderr and "iface: tap0" not in proc.stderr
    assert "hello from the internet" not in proc.stderr
