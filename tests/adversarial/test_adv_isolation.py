"""RUN isolation probes under runc, with what the executor promises (README, "The RUN
sandbox"): a script COPYed into a busybox image tries, as root inside RUN, to see a host
process, reach servers on the host's 127.0.0.1 (and slirp's host-loopback gateway 10.0.2.2),
write host paths, mount, write /proc/sys, /proc/sysrq-trigger and /sys, read the host's disk
through a device node it makes, unshare, and learn the host's name. Measured: probes tried,
probes that got through (each prints PROBE name ok|blocked), connections the host servers
accepted, sentinel entries changed."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from adv_helpers import build, host_disk, report, write
from helpers_rootfs import unique_number

pytestmark = pytest.mark.root


class Listener:
    """A TCP server on the host's 127.0.0.1 that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 7\r\n\r\nreached")
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def probe_script(marker: str, sentinel: Path, port: int, disk: tuple[int, int]) -> str:
    s = str(sentinel)
    probes = {
        # the pattern [x]yz matches "xyz" but not grep's own argv
        "host-process": f"grep -l '[{marker[0]}]{marker[1:]}' /proc/[0-9]*/cmdline",
        "host-loopback": f"timeout 5 wget -q -O - http://127.0.0.1:{port}/",
        "slirp-host-gateway": f"timeout 5 wget -q -O - http://10.0.2.2:{port}/",
        "host-path-visible": f"test -e {s}/victim",
        "write-through-proc-root": f"echo pwned > /proc/1/root{s}/victim && test -e {s}/victim",
        "mount-tmpfs": "mount -t tmpfs none /mnt",
        "mount-proc-again": "mkdir -p /p2 && mount -t proc proc /p2",
        "proc-sys-write": "echo 1 > /proc/sys/kernel/sysrq",
        "sysrq-trigger": "echo h > /proc/sysrq-trigger",
        "sys-write": "echo x > /sys/kernel/uevent_helper",
        "host-disk-node": f"mknod /tmp/disk b {disk[0]} {disk[1]} && head -c 512 /tmp/disk >/dev/null",
        "unshare-user": "unshare -U true",
        "hostname-is-hosts": f"test \"$(hostname)\" = {socket.gethostname()}",
        "kernel-modules": "test -w /lib/modules || test -e /proc/kcore && head -c 1 /proc/kcore >/dev/null",
    }
    lines = ["#!/bin/sh"]
    for name, attempt in probes.items():
        lines.append(f"if ( {attempt} ) >/dev/null 2>&1; then echo \"PROBE {name} ok\"; "
                     f"else echo \"PROBE {name} blocked\"; fi")
    return "\n".join(lines) + "\n"


def test_run_cannot_reach_the_host(adv) -> None:
    marker = unique_number()
    host_sleep = subprocess.Popen(["sleep", f"{marker}"])
    listener = Listener()
    try:
        ctx = adv.base / "ctx"
        write(ctx / "probe.sh", probe_script(marker, adv.sentinel, listener.port, host_disk()))
        write(ctx / "Dockerfile", "FROM busybox\nCOPY probe.sh /probe.sh\nRUN sh /probe.sh\n")
        proc, _ = build(adv.env, ctx, adv.cache)
        before_control = listener.accepted
        # the control: with the host's network (and its entitlement) the same probe gets through
        control, _ = build(adv.env, ctx, adv.cache, "--network=host", "--allow", "network.host", "--no-cache")
    finally:
        host_sleep.kill()
        host_sleep.wait()
        listener.close()
    results = dict(line.split("PROBE ", 1)[1].rsplit(" ", 1) for line in proc.stderr.splitlines() if "PROBE " in line)
    through = sorted(name for name, outcome in results.items() if outcome == "ok")
    outside = adv.sentinel_changes()
    for name, outcome in results.items():
        print(f"  {name}: {outcome}")
    report("RUN isolation", f"{len(results)} probes from inside RUN (runc, default network)",
           hostile_inputs=len(results), probes_through=len(through), host_connections=before_control,
           writes_outside=outside)
    assert proc.returncode == 0, proc.stderr
    assert len(results) == 14, proc.stderr
    assert through == [], through
    assert before_control == 0 and outside == 0
    assert control.returncode == 0 and "PROBE host-loopback ok" in control.stderr, control.stderr
    assert listener.accepted >= 1
