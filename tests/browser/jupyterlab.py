"""Start a JupyterLab server on 127.0.0.1 with a token, isolated settings and workspaces,
and stop it (the whole process group) afterwards."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path


@dataclass
class LabServer:
    url: str  # http://127.0.0.1:PORT
    token: str
    root: Path
    process: subprocess.Popen
    log: Path

    def page_url(self, notebook: str) -> str:
        return f"{self.url}/lab/tree/{notebook}?token={self.token}&reset"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(root: Path, state_dir: Path, env: dict[str, str], timeout: float = 90,
              extra_args: tuple[str, ...] = ()) -> LabServer:
    """JupyterLab serving ``root``; kernels inherit ``env``; ``extra_args`` go on its command line."""
    token = secrets.token_hex(16)
    port = free_port()
    for sub in ("settings", "workspaces", "config", "runtime"):
        (state_dir / sub).mkdir(parents=True, exist_ok=True)
    full_env = dict(env)
    full_env.update({"JUPYTER_CONFIG_DIR": str(state_dir / "config"),
                     "JUPYTER_RUNTIME_DIR": str(state_dir / "runtime"),
                     "JUPYTERLAB_SETTINGS_DIR": str(state_dir / "settings"),
                     "JUPYTERLAB_WORKSPACES_DIR": str(state_dir / "workspaces")})
    log = state_dir / "jupyterlab.log"
    args = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    args += list(extra_args)
    if os.geteuid() == 0:
        args.append("--allow-root")
    with open(log, "wb") as out:
        process = subprocess.Popen(args, cwd=root, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = LabServer(f"http://127.0.0.1:{port}", token, root, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyterlab exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}/api/status?token={token}", timeout=2) as reply:
                if reply.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"jupyterlab did not answer in {timeout} s:\n{log.read_text()[-3000:]}")
