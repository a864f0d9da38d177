"""``llbook build --ssh default|ID=PATH[,PATH]``: the agent sockets a build forwards, as buildx and BuildKit's sshprovider.

An id without paths (``default``) forwards ``$SSH_AUTH_SOCK``. A path is an agent socket
(one at most) or key files; BuildKit loads key files into an agent of its own, so here an
``ssh-agent`` is started for them, the keys are ``ssh-add``-ed, and it is killed after the build.
"""

from __future__ import annotations

import argparse
import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from solver.errors import LLBookError

DEFAULT_ID = "default"
_AGENT_START_SECONDS = 10.0


@dataclass(frozen=True)
class SSHSpec:
    id: str
    paths: tuple[str, ...] = ()


def parse_ssh(text: str) -> SSHSpec:
    """``ID[=PATH[,PATH...]]`` as buildx's SSH.UnmarshalText (an empty id is ``default``)."""
    ssh_id, sep, paths = text.partition("=")
    return SSHSpec(ssh_id or DEFAULT_ID, tuple(paths.split(",")) if sep else ())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ssh", dest="ssh", action="append", default=[], type=parse_ssh,
                        metavar="default|ID=PATH[,PATH]",
                        help="forward an ssh agent (or key files) to RUN --mount=type=ssh")


def _is_socket(path: str, ssh_id: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError as error:
        raise LLBookError(f'--ssh {ssh_id}: {path}: {error.strerror}') from None


def _agent_source(spec: SSHSpec) -> tuple[str | None, list[str]]:
    """(an agent socket, key files) of one spec, as sshprovider's toDialer splits them."""
    paths = [p for p in spec.paths if p] or [os.environ.get("SSH_AUTH_SOCK", "")]
    if paths == [""]:
        raise LLBookError(f"--ssh {spec.id}: invalid empty ssh agent socket: make sure SSH_AUTH_SOCK is set")
    sockets, keys = [], []
    for path in (str(Path(p).expanduser()) for p in paths):
        (sockets if _is_socket(path, spec.id) else keys).append(path)
    if len(sockets) > 1 or (sockets and keys):
        raise LLBookError(f"--ssh {spec.id}: only single socket allowed")
    return (sockets[0] if sockets else None), keys


@contextmanager
def _key_agent(ssh_id: str, keys: list[str]) -> Iterator[str]:
    """An ``ssh-agent`` holding ``keys`` for the length of the block; its socket path."""
    agent_bin, add_bin = shutil.which("ssh-agent"), shutil.which("ssh-add")
    if agent_bin is None or add_bin is None:
        raise LLBookError(f"--ssh {ssh_id}: key files need ssh-agent and ssh-add (openssh-client), "
                          "which are not installed")
    directory = tempfile.mkdtemp(prefix="llbook-agent-")
    sock = os.path.join(directory, "agent.sock")
    agent = subprocess.Popen([agent_bin, "-D", "-a", sock], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_socket(agent, sock, ssh_id)
        env = {**os.environ, "SSH_AUTH_SOCK": sock, "SSH_ASKPASS_REQUIRE": "never"}
        env.pop("DISPLAY", None)
        for key in keys:
            added = subprocess.run([add_bin, "-q", key], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                                   text=True, start_new_session=True)  # no tty: never prompt for a passphrase
            if added.returncode != 0:
                reason = (added.stderr.strip().splitlines() or ["ssh-add failed"])[-1]
                if "passphrase" in added.stderr.lower():
                    reason = ("it is passphrase-protected; ssh-add it to your own agent and forward that "
                              f"(--ssh {ssh_id}=$SSH_AUTH_SOCK)")
                raise LLBookError(f"--ssh {ssh_id}: cannot load key {key}: {reason}")
        yield sock
    finally:
        agent.kill()
        agent.wait()
        if agent.stderr is not None:
            agent.stderr.close()
        shutil.rmtree(directory, ignore_errors=True)


def _wait_for_socket(agent: subprocess.Popen, sock: str, ssh_id: str) -> None:
    deadline = time.monotonic() + _AGENT_START_SECONDS
    while not os.path.exists(sock):
        if agent.poll() is not None or time.monotonic() > deadline:
            reason = agent.stderr.read().decode(errors="replace").strip() if agent.poll() is not None else ""
            raise LLBookError(f"--ssh {ssh_id}: ssh-agent did not start{': ' + reason if reason else ''}")
        time.sleep(0.01)


@contextmanager
def ssh_sockets(specs: list[SSHSpec]) -> Iterator[dict[str, str]]:
    """The agent socket of each ``--ssh`` id, valid for the length of the block."""
    seen: set[SSHSpec] = set()
    with ExitStack() as stack:
        sockets: dict[str, str] = {}
        for spec in specs:
            if spec in seen:
                continue  # buildx drops repeated specs
            if spec.id in {s.id for s in seen}:
                raise LLBookError(f'--ssh: duplicate agent ID "{spec.id}"')
            seen.add(spec)
            sock, keys = _agent_source(spec)
            sockets[spec.id] = sock if sock is not None else stack.enter_context(_key_agent(spec.id, keys))
        yield sockets
