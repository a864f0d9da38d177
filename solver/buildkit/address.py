"""BuildKit daemon addresses, as `buildctl --addr` / `BUILDKIT_HOST` spell them, plus `dockerd://`.

- `unix:///run/buildkit/buildkitd.sock`
- `tcp://HOST:PORT` (TLS when a CA, cert or key is given)
- `docker-container://NAME` (buildctl's connection helper: `docker exec -i NAME buildctl dial-stdio`)
- `dockerd://[SOCKET]`: dockerd's embedded BuildKit through its `/grpc` endpoint; the default
  socket is `/var/run/docker.sock` (`dockerd:///path/docker.sock` picks another one).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from solver.errors import LLBookError

DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"
ENV_VARS = ("LLBOOK_BUILDKIT_HOST", "BUILDKIT_HOST")


class BuildKitAddressError(LLBookError):
    """An address that names no supported transport."""


@dataclass(frozen=True)
class TLSFiles:
    ca_cert: str | None = None
    cert: str | None = None
    key: str | None = None
    server_name: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.ca_cert or self.cert or self.key)


@dataclass(frozen=True)
class Address:
    """A parsed daemon address: `scheme` is unix, tcp, docker-container or dockerd."""

    raw: str
    scheme: str
    path: str = ""  # unix socket (unix, dockerd)
    host: str = ""  # tcp host
    port: int = 0
    container: str = ""  # docker-container
    tls: TLSFiles = TLSFiles()

    def __str__(self) -> str:
        return self.raw


def parse_address(raw: str, tls: TLSFiles | None = None) -> Address:
    """Split an address into its transport parts; raise BuildKitAddressError naming it."""
    text = raw.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise BuildKitAddressError(f"BuildKit address {raw!r}: expected SCHEME://..., e.g. unix:///run/buildkit/"
                                   "buildkitd.sock, tcp://host:1234, docker-container://buildkitd, dockerd://")
    tls = tls or TLSFiles()
    if scheme == "unix":
        if not rest:
            raise BuildKitAddressError(f"BuildKit address {raw!r}: no socket path")
        return Address(text, "unix", path=rest)
    if scheme == "dockerd":
        path = rest or DEFAULT_DOCKER_SOCKET
        if path.startswith("unix://"):
            path = path[len("unix://"):]
        return Address(text, "dockerd", path=path)
    if scheme == "tcp":
        host, _, port = rest.rstrip("/").rpartition(":")
        if not host or not port.isdigit():
            raise BuildKitAddressError(f"BuildKit address {raw!r}: expected tcp://HOST:PORT")
        return Address(text, "tcp", host=host.strip("[]"), port=int(port), tls=tls)
    if scheme == "docker-container":
        name = rest.split("?", 1)[0].strip("/")
        if not name:
            raise BuildKitAddressError(f"BuildKit address {raw!r}: no container name")
        return Address(text, "docker-container", container=name)
    raise BuildKitAddressError(f"BuildKit address {raw!r}: unsupported scheme {scheme!r} "
                               "(unix, tcp, docker-container, dockerd)")


def address_from_env(environ: dict[str, str] | None = None) -> str | None:
    """`LLBOOK_BUILDKIT_HOST`, else `BUILDKIT_HOST`, else None (use the embedded solver)."""
    env = os.environ if environ is None else environ
    for name in ENV_VARS:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def socket_exists(path: str) -> bool:
    return Path(path).exists()
