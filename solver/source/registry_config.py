"""Per-registry settings (mirrors, plain HTTP, TLS) and credentials.

Settings come from a TOML file in buildkitd.toml's format::

    [registry."docker.io"]
    mirrors = ["127.0.0.1:5000"]

    [registry."127.0.0.1:5000"]
    http = true          # plain HTTP instead of HTTPS
    insecure = true      # HTTPS without certificate verification
    ca = ["/path/ca.pem"]

The file is found via an explicit path, then the env var ``LLBOOK_CONFIG``, then
``~/.config/llbook/llbook.toml``; no file means no settings. Registries on a loopback
address (127.0.0.0/8, ``localhost``, ``::1``) use plain HTTP unless configured
otherwise, as Docker does.

Credentials come from Docker's ``config.json`` (``$DOCKER_CONFIG/config.json``, else
``~/.docker/config.json``): ``auths`` entries with a base64 ``auth`` or
``username``/``password`` (or ``identitytoken``), and ``credHelpers``/``credsStore``
helpers (``docker-credential-<name> get``).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import shutil
import subprocess
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from solver.errors import LLBookError

CONFIG_ENV = "LLBOOK_CONFIG"
DOCKER_CONFIG_ENV = "DOCKER_CONFIG"
DOCKER_HUB = "docker.io"
_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")
_HELPER_TIMEOUT = 30.0


class RegistryConfigError(LLBookError):
    """A registry settings file or Docker credentials file that cannot be used."""


@dataclass(frozen=True)
class Credentials:
    """Credentials for one registry host. `identity_token` is an OAuth2 refresh token."""

    username: str = ""
    password: str = ""
    identity_token: str = ""

    def __repr__(self) -> str:  # never print secrets
        return f"Credentials(username={self.username!r}, password=***)"


@dataclass(frozen=True)
class HostSettings:
    """Settings of one registry host (or mirror). `http=None` means "decide by loopback"."""

    host: str
    mirrors: tuple[str, ...] = ()
    http: bool | None = None
    insecure: bool = False
    ca: tuple[str, ...] = ()


@dataclass(frozen=True)
class RegistryConfig:
    """Everything the registry client needs to know about hosts, mirrors and credentials."""

    hosts: Mapping[str, HostSettings] = field(default_factory=dict)
    credentials: Mapping[str, Credentials] = field(default_factory=dict)
    cred_helpers: Mapping[str, str] = field(default_factory=dict)
    creds_store: str = ""
    source: Path | None = None
    docker_config: Path | None = None

    def settings(self, host: str) -> HostSettings:
        return self.hosts.get(normalize_host(host), HostSettings(host=normalize_host(host)))

    def mirrors(self, domain: str) -> tuple[str, ...]:
        return self.settings(domain).mirrors

    def scheme(self, host: str) -> str:
        """`http` or `https` for `host` (a mirror may carry a path: only the host counts)."""
        bare = host.split("/", 1)[0]
        settings = self.settings(bare)
        if settings.http is not None:
            return "http" if settings.http else "https"
        return "http" if is_loopback(bare) else "https"

    def verify_tls(self, host: str) -> bool:
        return not self.settings(host.split("/", 1)[0]).insecure

    def ca_files(self, host: str) -> tuple[str, ...]:
        return self.settings(host.split("/", 1)[0]).ca

    def credentials_for(self, host: str) -> Credentials | None:
        """Credentials for `host` from config.json auths, then a credential helper."""
        key = normalize_host(host.split("/", 1)[0])
        found = self.credentials.get(key)
        if found is not None:
            return found
        helper = self.cred_helpers.get(key) or self.creds_store
        if helper:
            return _credentials_from_helper(helper, key)
        return None


def normalize_host(host: str) -> str:
    """`https://index.docker.io/v1/` → `docker.io`; `http://h:5000/x` → `h:5000`."""
    text = host.strip()
    for prefix in ("https://", "http://"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    text = text.split("/", 1)[0].lower()
    return DOCKER_HUB if text in _HUB_ALIASES else text


def split_host_port(host: str) -> tuple[str, str]:
    """`[::1]:5000` → (`::1`, `5000`); `localhost` → (`localhost`, ``)."""
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return host, ""
        rest = host[end + 1:]
        return host[1:end], rest[1:] if rest.startswith(":") else ""
    if host.count(":") == 1:
        name, port = host.split(":")
        return name, port
    return host, ""


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1, with or without a port."""
    name, _ = split_host_port(host.split("/", 1)[0])
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def find_config_file(path: Path | str | None = None,
                     env: Mapping[str, str] | None = None,
                     home: Path | None = None) -> Path | None:
    """The settings file: explicit `path`, then `$LLBOOK_CONFIG`, then the user default."""
    env = os.environ if env is None else env
    if path is not None:
        explicit = Path(path)
        if not explicit.is_file():
            raise RegistryConfigError(f"llbook config file {explicit} does not exist")
        return explicit
    from_env = env.get(CONFIG_ENV)
    if from_env:
        candidate = Path(from_env)
        if not candidate.is_file():
            raise RegistryConfigError(f"{CONFIG_ENV}={from_env} names no file")
        return candidate
    home = Path(env.get("HOME", str(Path.home()))) if home is None else home
    default = home / ".config" / "llbook" / "llbook.toml"
    return default if default.is_file() else None


