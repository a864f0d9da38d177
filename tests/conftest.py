"""Shared, session-scoped pytest fixtures: a busybox rootfs, images built from it, and real
`docker-registry` servers on 127.0.0.1 holding them. The building blocks live in
`tests/fixtures/` (import them as `from fixtures.imagebuild import ...`).

Fixtures (all session-scoped unless noted):

- `busybox_rootfs` -> Path: a rootfs dir from the machine's static /bin/busybox, with
  applet symlinks in /bin (sh, echo, cat, ls, sleep, ...), /etc/passwd and /etc/group
  (root 0, nobody 65534, app 1000), /tmp (1777). Treat it as read-only (copy it first).
- `busybox_layer` -> fixtures.imagebuild.Layer: that rootfs as one gzip OCI layer.
- `busybox_images` -> dict[str, BuiltImage]: "linux/amd64" and "linux/arm64" images of
  that layer (the same busybox bytes; only the config's architecture differs).
- `registry` -> RegistryServer: an anonymous docker-registry (`.host` = "127.0.0.1:PORT",
  `.blob_path(digest)` = the blob's file in its storage). Skips when not installed.
- `registry_client` -> RegistryClient: a client without credentials and quick retries.
- `registry_with_busybox` -> PushedImage: `registry` holding `library/busybox:latest`
  (an OCI index for linux/amd64 + linux/arm64) and `library/busybox:docker` (a single
  Docker-media-type manifest for the host platform). `.ref`, `.digest`, `.images`.
- `registry_config` -> LLBookConfigFiles: an llbook TOML mirroring `docker.io` to
  `registry_with_busybox` (so `FROM busybox` / `llb.image("busybox")` resolves there), an
  empty DOCKER_CONFIG dir, the loaded `RegistryConfig`, and `.env` for subprocesses.
- `image_source` -> ImageSource: resolves/pulls with `registry_config` (so "busybox" comes
  from `registry_with_busybox`).
- `llbook_registry_env` (function-scoped): sets LLBOOK_CONFIG and DOCKER_CONFIG in
  os.environ to `registry_config`'s files for the duration of one test.
- `dockerd` -> fixtures.dockerd.DockerDaemon: a real dockerd (the running one, or one
  started here as root with `--iptables=false --bridge=none`); skips with the reason.
- `auth_registry` -> AuthRegistry: an htpasswd (bcrypt) protected docker-registry with
  `library/busybox:latest` pushed, `.username`/`.password`, and `.docker_config_dir`
  holding a config.json with its credentials (base64 `auth`).
"""

from __future__ import annotations

import os as _os

# `llbook build` in a test runs in its own process (tests that count its children, mounts
# and signals expect that); tests/test_server.py turns the resident server on per test,
# in a directory of its own.
_os.environ.setdefault("LLBOOK_SERVER", "0")

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fixtures.imagebuild import BuiltImage, Layer, PushedImage, build_image, layer_from_dir, push_image, push_index
from fixtures.registry_server import (RegistryServer, registry_binary, start_registry, write_docker_config,
                                      write_llbook_config)
from fixtures.rootfs import BUSYBOX, make_busybox_rootfs
from solver.source.image import ImageSource
from solver.source.reference import parse as parse_reference
from solver.source.registry import Platform, RegistryClient, RetryPolicy, default_platform
from solver.source.registry_config import Credentials, RegistryConfig, load_registry_config

FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.05, max_delay=0.5)
BUSYBOX_PLATFORMS = ("linux/amd64", "linux/arm64")


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not BUSYBOX.exists():
        pytest.skip("no /bin/busybox (apt-get install busybox-static)")
    return make_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


@pytest.fixture(scope="session")
def busybox_layer(busybox_rootfs: Path) -> Layer:
    return layer_from_dir(busybox_rootfs)


@pytest.fixture(scope="session")
def busybox_images(busybox_layer: Layer) -> dict[str, BuiltImage]:
    images = {}
    for name in BUSYBOX_PLATFORMS:
        platform = Platform.parse(name)
        images[name] = build_image([busybox_layer], platform,
                                   config={"Labels": {"org.llbook.test": "busybox"}})
    return images


