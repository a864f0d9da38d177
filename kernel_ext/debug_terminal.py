"""A JupyterLab terminal running ``llbook debug`` for a notebook step (the Debug button, ``%llb debug``).

The kernel finds its Jupyter server (the running-server files: the one whose pid is the
kernel's parent), creates a terminal through the server's REST API (``POST
/api/terminals``, jupyter_server_terminals) and types ``exec llbook debug ...`` into it over
the terminal's websocket, so the terminal's process *is* the debug shell: when the shell
ends, the terminal closes. ``--exit-with <kernel pid>`` ends the shell (and so the
terminal) when the kernel ends. The session's cells go to ``llbook debug`` as the session
Dockerfile, with the session's cache directory and context.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import sys
import tempfile
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solver.errors import LLBookError

SETTLE_SECONDS = 10.0


@dataclass(frozen=True)
class JupyterServer:
    """Where the kernel's Jupyter server answers."""

    url: str  # http://host:port/base/
    token: str

    def api(self, path: str, method: str = "GET", body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(self.url.rstrip("/") + path, method=method,
                                         data=json.dumps(body or {}).encode() if method != "GET" else None,
                                         headers={"Authorization": f"token {self.token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=SETTLE_SECONDS) as reply:
            text = reply.read()
        return json.loads(text) if text else None

    def websocket_url(self, name: str) -> str:
        base = self.url.rstrip("/").replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        return f"{base}/terminals/websocket/{name}?token={self.token}"


def this_server() -> JupyterServer:
    """The Jupyter server that started this kernel (its pid is our parent's)."""
    from jupyter_server.serverapp import list_running_servers
    parents = {os.getppid(), int(os.environ.get("JPY_PARENT_PID", "0") or 0)}
    for info in list_running_servers():
        if int(info.get("pid", 0)) in parents:
            return JupyterServer(info["url"], info.get("token", ""))
    raise LLBookError("no Jupyter server runs this kernel: a terminal needs JupyterLab "
                      "(run `llbook debug` in a shell instead)")


@dataclass(frozen=True)
class DebugTarget:
    """Which step of the session the shell opens at."""

    step: int
    stage: str | None = None
    before: bool = False  # the state before the step (a failed RUN)


def debug_command(dockerfile: Path, cache_dir: Path, context: Path, target: DebugTarget,
                  kernel_pid: int, flags: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The ``llbook debug`` command line for ``target``; ``flags``: the session's (``session_flags``)."""
    command = [sys.executable, "-m", "solver.cli", "debug", "--progress", "plain", "-f", str(dockerfile),
               "--cache-dir", str(cache_dir), "--exit-with", str(kernel_pid), "--step", str(target.step),
               *flags]
    if target.stage:
        command += ["--target", target.stage]
    if target.before:
        command.append("--before")
    return [*command, str(context)]


def session_flags(session: Any) -> list[str]:
    """The session's build args, platform, entitlements and docker build flags (every cell's secrets
    and ssh ids) as ``llbook debug`` arguments, so its steps are the cells' steps. A cell with RUN
    flags of its own cannot be said in one command line: that is refused, naming the cells."""
    own = [c.filename for c in session.cells if _run_flags(c.options.flags)]
    if own:
        raise LLBookError(f"the debug shell lowers the session Dockerfile with one set of flags, and "
                          f"{', '.join(own)} set --network/--add-host/--shm-size/--ulimit of its own; "
                          "set them for every cell with %llb config instead")
    flags, served = session.flags, session.build_flags()
    out = [word for key, value in session.effective_build_args().items() for word in ("--build-arg", f"{key}={value}")]
    out += ["--platform", session.platform] if session.platform else []
    out += [word for name in session.entitlements for word in ("--allow", name)]
    out += ["--network", flags.network] if flags.network else []
    out += [word for host, ip in flags.run.extra_hosts for word in ("--add-host", f"{host}={ip}")]
    out += ["--shm-size", str(flags.run.shm_size)] if flags.run.shm_size else []
    out += [word for name, soft, hard in flags.run.ulimits for word in ("--ulimit", f"{name}={soft}:{hard}")]
    out += [word for s in served.secrets for word in ("--secret", f"id={s.id},src={s.src}")]
    for spec in served.ssh:  # the kernel's agent: the terminal's shell may have another SSH_AUTH_SOCK
        paths = spec.paths or ((os.environ["SSH_AUTH_SOCK"],) if os.environ.get("SSH_AUTH_SOCK") else ())
        out += ["--ssh", spec.id + ("=" + ",".join(paths) if paths else "")]
    return out


def _run_flags(flags: Any) -> bool:
    run = flags.run
    return bool(flags.network or run.extra_hosts or run.shm_size or run.ulimits)


def write_session_dockerfile(text: str, cache_dir: Path) -> Path:
    """The session Dockerfile in a file of its own under the cache's tmp dir (the terminal reads it)."""
    directory = cache_dir / "tmp"
    directory.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f"debug-{os.getpid()}-", suffix=".Dockerfile", dir=directory)
    with os.fdopen(handle, "w") as out:
        out.write(text)
    return Path(name)


async def _type_into(url: str, text: str) -> None:
    from tornado.websocket import websocket_connect
    connection = await asyncio.wait_for(websocket_connect(url), SETTLE_SECONDS)
    try:
        await connection.write_message(json.dumps(["stdin", text]))
    finally:
        connection.close()


def open_terminal(server: JupyterServer, command: list[str]) -> str:
    """A new terminal whose shell becomes ``command`` (``exec``); its name."""
    name = server.api("/api/terminals", "POST")["name"]
    line = "exec " + shlex.join(command) + "\r"
    box: dict[str, BaseException] = {}

    def run() -> None:  # the kernel's own event loop runs in the main thread
        try:
            asyncio.run(_type_into(server.websocket_url(name), line))
        except BaseException as error:  # noqa: BLE001 - handed to the caller
            box["error"] = error
    worker = threading.Thread(target=run, name="llbook-terminal", daemon=True)
    worker.start()
    worker.join(SETTLE_SECONDS * 2)
    if "error" in box:
        server.api(f"/api/terminals/{name}", "DELETE")
        raise LLBookError(f"could not start the debug shell in terminal {name}: {box['error']}")
    return name


def running_terminals(server: JupyterServer) -> list[str]:
    return [t["name"] for t in server.api("/api/terminals") or []]


_STEP_NAME = re.compile(r"^\[(?:(?P<stage>[^\]]*?)\s+)?(?P<n>\d+)(?:/\d+)?\]")
_UNNAMED_STAGE = re.compile(r"^stage-\d+$")  # the session's own keys: not a --target name


def failed_step(name: str) -> DebugTarget | None:
    """The step of a failed vertex's progress name (``[stage N/M] RUN ...``), before it."""
    match = _STEP_NAME.match(name or "")
    if match is None:
        return None
    stage = match.group("stage")
    return DebugTarget(int(match.group("n")), None if stage and _UNNAMED_STAGE.match(stage) else stage,
                       before=True)


def label(target: DebugTarget) -> str:
    where = f"step {target.step}" + (f" of stage {target.stage}" if target.stage else "")
    return f"a shell {'before' if target.before else 'after'} {where}"


def opener(session: Any, target: DebugTarget) -> Any:
    """A call that opens a terminal with ``llbook debug`` at ``target`` of the session (its name)."""
    def open_now() -> str:
        flags = session_flags(session)  # refused before anything is written
        cache_dir = Path(session.solver.paths.root)
        dockerfile = write_session_dockerfile(session.dockerfile(), cache_dir)
        command = debug_command(dockerfile, cache_dir, Path(session.context).absolute(), target, os.getpid(), flags)
        return open_terminal(this_server(), command)
    return open_now