def _string_list(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RegistryConfigError(f"{where}: expected a list of strings, got {value!r}")
    return tuple(value)


def _optional_bool(value: object, where: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise RegistryConfigError(f"{where}: expected true or false, got {value!r}")


def _host_settings(host: str, table: object, source: Path) -> HostSettings:
    where = f'{source}: [registry."{host}"]'
    if not isinstance(table, dict):
        raise RegistryConfigError(f"{where} must be a table")
    mirrors = _string_list(table.get("mirrors", []), f"{where} mirrors")
    return HostSettings(
        host=normalize_host(host),
        mirrors=tuple(m.strip().rstrip("/") for m in mirrors if m.strip()),
        http=_optional_bool(table.get("http"), f"{where} http"),
        insecure=bool(_optional_bool(table.get("insecure"), f"{where} insecure")),
        ca=_string_list(table.get("ca", []), f"{where} ca"),
    )


def parse_settings(text: str, source: Path) -> dict[str, HostSettings]:
    """Parse the `[registry."host"]` tables of a TOML document (other tables are ignored)."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RegistryConfigError(f"{source}: invalid TOML: {exc}") from exc
    registries = document.get("registry", {})
    if not isinstance(registries, dict):
        raise RegistryConfigError(f"{source}: 'registry' must be a table of hosts")
    settings = (_host_settings(host, table, source) for host, table in registries.items())
    return {s.host: s for s in settings}


def docker_config_path(env: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get(DOCKER_CONFIG_ENV):
        return Path(env[DOCKER_CONFIG_ENV]) / "config.json"
    home = Path(env.get("HOME", str(Path.home()))) if home is None else home
    return home / ".docker" / "config.json"


def _decode_auth(host: str, entry: Mapping[str, object], source: Path) -> Credentials | None:
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=False).decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:
            raise RegistryConfigError(f"{source}: auths[{host!r}].auth is not base64 of user:password") from exc
        username, sep, password = decoded.partition(":")
        if not sep:
            raise RegistryConfigError(f"{source}: auths[{host!r}].auth has no ':' between user and password")
        return Credentials(username=username, password=password)
    username = entry.get("username")
    password = entry.get("password")
    token = entry.get("identitytoken")
    if isinstance(username, str) and isinstance(password, str) and username:
        return Credentials(username=username, password=password)
    if isinstance(token, str) and token:
        return Credentials(username=username if isinstance(username, str) else "", identity_token=token)
    return None


@dataclass(frozen=True)
class DockerAuth:
    credentials: dict[str, Credentials]
    cred_helpers: dict[str, str]
    creds_store: str


def load_docker_auth(path: Path) -> DockerAuth:
    """Read credentials from a Docker `config.json`; a missing file means none."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return DockerAuth({}, {}, "")
    except (OSError, ValueError) as exc:
        raise RegistryConfigError(f"cannot read Docker credentials from {path}: {exc}") from exc
    if not isinstance(document, dict):
        raise RegistryConfigError(f"{path}: expected a JSON object")
    credentials: dict[str, Credentials] = {}
    auths = document.get("auths", {})
    for host, entry in (auths.items() if isinstance(auths, dict) else []):
        if isinstance(entry, dict):
            found = _decode_auth(host, entry, path)
            if found is not None:
                credentials[normalize_host(host)] = found
    helpers_raw = document.get("credHelpers", {})
    helpers = {normalize_host(h): str(v) for h, v in helpers_raw.items()} if isinstance(helpers_raw, dict) else {}
    store = document.get("credsStore", "")
    return DockerAuth(credentials, helpers, store if isinstance(store, str) else "")


def _credentials_from_helper(helper: str, host: str) -> Credentials | None:
    """Ask `docker-credential-<helper> get` for `host`; None when it has nothing."""
    program = shutil.which(f"docker-credential-{helper}")
    if program is None:
        return None
    server = "https://index.docker.io/v1/" if host == DOCKER_HUB else host
    try:
        done = subprocess.run([program, "get"], input=server.encode(), capture_output=True,
                              timeout=_HELPER_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RegistryConfigError(f"credential helper {program} failed for {host}: {exc}") from exc
    if done.returncode != 0:
        return None  # "credentials not found in native keychain"
    try:
        reply = json.loads(done.stdout)
    except ValueError as exc:
        raise RegistryConfigError(f"credential helper {program} gave invalid JSON for {host}") from exc
    username, secret = str(reply.get("Username", "")), str(reply.get("Secret", ""))
    if username == "<token>":
        return Credentials(identity_token=secret)
    return Credentials(username=username, password=secret) if username or secret else None


def load_registry_config(path: Path | str | None = None,
                         env: Mapping[str, str] | None = None,
                         home: Path | None = None,
                         docker_config: Path | None = None) -> RegistryConfig:
    """Settings from the llbook TOML (see `find_config_file`) plus Docker credentials."""
    env = os.environ if env is None else env
    source = find_config_file(path, env, home)
    hosts = parse_settings(source.read_text(encoding="utf-8"), source) if source else {}
    auth_path = docker_config or docker_config_path(env, home)
    auth = load_docker_auth(auth_path)
    return RegistryConfig(hosts=hosts, credentials=auth.credentials, cred_helpers=auth.cred_helpers,
                          creds_store=auth.creds_store, source=source, docker_config=auth_path)