def _require_registry() -> None:
    if registry_binary() is None:
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory):
    _require_registry()
    server = start_registry(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def registry_client() -> RegistryClient:
    return RegistryClient(RegistryConfig(), retry=FAST_RETRY, timeout=30)


def _push_busybox(client: RegistryClient, host: str, images: dict[str, BuiltImage]) -> PushedImage:
    ref = parse_reference(f"{host}/library/busybox:latest")
    index_digest = push_index(client, ref, list(images.values()))
    native = str(default_platform()) if str(default_platform()) in images else "linux/amd64"
    docker_image = build_image(images[native].layers, images[native].platform, oci=False,
                               config={"Labels": {"org.llbook.test": "busybox-docker"}})
    push_image(client, parse_reference(f"{host}/library/busybox:docker"), docker_image)
    return PushedImage(host=host, repository="library/busybox", tag="latest", digest=index_digest,
                       images=dict(images) | {"docker": docker_image})


@pytest.fixture(scope="session")
def registry_with_busybox(registry: RegistryServer, registry_client: RegistryClient,
                          busybox_images: dict[str, BuiltImage]) -> PushedImage:
    return _push_busybox(registry_client, registry.host, busybox_images)


@dataclass(frozen=True)
class LLBookConfigFiles:
    path: Path  # the llbook TOML
    docker_config_dir: Path  # an empty DOCKER_CONFIG directory
    config: RegistryConfig
    env: dict[str, str] = field(default_factory=dict)  # LLBOOK_CONFIG and DOCKER_CONFIG


@pytest.fixture(scope="session")
def registry_config(tmp_path_factory: pytest.TempPathFactory,
                    registry_with_busybox: PushedImage) -> LLBookConfigFiles:
    base = tmp_path_factory.mktemp("llbook-config")
    path = write_llbook_config(base / "llbook.toml",
                               {"docker.io": {"mirrors": [registry_with_busybox.host]}})
    docker_dir = base / "docker"
    docker_dir.mkdir()
    env = {"LLBOOK_CONFIG": str(path), "DOCKER_CONFIG": str(docker_dir)}
    config = load_registry_config(env=env, home=base)
    return LLBookConfigFiles(path=path, docker_config_dir=docker_dir, config=config, env=env)


@pytest.fixture(scope="session")
def image_source(registry_config: LLBookConfigFiles) -> ImageSource:
    return ImageSource(RegistryClient(registry_config.config, retry=FAST_RETRY, timeout=30))


@pytest.fixture
def llbook_registry_env(registry_config: LLBookConfigFiles, monkeypatch: pytest.MonkeyPatch) -> LLBookConfigFiles:
    for key, value in registry_config.env.items():
        monkeypatch.setenv(key, value)
    return registry_config


@dataclass(frozen=True)
class AuthRegistry:
    server: RegistryServer
    username: str
    password: str
    docker_config_dir: Path  # contains config.json with the credentials
    pushed: PushedImage

    @property
    def host(self) -> str:
        return self.server.host


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory,
                  busybox_images: dict[str, BuiltImage]):
    _require_registry()
    username, password = "llbook", "s3cret-pw"
    base = tmp_path_factory.mktemp("auth-registry")
    server = start_registry(base / "server", users={username: password})
    try:
        docker_dir = base / "docker"
        write_docker_config(docker_dir, {server.host: (username, password)})
        client = RegistryClient(RegistryConfig(credentials={server.host: Credentials(username, password)}),
                                retry=FAST_RETRY)
        pushed = _push_busybox(client, server.host, busybox_images)
        yield AuthRegistry(server=server, username=username, password=password,
                           docker_config_dir=docker_dir, pushed=pushed)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dockerd(tmp_path_factory: pytest.TempPathFactory):
    from fixtures import dockerd as dockerd_fixture
    daemon = dockerd_fixture.ensure_dockerd(tmp_path_factory.mktemp("dockerd"))
    if daemon is None:
        pytest.skip(dockerd_fixture.unavailable_reason)
    yield daemon
    daemon.stop()
