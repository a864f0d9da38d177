"""docker build's flags in a real kernel: ``%%dockerfile --network|--add-host|--shm-size|--ulimit|
--label|--no-cache-filter|--secret|--ssh`` for one cell and ``%llb config`` for every cell, read back
inside RUN (/etc/hosts, /dev/shm, ulimit, interfaces, a server on the host's loopback, a real
ssh-agent through ``ssh-add -l``, a secret file) and from the exported image."""

from __future__ import annotations

import http.server
import json
import re
import shutil
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from test_build_ssh import SSH_ADD, _ssh_tools, agent  # noqa: F401 - agent: a real ssh-agent holding one key
from test_notebook_history import kernel_env, start, state_of  # noqa: F401 - kernel_env: registry, fresh cache

pytestmark = pytest.mark.root


def run(kernel, code: str, cell_id: str) -> str:
    done = kernel.execute(code, cell_id=cell_id)
    assert done.status == "ok", done.text
    return done.text


def failed(kernel, code: str, cell_id: str) -> str:
    done = kernel.execute(code, cell_id=cell_id)
    assert done.status == "error", done.text
    return done.text


@pytest.fixture
def kernel(kernel_env, tmp_path: Path) -> Iterator:
    k = start(kernel_env, tmp_path)
    yield k
    k.shutdown()


def test_run_flags_per_cell_on_the_session_ones(kernel) -> None:
    run(kernel, "%llb config --add-host session.example:10.1.2.3", "cfg")
    text = run(kernel, "%%dockerfile --add-host cell.example=10.9.8.7 --shm-size 96m --ulimit nofile=321:654\n"
                       "FROM busybox\nRUN cat /etc/hosts; df -k /dev/shm; echo soft=$(ulimit -n) hard=$(ulimit -Hn)\n",
               "c1")
    assert re.search(r"10\.1\.2\.3\s+session\.example", text), text
    assert re.search(r"10\.9\.8\.7\s+cell\.example", text), text
    assert re.search(r"tmpfs\s+98304\s", text), text  # 96m, docker's binary units
    assert "soft=321 hard=654" in text
    second = run(kernel, "%%dockerfile\nRUN cat /etc/hosts; df -k /dev/shm\n", "c2")
    assert re.search(r"10\.1\.2\.3\s+session\.example", second), second
    assert "cell.example" not in second and "98304" not in second  # cell 1's flags stay with cell 1's RUN
    status = run(kernel, "%llb status", "st")
    assert not re.search(r"^1 .*stale", status, re.M), status  # the flags are part of cell 1's lowering
    again = run(kernel, "%%dockerfile --add-host cell.example=10.9.8.7 --shm-size 96m --ulimit nofile=321:654\n"
                        "FROM busybox\nRUN cat /etc/hosts; df -k /dev/shm; echo soft=$(ulimit -n) hard=$(ulimit -Hn)\n",
                "c1")
    assert state_of(again, "RUN cat /etc/hosts; df -k /dev/shm; echo soft=$(ulimit -n) hard=$(ulimit -Hn)") == "CACHED"
    config = run(kernel, "%llb config", "cfg2")
    assert re.search(r"--add-host\s+session\.example:10\.1\.2\.3", config), config


