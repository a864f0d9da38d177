"""`type=docker` outputs for `dockerd://`, whose embedded BuildKit has no docker exporter.

dockerd 20.10's BuildKit exports only to its image store (`moby`), `local` and `tar`. For a
docker archive, the image goes to the store first (under the requested names, or a
temporary tag) and the Engine API's `GET /images/get` writes the archive `docker save`
writes; a temporary tag is removed again.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
import uuid
from pathlib import Path

from solver.errors import LLBookError

API = "/v1.41"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float = 600) -> None:
        super().__init__("docker", timeout=timeout)
        self._socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._socket_path)
        self.sock = sock


def _request(socket_path: str, method: str, path: str) -> http.client.HTTPResponse:
    conn = _UnixConnection(socket_path)
    try:
        conn.request(method, API + path)
    except OSError as error:
        raise LLBookError(f"dockerd at {socket_path}: {method} {path} failed: {error}") from error
    return conn.getresponse()


def temporary_name() -> str:
    return f"llbook-export-{uuid.uuid4().hex[:12]}:tmp"


def save_archive(socket_path: str, names: list[str], dest: Path) -> None:
    """Write `docker save NAMES` (a docker archive) to `dest` (a partial file never stays)."""
    query = urllib.parse.urlencode([("names", n) for n in names])
    response = _request(socket_path, "GET", f"/images/get?{query}")
    if response.status != 200:
        body = response.read(500).decode("utf-8", "replace")
        raise LLBookError(f"dockerd at {socket_path}: saving {', '.join(names)} failed: {response.status} {body}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    try:
        with open(partial, "wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        partial.replace(dest)
    finally:
        partial.unlink(missing_ok=True)


def untag(socket_path: str, name: str) -> None:
    """Remove a tag (the image goes too when nothing else names it)."""
    response = _request(socket_path, "DELETE", f"/images/{urllib.parse.quote(name, safe='')}")
    body = response.read().decode("utf-8", "replace")
    if response.status not in (200, 404):
        detail = json.loads(body).get("message", "") if body.startswith("{") else body[:200]
        raise LLBookError(f"dockerd at {socket_path}: removing {name} failed: {response.status} {detail}")
