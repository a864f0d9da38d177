"""``llbook build --load``: the result as a docker archive, loaded into dockerd with ``docker load`` (buildx's --load).

The daemon is the docker client's: ``$DOCKER_HOST``, else ``/var/run/docker.sock``. Where
none is reachable the build fails before anything is built, naming what was tried.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from solver.errors import LLBookError

DEFAULT_SOCKET = "/var/run/docker.sock"


@dataclass(frozen=True)
class LoadTarget:
    """Where ``docker load`` goes: the endpoint, the client, and the archive written for it."""

    endpoint: str
    client: str
    archive: Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--load", action="store_true",
                        help="load the image into dockerd (shorthand for --output=type=docker, then docker load)")


def _reachable_endpoint() -> str:
    """``$DOCKER_HOST``, or the default socket when something listens on it."""
    host = os.environ.get("DOCKER_HOST", "")
    if host and not host.startswith("unix://"):
        return host  # tcp://, ssh://: the docker client knows how to reach it
    path = host.removeprefix("unix://") if host else DEFAULT_SOCKET
    where = f"DOCKER_HOST={host}" if host else f"{DEFAULT_SOCKET} (DOCKER_HOST is not set)"
    if not os.path.exists(path):
        raise LLBookError(f"--load: no docker daemon is reachable: {where} does not exist; "
                          "start dockerd, or write the image with --output type=docker,dest=FILE")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError as error:
        raise LLBookError(f"--load: no docker daemon is reachable: {where}: {error.strerror}; "
                          "start dockerd, or write the image with --output type=docker,dest=FILE") from None
    finally:
        probe.close()
    return f"unix://{path}"


def prepare(args: argparse.Namespace) -> LoadTarget | None:
    """The load target of ``--load`` (checked before the build), or None without it."""
    if not getattr(args, "load", False):
        return None
    endpoint = _reachable_endpoint()
    client = shutil.which("docker")
    if client is None:
        raise LLBookError("--load: the docker client (docker load) is not installed")
    handle, name = tempfile.mkstemp(prefix="llbook-load-", suffix=".tar")
    os.close(handle)
    return LoadTarget(endpoint, client, Path(name))


def output_text(target: LoadTarget) -> str:
    """The ``--output`` the archive is written with (tags come from -t)."""
    return f"type=docker,dest={target.archive}"


def load(target: LoadTarget) -> str:
    """``docker load`` the archive; docker's own report ("Loaded image: NAME")."""
    env = {**os.environ, "DOCKER_HOST": target.endpoint}
    with open(target.archive, "rb") as archive:
        done = subprocess.run([target.client, "load"], stdin=archive, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise LLBookError(f"--load: docker load into {target.endpoint} failed: {reason}")
    return done.stdout.strip()


def discard(target: LoadTarget | None) -> None:
    if target is not None:
        target.archive.unlink(missing_ok=True)
