"""The notebook's debug terminal against a real JupyterLab server: a terminal created over
the REST API runs `llbook debug` (exec'd, so the terminal is the shell), the shell's output
comes back over the terminal's websocket, and when the "kernel" (the --exit-with process)
ends, the shell, its container and the terminal are gone."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from browser.jupyterlab import start_lab
from kernel_ext.debug_terminal import (DebugTarget, JupyterServer, debug_command, failed_step, open_terminal,
                                       running_terminals, write_session_dockerfile)
from test_build_cli import _env, build, write
from test_debug_shell import DOCKERFILE, cache_listing, mounts_under, processes_with

pytestmark = pytest.mark.root

if os.geteuid() != 0:
    pytest.skip("llbook debug with runc needs root here", allow_module_level=True)


async def _converse(url: str, lines: list[str], marker: str, timeout: float) -> str:
    from tornado.websocket import websocket_connect
    connection = await websocket_connect(url)
    seen = ""
    deadline = time.monotonic() + timeout
    try:
        for line in lines:
            await connection.write_message(json.dumps(["stdin", line]))
        while marker not in seen and time.monotonic() < deadline:
            try:
                message = await asyncio.wait_for(connection.read_message(), 5)
            except asyncio.TimeoutError:
                continue
            if message is None:
                break
            kind, *rest = json.loads(message)
            if kind == "stdout":
                seen += rest[0]
    finally:
        connection.close()
    return seen


def test_failed_step_names() -> None:
    assert failed_step("[4/4] RUN false") == DebugTarget(4, None, before=True)
    assert failed_step("[builder 2/5] RUN make") == DebugTarget(2, "builder", before=True)
    assert failed_step("[stage-0 4] RUN false") == DebugTarget(4, None, before=True)  # a notebook's
    assert failed_step("[internal] load metadata") is None


@pytest.mark.timeout(300)
def test_terminal_runs_the_debug_shell_and_ends_with_its_kernel(registry_config, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    write(context / "Dockerfile", DOCKERFILE)
    cache = tmp_path / "cache"
    build(registry_config, context, cache)
    before = cache_listing(cache)
    env = _env(registry_config)
    (tmp_path / "root").mkdir()
    lab = start_lab(tmp_path / "root", tmp_path / "jupyter", env)
    kernel = subprocess.Popen(["sleep", "600"])  # stands in for the kernel (--exit-with)
    try:
        server = JupyterServer(lab.url + "/", lab.token)
        dockerfile = write_session_dockerfile(DOCKERFILE, cache)
        command = debug_command(dockerfile, cache, context, DebugTarget(3), kernel.pid)
        name = open_terminal(server, command)
        assert name in running_terminals(server)
        output = asyncio.run(_converse(server.websocket_url(name), [
            "cat /proc/1/cmdline; echo; echo $PWD; echo $GREETING; ls /work; echo done-$((6*7))\r"],
            "done-42", 120))
        lines = [line.strip() for line in output.replace("\0", "").replace("\r", "").splitlines()]
        assert "/bin/sh" in lines and "/work" in lines and "hello-from-step" in lines and "built.txt" in lines
        assert mounts_under(cache)  # the shell's throwaway root is mounted

        kernel.kill()  # the kernel ends: the shell and its terminal follow
        kernel.wait()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (name in running_terminals(server) or processes_with(str(cache))):
            time.sleep(0.5)
        assert name not in running_terminals(server)
        assert processes_with(str(cache)) == []
        assert mounts_under(cache) == []
        assert cache_listing(cache) == before
    finally:
        if kernel.poll() is None:
            kernel.kill()
        lab.stop()