def test_bad_flags_are_the_cli_errors(kernel) -> None:
    text = failed(kernel, "%%dockerfile --add-host nohost\nFROM busybox\n", "c1")
    assert "--add-host: invalid host 'nohost', expected HOST:IP" in text
    text = failed(kernel, "%llb config --ulimit nofile=9:1", "c2")
    assert "soft limit 9 is greater than the hard limit 1" in text
    text = failed(kernel, "%%dockerfile --network bridge\nFROM busybox\n", "c3")
    assert "invalid choice: 'bridge'" in text


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = b"hello-from-the-host\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def host_server() -> Iterator[int]:
    """An HTTP server on this machine's 127.0.0.1 (only --network=host reaches it)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_network_host_needs_the_entitlement_and_none_has_only_loopback(kernel, host_server) -> None:
    cell = f"%%dockerfile --network=host\nFROM busybox\nRUN wget -q -O- http://127.0.0.1:{host_server}/\n"
    refused = failed(kernel, cell, "c1")
    assert "entitlement network.host is not allowed" in refused, refused
    assert "%llb config --allow network.host" in refused
    run(kernel, "%llb config --allow network.host", "cfg")
    assert "hello-from-the-host" in run(kernel, cell, "c1")
    none = failed(kernel, f"%%dockerfile --network=none\nRUN cat /proc/net/dev; wget -q -O- http://127.0.0.1:{host_server}/\n",
                  "c2")
    assert "hello-from-the-host" not in none
    devices = {m.group(1) for m in re.finditer(r"\|\s+(\w+):\s+\d", none)}
    assert devices == {"lo"}, none
    run(kernel, "%%dockerfile --network=none\nRUN cat /proc/net/dev\n", "c2")  # the next cells continue after it
    run(kernel, "%llb config --network none", "cfg2")  # every cell's RUN that names no network
    session_wide = run(kernel, "%%dockerfile\nRUN cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '\n", "c3")
    assert re.findall(r"^#\d+ \| (\w+)$", session_wide, re.M) == ["lo"], session_wide
    overridden = run(kernel, f"%%dockerfile --network host\nRUN wget -q -O- http://127.0.0.1:{host_server}/\n", "c4")
    assert "hello-from-the-host" in overridden  # a cell's --network over the session's


@pytest.mark.skipif(shutil.which("ssh-agent") is None, reason="openssh-client is not installed")
def test_ssh_forwards_a_real_agent(kernel_env, agent, tmp_path: Path) -> None:  # noqa: F811
    sock, listed = agent
    notebook = tmp_path / "nb"  # the kernel's context (the cache dir is beside it): tools/ssh-add for the RUN
    _ssh_tools(notebook)
    k = start({**kernel_env, "SSH_AUTH_SOCK": sock}, notebook)
    try:
        text = run(k, "%%dockerfile --ssh default\nFROM busybox\n"
                      f"RUN --mount=type=bind,source=tools,target=/t --mount=type=ssh {SSH_ADD} -l\n", "c1")
        assert listed in text and "agent-key@llbook" in listed
        missing = failed(k, f"%%dockerfile\nRUN --mount=type=bind,source=tools,target=/t "
                            f"--mount=type=ssh,id=work,required=true {SSH_ADD} -l\n", "c2")
        assert "work" in missing
        run(k, f"%llb config --ssh work={sock}", "cfg")  # the session serves id work to every cell
        text = run(k, f"%%dockerfile\nRUN --mount=type=bind,source=tools,target=/t "
                      f"--mount=type=ssh,id=work,required=true {SSH_ADD} -l\n", "c2")
        assert listed in text
    finally:
        k.shutdown()


def test_secret_per_cell_and_session(kernel, tmp_path: Path) -> None:
    (tmp_path / "token.txt").write_text("s3cr3t-value")
    (tmp_path / "other.txt").write_text("other-value")
    text = run(kernel, f"%%dockerfile --secret id=tok,src={tmp_path / 'token.txt'}\nFROM busybox\n"
                       'RUN --mount=type=secret,id=tok test "$(cat /run/secrets/tok)" = s3cr3t-value && echo tok-ok\n',
               "c1")
    assert "tok-ok" in text
    run(kernel, f"%llb config --secret id=other,src={tmp_path / 'other.txt'}", "cfg")
    text = run(kernel, "%%dockerfile\nRUN --mount=type=secret,id=other,required=true "
                       'test "$(cat /run/secrets/other)" = other-value && echo other-ok\n', "c2")
    assert "other-ok" in text
    missing = failed(kernel, "%%dockerfile\nRUN --mount=type=secret,id=nope,required=true true\n", "c3")
    assert "nope" in missing


def _image_config(archive: Path) -> dict:
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        return json.load(tar.extractfile(manifest[0]["Config"]))


def test_labels_on_the_session_image_and_no_cache_filter(kernel, tmp_path: Path) -> None:
    run(kernel, "%llb config --label team=blue --label tier=one", "cfg")
    first = run(kernel, "%%dockerfile --label tier=two --label app=demo\nFROM busybox AS base\nRUN echo made > /f\n",
                "c1")
    assert state_of(first, "RUN echo made > /f") == "DONE"
    image = tmp_path / "img.tar"
    run(kernel, f"%llb export --output type=docker,dest={image},name=labels:demo", "ex")
    labels = _image_config(image)["config"]["Labels"]
    assert labels == {"org.llbook.test": "busybox", "team": "blue", "tier": "two", "app": "demo"}  # the base's, then ours
    cached = run(kernel, "%%dockerfile\nFROM busybox AS base\nRUN echo made > /f\n", "c1")
    assert state_of(cached, "RUN echo made > /f") == "CACHED"
    filtered = run(kernel, "%%dockerfile --no-cache-filter base\nFROM busybox AS base\nRUN echo made > /f\n", "c1")
    assert state_of(filtered, "RUN echo made > /f") == "DONE"  # the stage's RUN ignores the cache
    other = run(kernel, "%%dockerfile --no-cache-filter other\nFROM busybox AS base\nRUN echo made > /f\n", "c1")
    assert state_of(other, "RUN echo made > /f") == "CACHED"


def test_session_network_host_on_dockerd_and_its_export_in_the_history(kernel_env, dockerd, registry_with_busybox,
                                                                       tmp_path: Path) -> None:
    """dockerd runs here without a bridge: `%llb config --network host --allow network.host` lets a
    RUN that names no network build on its BuildKit, as `llbook build --network=host` does; the
    daemon's export is a build in the history."""
    import uuid
    base = f"{registry_with_busybox.host}/library/busybox:latest"
    nonce = uuid.uuid4().hex[:12]
    k = start(kernel_env, tmp_path)
    name = f"llbook-nb-flags-{nonce}:latest"
    try:
        run(k, "%llb config --buildkit-host dockerd:// --allow network.host", "cfg0")
        bridged = failed(k, f"%%dockerfile\nFROM {base}\nRUN echo default-network-{nonce}\n", "c0")
        assert "network bridge not found" in bridged, bridged  # BuildKit's default network needs dockerd's bridge
        run(k, "%llb reset", "rs")
        run(k, "%llb config --network host", "cfg")
        text = run(k, f"%%dockerfile\nFROM {base}\nRUN echo no-flag-needed-{nonce} | tee /f\n", "c1")
        assert f"no-flag-needed-{nonce}" in text
        (tmp_path / "token.txt").write_text(f"daemon-secret-{nonce}")
        served = run(k, f"%%dockerfile --secret id=tok,src={tmp_path / 'token.txt'}\n"
                        "RUN --mount=type=secret,id=tok,required=true cat /run/secrets/tok\n", "c2")
        assert f"daemon-secret-{nonce}" in served  # the client session serves the cell's secret to the daemon
        exported = run(k, f"%llb export --output type=image,name={name}", "ex")
        digest = re.search(r"digest\s+(sha256:[0-9a-f]{64})", exported).group(1)
        record = run(k, "%llb history inspect ^0", "h")
        assert "Name:           %llb export stage-0" in record and "Network:        host" in record, record
        assert f"Result:         {digest}" in record
        assert dockerd.docker("run", "--rm", "--network=host", name, "cat", "/f").stdout == f"no-flag-needed-{nonce}\n"
    finally:
        k.shutdown()
        dockerd.docker("rmi", "-f", name, check=False)
