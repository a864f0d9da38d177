"""Image sources against a real docker-registry on 127.0.0.1: pull, auth, platforms,
tampered blobs, retries, mirrors, push primitives, OCI layouts, and the config parsers."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from fixtures.imagebuild import (OCILayoutWriter, build_image, dir_entry, file_entry,
                                 layer_from_entries, push_image, symlink_entry)
from fixtures.proxies import FlakyProxy, TokenAuthProxy
from fixtures.registry_server import write_docker_config, write_llbook_config
from solver.cache.content import ContentStore
from solver.source.image import (DiffIDMismatchError, ImageSource, PullProgress, unpack_image, unpack_layer)
from solver.source.oci_layout import OCILayout, OCILayoutError, open_layout_ref, parse_layout_ref
from solver.source.reference import ReferenceError, familiar, normalize, parse
from solver.source.registry import (AuthenticationError, BlobDigestMismatchError, Descriptor,
                                    NotFoundError, Platform, RegistryError, PlatformNotFoundError, RegistryClient,
                                    RegistryUnavailableError, RetryPolicy, choose_manifest, sha256_digest)
from solver.source.registry.auth import parse_challenges
from solver.source.registry_config import (Credentials, RegistryConfig, RegistryConfigError, is_loopback,
                                           load_registry_config)
from solver.source.tarsafe import WhiteoutMode

FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)
AMD64 = Platform.parse("linux/amd64")
ARM64 = Platform.parse("linux/arm64")


def client_for(config: RegistryConfig | None = None, retry: RetryPolicy = FAST) -> RegistryClient:
    return RegistryClient(config or RegistryConfig(), retry=retry, timeout=20)


def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "cache")


# --- references and configuration (no registry needed) ------------------------------------


@pytest.mark.parametrize("text,full,short", [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("library/busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("user/app", "docker.io/user/app:latest", "user/app:latest"),
    ("index.docker.io/library/alpine:3", "docker.io/library/alpine:3", "alpine:3"),
    ("127.0.0.1:5000/team/app:v1", "127.0.0.1:5000/team/app:v1", "127.0.0.1:5000/team/app:v1"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("ghcr.io/o/r@sha256:" + "ab" * 32, "ghcr.io/o/r@sha256:" + "ab" * 32, "ghcr.io/o/r@sha256:" + "ab" * 32),
    ("[::1]:5000/app:t", "[::1]:5000/app:t", "[::1]:5000/app:t"),
])
def test_reference_normalisation(text: str, full: str, short: str) -> None:
    assert normalize(text) == full
    assert parse(text).familiar == short
    assert familiar(full) == short


@pytest.mark.parametrize("bad", ["", "Busybox", "a//b", "app:bad tag", "app@sha256:xyz",
                                 "0123456789abcdef" * 4,  # a bare image ID
                                 "-app", "app:"])
def test_reference_rejects_invalid(bad: str) -> None:
    with pytest.raises(ReferenceError):
        parse(bad)


def test_loopback_detection() -> None:
    for host in ("127.0.0.1:5000", "127.9.9.9", "localhost:80", "[::1]:5000", "::1"):
        assert is_loopback(host), host
    for host in ("10.0.0.1:5000", "example.com", "localhost.example.com"):
        assert not is_loopback(host), host


def test_registry_config_file_lookup_and_settings(tmp_path: Path) -> None:
    toml = write_llbook_config(tmp_path / "x.toml", {
        "docker.io": {"mirrors": ["127.0.0.1:5000", "mirror.example/prefix"]},
        "mirror.example": {"insecure": True},
        "127.0.0.1:6000": {"http": False},
        "plain.example:8080": {"http": True},
    })
    home = tmp_path / "home"
    cfg = load_registry_config(env={"LLBOOK_CONFIG": str(toml)}, home=home)
    assert cfg.source == toml
    assert cfg.mirrors("docker.io") == ("127.0.0.1:5000", "mirror.example/prefix")
    assert cfg.scheme("127.0.0.1:5000") == "http"  # loopback default
    assert cfg.scheme("127.0.0.1:6000") == "https"  # explicit override
    assert cfg.scheme("plain.example:8080") == "http"
    assert cfg.scheme("registry-1.docker.io") == "https"
    assert cfg.verify_tls("mirror.example/prefix") is False
    # explicit path beats the env var; the user default is used when neither is set
    other = write_llbook_config(tmp_path / "y.toml", {"ghcr.io": {"mirrors": ["m.example"]}})
    assert load_registry_config(other, env={"LLBOOK_CONFIG": str(toml)}, home=home).mirrors("ghcr.io") == ("m.example",)
    default = write_llbook_config(home / ".config/llbook/llbook.toml", {"quay.io": {"mirrors": ["q.example"]}})
    assert load_registry_config(env={}, home=home).source == default
    assert load_registry_config(env={}, home=tmp_path / "nohome").hosts == {}
    with pytest.raises(RegistryConfigError, match="does not exist"):
        load_registry_config(tmp_path / "missing.toml", env={}, home=home)
    (tmp_path / "bad.toml").write_text('[registry."docker.io"]\nmirrors = "x" = 1\n')
    with pytest.raises(RegistryConfigError, match="invalid TOML"):
        load_registry_config(tmp_path / "bad.toml", env={}, home=home)


def test_docker_config_credentials(tmp_path: Path) -> None:
    docker_dir = tmp_path / "docker"
    docker_dir.mkdir()
    (docker_dir / "config.json").write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hubuser:hubpw").decode()},
        "http://127.0.0.1:5000": {"username": "u", "password": "p:with:colons"},
        "ghcr.io": {"identitytoken": "refresh-token"},
    }}))
    cfg = load_registry_config(env={"DOCKER_CONFIG": str(docker_dir)}, home=tmp_path)
    assert cfg.credentials_for("docker.io") == Credentials("hubuser", "hubpw")
    assert cfg.credentials_for("registry-1.docker.io") == Credentials("hubuser", "hubpw")
    assert cfg.credentials_for("127.0.0.1:5000") == Credentials("u", "p:with:colons")
    assert cfg.credentials_for("ghcr.io").identity_token == "refresh-token"
    assert cfg.credentials_for("quay.io") is None
    assert "hubpw" not in repr(cfg.credentials_for("docker.io"))
    # HOME/.docker/config.json when DOCKER_CONFIG is unset
    write_docker_config(tmp_path / "h" / ".docker", {"r.example": ("a", "b")})
    assert load_registry_config(env={}, home=tmp_path / "h").credentials_for("r.example") == Credentials("a", "b")


def test_challenge_parsing_and_platform_choice() -> None:
    [bearer] = parse_challenges('Bearer realm="https://auth.example/token",service="reg",'
                                'scope="repository:a/b:pull,push"')
    assert bearer.scheme == "bearer" and bearer.params["scope"] == "repository:a/b:pull,push"
    index = {"manifests": [
        {"digest": "sha256:" + "1" * 64, "size": 1, "platform": {"os": "linux", "architecture": "amd64"}},
        {"digest": "sha256:" + "2" * 64, "size": 1, "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
        {"digest": "sha256:" + "3" * 64, "size": 1, "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
        {"digest": "sha256:" + "4" * 64, "size": 1, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        {"digest": "sha256:" + "5" * 64, "size": 1, "platform": {"os": "unknown", "architecture": "unknown"},
         "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
    ]}
    assert choose_manifest(index, AMD64).digest.endswith("1" * 64)
    assert choose_manifest(index, Platform.parse("linux/arm/v7")).digest.endswith("3" * 64)
    assert choose_manifest(index, Platform.parse("linux/arm")).digest.endswith("3" * 64)  # v7 default
    assert choose_manifest(index, ARM64).digest.endswith("4" * 64)  # "" matches v8
    with pytest.raises(PlatformNotFoundError, match="linux/amd64, linux/arm/v6"):
        choose_manifest(index, Platform.parse("linux/s390x"))


# --- pulling from a real registry ---------------------------------------------------------


def test_skopeo_inspects_fixture_images(registry_with_busybox) -> None:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo not installed")
    pushed = registry_with_busybox
    for arch in ("amd64", "arm64"):
        out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--override-arch", arch,
                              f"docker://{pushed.ref}"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        info = json.loads(out.stdout)
        assert info["Architecture"] == arch and info["Os"] == "linux"
        assert info["Digest"] == pushed.digest  # skopeo reports the digest the tag points at
        assert info["Layers"] == [pushed.images[f"linux/{arch}"].layers[0].blob.digest]
        assert info["Labels"] == {"org.llbook.test": "busybox"}
    raw = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{pushed.ref}"],
                         capture_output=True, text=True, timeout=60, check=True)
    assert sha256_digest(raw.stdout.encode()) == pushed.digest


def test_anonymous_pull_and_unpack(registry_with_busybox, busybox_rootfs: Path, tmp_path: Path) -> None:
    pushed = registry_with_busybox
    source = ImageSource(client_for())
    image = source.resolve(pushed.ref, AMD64)
    assert image.index_digest == pushed.digest
    assert image.manifest_digest == pushed.manifest_digest("linux/amd64")
    assert image.config["architecture"] == "amd64"
    assert image.pinned == f"{pushed.host}/library/busybox:latest@{pushed.digest}"
    events: list[PullProgress] = []
    lock = threading.Lock()

    def on_progress(event: PullProgress) -> None:
        with lock:
            events.append(event)

    cs = store(tmp_path)
    paths = source.pull(image, cs, progress=on_progress)
    assert [p.name for p in paths] == [layer.digest.split(":")[1] for layer in image.layers]
    assert cs.verify(image.manifest_digest) and cs.verify(image.config_digest)
    assert events[-1].status == "done" and events[-1].done == image.layers[0].size
    rootfs = tmp_path / "rootfs"
    [result] = unpack_image(image, cs, rootfs)
    assert result.diff_id == image.diff_ids[0]
    assert (rootfs / "bin/busybox").read_bytes() == (busybox_rootfs / "bin/busybox").read_bytes()
    assert os.readlink(rootfs / "bin/sh") == "busybox"
    assert "app:x:1000:1000" in (rootfs / "etc/passwd").read_text()
    assert (rootfs / "tmp").stat().st_mode & 0o7777 == 0o1777
    # a second pull finds everything in the store
    events.clear()
    source.pull(image, cs, progress=on_progress)
    assert [e.status for e in events] == ["exists"]


def test_pinned_reference_resolves_offline_from_the_store(registry_with_busybox, tmp_path: Path) -> None:
    pushed = registry_with_busybox
    cs = store(tmp_path)
    online = ImageSource(client_for())
    pulled = online.resolve(pushed.ref, ARM64)
    online.pull(pulled, cs)
    assert cs.has(pushed.digest)  # the index is kept too
    # a client whose every request fails: only the store can answer
    with FlakyProxy(pushed.host, failures=10_000, mode="drop") as dead:
        offline = ImageSource(client_for(retry=RetryPolicy(attempts=1)))
        pinned = f"{dead.host}/library/busybox:latest@{pushed.digest}"
        local = offline.resolve(pinned, ARM64, content_store=cs)
        assert local.manifest_digest == pulled.manifest_digest and local.config == pulled.config
        assert local.index_digest == pushed.digest and dead.requests == []
        with pytest.raises(RegistryUnavailableError):  # amd64 manifest was never pulled
            offline.resolve(pinned, AMD64, content_store=cs)


def test_docker_media_types_single_manifest(registry_with_busybox, tmp_path: Path) -> None:
    pushed = registry_with_busybox
    image = ImageSource(client_for()).resolve(f"{pushed.host}/library/busybox:docker")
    assert image.media_type == "application/vnd.docker.distribution.manifest.v2+json"
    assert image.index_digest is None
    assert image.manifest_digest == pushed.images["docker"].manifest.digest
    assert image.config["config"]["Labels"] == {"org.llbook.test": "busybox-docker"}


def test_manifest_list_picks_each_platform(registry_with_busybox, tmp_path: Path) -> None:
    pushed = registry_with_busybox
    source = ImageSource(client_for())
    amd = source.resolve(pushed.ref, AMD64)
    arm = source.resolve(pushed.ref, ARM64)
    assert amd.manifest_digest == pushed.manifest_digest("linux/amd64")
    assert arm.manifest_digest == pushed.manifest_digest("linux/arm64")
    assert amd.manifest_digest != arm.manifest_digest
    assert (amd.config["architecture"], arm.config["architecture"]) == ("amd64", "arm64")
    assert amd.index_digest == arm.index_digest == pushed.digest
    assert amd.layers == arm.layers  # same busybox content
    by_digest = source.resolve(f"{pushed.host}/library/busybox@{pushed.digest}", ARM64)
    assert by_digest.manifest_digest == arm.manifest_digest
    with pytest.raises(PlatformNotFoundError, match=r"linux/s390x.*available: linux/amd64, linux/arm64"):
        source.resolve(pushed.ref, Platform.parse("linux/s390x"))


def test_unknown_tag_and_repository(registry_with_busybox) -> None:
    source = ImageSource(client_for())
    with pytest.raises(NotFoundError, match="nope"):
        source.resolve(f"{registry_with_busybox.host}/library/busybox:nope")
    with pytest.raises(NotFoundError):
        source.resolve(f"{registry_with_busybox.host}/library/missing:latest")


def test_manifest_by_wrong_digest_is_refused(registry_with_busybox) -> None:
    # Ask for a digest the registry does not have: not found, never a silent substitute.
    with pytest.raises(NotFoundError):
        client_for().get_manifest(f"{registry_with_busybox.host}/library/busybox@sha256:" + "0" * 64)


def test_mirror_config_resolves_docker_hub_names(registry_config, registry_with_busybox, tmp_path: Path) -> None:
    source = ImageSource(client_for(registry_config.config))
    image = source.resolve("busybox", AMD64)
    assert image.name == "docker.io/library/busybox:latest"
    assert image.index_digest == registry_with_busybox.digest
    cs = store(tmp_path)
    source.pull(image, cs)
    assert cs.has(image.layers[0].digest)


def test_image_source_fixture_resolves_busybox(image_source, registry_with_busybox) -> None:
    assert image_source.resolve("busybox").index_digest == registry_with_busybox.digest


def test_llbook_registry_env_fixture(llbook_registry_env) -> None:
    config = load_registry_config()  # from os.environ, as the CLI does
    assert config.mirrors("docker.io") == llbook_registry_env.config.mirrors("docker.io")


def test_dead_mirror_falls_back_to_next(registry_with_busybox, tmp_path: Path) -> None:
    from fixtures.registry_server import free_port
    dead = f"127.0.0.1:{free_port()}"
    toml = write_llbook_config(tmp_path / "l.toml", {"docker.io": {"mirrors": [dead, registry_with_busybox.host]}})
    config = load_registry_config(toml, env={}, home=tmp_path)
    image = ImageSource(client_for(config, RetryPolicy(attempts=1))).resolve("library/busybox", ARM64)
    assert image.manifest_digest == registry_with_busybox.manifest_digest("linux/arm64")
    # all mirrors dead and the origin unreachable: the error names what was tried
    only_dead = load_registry_config(write_llbook_config(tmp_path / "d.toml", {"docker.io": {"mirrors": [dead]}}),
                                     env={}, home=tmp_path)
    client = client_for(only_dead, RetryPolicy(attempts=1))
    endpoints = client.endpoints(parse("busybox"))
    assert [e.host for e in endpoints] == [dead, "registry-1.docker.io"] and endpoints[0].mirror
    with pytest.raises(RegistryUnavailableError, match=f"cannot reach mirror http://{dead}"):
        client.get_manifest(parse("busybox"), endpoints=endpoints[:1])


# --- authentication -----------------------------------------------------------------------


def test_htpasswd_registry_with_docker_config(auth_registry, tmp_path: Path) -> None:
    config = load_registry_config(env={"DOCKER_CONFIG": str(auth_registry.docker_config_dir)}, home=tmp_path)
    source = ImageSource(client_for(config))
    image = source.resolve(auth_registry.pushed.ref, AMD64)
    assert image.index_digest == auth_registry.pushed.digest
    cs = store(tmp_path)
    source.pull(image, cs)
    assert cs.verify(image.layers[0].digest)


def test_htpasswd_registry_without_credentials_fails_clearly(auth_registry, tmp_path: Path) -> None:
    empty = tmp_path / "docker"
    empty.mkdir()
    config = load_registry_config(env={"DOCKER_CONFIG": str(empty)}, home=tmp_path)
    with pytest.raises(AuthenticationError) as info:
        ImageSource(client_for(config)).resolve(auth_registry.pushed.ref)
    message = str(info.value)
    assert auth_registry.host in message and "no credentials" in message
    assert str(empty / "config.json") in message and "docker login" in message


def test_htpasswd_registry_wrong_password(auth_registry, tmp_path: Path) -> None:
    write_docker_config(tmp_path / "docker", {auth_registry.host: (auth_registry.username, "wrong")})
    config = load_registry_config(env={"DOCKER_CONFIG": str(tmp_path / "docker")}, home=tmp_path)
    with pytest.raises(AuthenticationError, match=f"rejected the credentials of '{auth_registry.username}'"):
        ImageSource(client_for(config)).resolve(auth_registry.pushed.ref)


def test_bearer_token_auth_anonymous(registry_with_busybox, tmp_path: Path) -> None:
    with TokenAuthProxy(registry_with_busybox.host, users=None) as proxy:
        source = ImageSource(client_for())
        image = source.resolve(f"{proxy.host}/library/busybox:latest", AMD64)
        source.pull(image, store(tmp_path))
        assert proxy.token_requests and all(user == "" for user, _ in proxy.token_requests)
        assert ["repository:library/busybox:pull"] in [scopes for _, scopes in proxy.token_requests]
        # the token is cached: far fewer token fetches than registry requests
        assert len(proxy.token_requests) == 1


def test_bearer_token_auth_with_basic_credentials(registry_with_busybox, tmp_path: Path) -> None:
    with TokenAuthProxy(registry_with_busybox.host, users={"alice": "pw"}) as proxy:
        write_docker_config(tmp_path / "docker", {proxy.host: ("alice", "pw")})
        config = load_registry_config(env={"DOCKER_CONFIG": str(tmp_path / "docker")}, home=tmp_path)
        image = ImageSource(client_for(config)).resolve(f"{proxy.host}/library/busybox:latest", ARM64)
        assert image.manifest_digest == registry_with_busybox.manifest_digest("linux/arm64")
        assert {user for user, _ in proxy.token_requests} == {"alice"}
        anonymous = client_for()
        with pytest.raises(AuthenticationError, match="refused anonymous access"):
            ImageSource(anonymous).resolve(f"{proxy.host}/library/busybox:latest")
        # push through token auth asks for pull,push
        layer = layer_from_entries([file_entry("hello", b"token push")])
        image2 = build_image([layer], AMD64)
        push_image(client_for(config), parse(f"{proxy.host}/tok/pushed:v1"), image2)
        assert any("repository:tok/pushed:pull,push" in scopes for _, scopes in proxy.token_requests)


def test_bearer_tokens_verified_by_real_registry(busybox_images, tmp_path: Path) -> None:
    """docker-registry in `auth: token` mode checks our JWTs itself (x5c, iss, aud, access)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    from fixtures.registry_server import registry_binary, start_registry
    from fixtures.token_server import TokenIssuer, TokenServer
    if registry_binary() is None:
        pytest.skip("docker-registry not installed")
    issuer = TokenIssuer.create(tmp_path / "issuer")
    with TokenServer(issuer, users={"bob": "hunter2"}) as tokens:
        server = start_registry(tmp_path / "registry", token_auth=tokens.registry_auth())
        try:
            write_docker_config(tmp_path / "docker", {server.host: ("bob", "hunter2")})
            config = load_registry_config(env={"DOCKER_CONFIG": str(tmp_path / "docker")}, home=tmp_path)
            image = busybox_images["linux/arm64"]
            push_image(client_for(config), parse(f"{server.host}/team/app:v1"), image)
            assert any(user == "bob" and "repository:team/app:pull,push" in scopes
                       for user, scopes in tokens.requests)
            source = ImageSource(client_for(config))
            resolved = source.resolve(f"{server.host}/team/app:v1", ARM64)
            assert resolved.manifest_digest == image.manifest.digest
            source.pull(resolved, store(tmp_path))
            assert ("bob", ["repository:team/app:pull"]) in tokens.requests  # pull asks for pull only
            with pytest.raises(AuthenticationError, match="refused anonymous access"):
                ImageSource(client_for()).resolve(f"{server.host}/team/app:v1")
        finally:
            server.stop()


def test_credentials_are_not_sent_across_blob_redirects(registry_with_busybox, tmp_path: Path) -> None:
    from fixtures.proxies import RedirectProxy
    with FlakyProxy(registry_with_busybox.host, failures=0) as cdn, \
            RedirectProxy(registry_with_busybox.host, cdn.host) as redirector, \
            TokenAuthProxy(redirector.host, users={"carol": "pw"}) as front:
        write_docker_config(tmp_path / "docker", {front.host: ("carol", "pw")})
        config = load_registry_config(env={"DOCKER_CONFIG": str(tmp_path / "docker")}, home=tmp_path)
        source = ImageSource(client_for(config))
        image = source.resolve(f"{front.host}/library/busybox:latest", AMD64)
        cs = store(tmp_path)
        source.pull(image, cs)
        assert cs.verify(image.layers[0].digest)
        blob_gets = [(r, h) for r, h in zip(cdn.requests, cdn.headers_seen) if "/blobs/" in r[1]]
        assert {r[1].rsplit("/", 1)[1] for r, _ in blob_gets} >= {image.config_digest, image.layers[0].digest}
        assert all("authorization" not in headers for _, headers in blob_gets)
        redirected = [h for r, h in zip(front.requests, front.headers_seen) if r[2] == 307]
        assert len(redirected) >= 2 and all(h["authorization"].startswith("Bearer ") for h in redirected)


# --- integrity ----------------------------------------------------------------------------


def test_tampered_blob_is_refused(registry, tmp_path: Path) -> None:
    layer = layer_from_entries([dir_entry("data"), file_entry("data/secret", b"the real content " * 100)])
    image = build_image([layer], AMD64)
    push_image(client_for(), parse(f"{registry.host}/tamper/me:v1"), image)
    blob_file = registry.blob_path(layer.blob.digest)
    data = bytearray(blob_file.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes
    blob_file.write_bytes(bytes(data))
    source = ImageSource(client_for())
    resolved = source.resolve(f"{registry.host}/tamper/me:v1")
    cs = store(tmp_path)
    with pytest.raises(BlobDigestMismatchError) as info:
        source.pull(resolved, cs)
    assert info.value.blob == layer.blob.digest
    assert layer.blob.digest in str(info.value) and "nothing stored" in str(info.value)
    assert not cs.has(layer.blob.digest)
    assert list(cs.tmp_files()) == []


def test_tampered_config_is_refused(registry) -> None:
    layer = layer_from_entries([file_entry("c", b"config tamper")])
    image = build_image([layer], AMD64, config={"Labels": {"x": "tamper-config"}})
    push_image(client_for(), parse(f"{registry.host}/tamper/config:v1"), image)
    path = registry.blob_path(image.config.digest)
    path.write_bytes(path.read_bytes().replace(b"amd64", b"arm64"))
    with pytest.raises(BlobDigestMismatchError, match=image.config.digest):
        ImageSource(client_for()).resolve(f"{registry.host}/tamper/config:v1")


def test_diff_id_mismatch_is_detected(registry, tmp_path: Path) -> None:
    layer = layer_from_entries([file_entry("f", b"diff id check")])
    image = build_image([layer], AMD64, diff_ids=["sha256:" + "e" * 64])
    push_image(client_for(), parse(f"{registry.host}/bad/diffid:v1"), image)
    source = ImageSource(client_for())
    resolved = source.resolve(f"{registry.host}/bad/diffid:v1")
    cs = store(tmp_path)
    source.pull(resolved, cs)
    with pytest.raises(DiffIDMismatchError, match=layer.diff_id):
        unpack_image(resolved, cs, tmp_path / "rootfs")


# --- retries ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["503", "429", "drop"])
def test_transient_failures_are_retried(registry_with_busybox, tmp_path: Path, mode: str) -> None:
    with FlakyProxy(registry_with_busybox.host, failures=2, mode=mode) as proxy:
        source = ImageSource(client_for())
        image = source.resolve(f"{proxy.host}/library/busybox:latest", AMD64)
        source.pull(image, store(tmp_path))
        assert proxy.failures_sent == 2
        assert image.manifest_digest == registry_with_busybox.manifest_digest("linux/amd64")


def test_blob_download_is_retried(registry_with_busybox, tmp_path: Path) -> None:
    with FlakyProxy(registry_with_busybox.host, failures=3, mode="503",
                    match=lambda method, path: "/blobs/" in path) as proxy:
        source = ImageSource(client_for())
        image = source.resolve(f"{proxy.host}/library/busybox:latest", ARM64)
        cs = store(tmp_path)
        source.pull(image, cs)
        assert proxy.failures_sent == 3 and cs.verify(image.layers[0].digest)


def test_download_cut_off_midway_restarts_with_a_fresh_writer(registry_with_busybox, tmp_path: Path) -> None:
    with FlakyProxy(registry_with_busybox.host, failures=2, mode="truncate",
                    match=lambda method, path: method == "GET" and "/blobs/" in path) as proxy:
        source = ImageSource(client_for())
        image = source.resolve(f"{proxy.host}/library/busybox:latest", AMD64)  # config blob cut twice
        layer = image.layers[0]
        proxy.failures_left = 2
        events: list[PullProgress] = []
        cs = store(tmp_path)
        source.pull(image, cs, progress=events.append)
        assert proxy.failures_sent == 4 and cs.verify(layer.digest)
        assert list(cs.tmp_files()) == []
        downloading = [e.done for e in events if e.status == "downloading"]
        assert max(downloading) == layer.size  # progress rewound after each cut, never beyond total


def test_persistent_failure_gives_up_with_clear_error(registry_with_busybox) -> None:
    with FlakyProxy(registry_with_busybox.host, failures=100, mode="503") as proxy:
        with pytest.raises(RegistryUnavailableError, match=f"{proxy.host}.*503"):
            ImageSource(client_for()).resolve(f"{proxy.host}/library/busybox:latest")
        assert proxy.failures_sent == FAST.attempts


# --- push primitives ----------------------------------------------------------------------


def test_push_primitives_chunked_mount_and_head(registry) -> None:
    client = client_for()
    ref = parse(f"{registry.host}/push/chunked:v1")
    payload = os.urandom(300_000)
    desc = Descriptor("application/octet-stream", sha256_digest(payload), len(payload))
    assert not client.blob_exists(ref, desc.digest)
    session = client.start_upload(ref)
    assert client.upload_chunked(session, desc.digest, io.BytesIO(payload), chunk_size=64 * 1024) == desc.digest
    assert client.blob_exists(ref, desc.digest)
    other = parse(f"{registry.host}/push/other:v1")
    assert client.mount_blob(other, desc.digest, ref.path) is None  # 201: mounted
    assert client.blob_exists(other, desc.digest)
    assert client.push_blob(other, desc, payload) == "exists"
    # monolithic upload from a file factory, and a manifest round trip
    layer = layer_from_entries([file_entry("m", b"monolithic")])
    third = parse(f"{registry.host}/push/third:v2")
    session = client.start_upload(third)
    client.upload_monolithic(session, layer.blob.digest, layer.blob.size, lambda: io.BytesIO(layer.blob.data))
    image = build_image([layer], AMD64)
    client.push_blob(third, image.config.descriptor(), image.config.data)
    assert client.head_manifest(third) is None
    digest = client.put_manifest(third, image.manifest.data, image.manifest.media_type)
    head = client.head_manifest(third)
    assert head is not None and head.digest == digest == image.manifest.digest
    # a wrong digest on upload is rejected by the registry
    session = client.start_upload(third)
    with pytest.raises(RegistryError, match="DIGEST_INVALID|digest"):
        client.upload_monolithic(session, "sha256:" + "1" * 64, 3, b"abc")


# --- layers: compression, whiteouts, hostile content through the registry -----------------


def test_layered_image_zstd_uncompressed_and_whiteouts(registry, tmp_path: Path) -> None:
    base = layer_from_entries([dir_entry("etc"), file_entry("etc/keep", b"k"), file_entry("etc/gone", b"g"),
                               dir_entry("cache"), file_entry("cache/old", b"o")], compression="zstd")
    top = layer_from_entries([file_entry("etc/.wh.gone"), dir_entry("cache"), file_entry("cache/.wh..wh..opq"),
                              file_entry("cache/new", b"n")], compression="none")
    image = build_image([base, top], ARM64)
    push_image(client_for(), parse(f"{registry.host}/layers/zstd:v1"), image)
    source = ImageSource(client_for())
    resolved = source.resolve(f"{registry.host}/layers/zstd:v1", ARM64)
    cs = store(tmp_path)
    source.pull(resolved, cs)
    flat = tmp_path / "flat"
    unpack_image(resolved, cs, flat)
    assert sorted(os.listdir(flat / "etc")) == ["keep"]
    assert sorted(os.listdir(flat / "cache")) == ["new"]
    if os.geteuid() == 0:
        upper = tmp_path / "upper"
        result = unpack_layer(cs.path(top.blob.digest), top.blob.media_type, upper, WhiteoutMode.OVERLAY,
                              expected_diff_id=top.diff_id)
        assert result.diff_id == top.diff_id
        assert os.stat(upper / "etc/gone", follow_symlinks=False).st_rdev == os.makedev(0, 0)
        assert os.getxattr(upper / "cache", "trusted.overlay.opaque") == b"y"


def test_hostile_layer_from_registry_stays_inside(registry, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("original")
    hostile = layer_from_entries([symlink_entry("escape", str(outside)), file_entry("escape/victim", b"pwned"),
                                  symlink_entry("up", "../../../../../../../.."),
                                  file_entry("up" + str(outside) + "/planted", b"x")])
    image = build_image([hostile], AMD64)
    push_image(client_for(), parse(f"{registry.host}/hostile/layer:v1"), image)
    source = ImageSource(client_for())
    resolved = source.resolve(f"{registry.host}/hostile/layer:v1")
    cs = store(tmp_path)
    source.pull(resolved, cs)
    rootfs = tmp_path / "rootfs"
    unpack_image(resolved, cs, rootfs)
    assert (outside / "victim").read_text() == "original"
    assert sorted(os.listdir(outside)) == ["victim"]
    assert (rootfs / str(outside).lstrip("/") / "planted").read_bytes() == b"x"
    assert (rootfs / str(outside).lstrip("/") / "victim").read_bytes() == b"pwned"


# --- OCI layouts --------------------------------------------------------------------------


def test_oci_layout_written_by_skopeo(registry_with_busybox, tmp_path: Path) -> None:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo not installed")
    layout_dir = tmp_path / "layout"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--all",
                    f"docker://{registry_with_busybox.ref}", f"oci:{layout_dir}:v1"],
                   check=True, capture_output=True, timeout=120)
    layout, image = open_layout_ref(f"oci-layout://{layout_dir}:v1", ARM64)
    assert image.config["architecture"] == "arm64"
    assert image.manifest_digest == registry_with_busybox.manifest_digest("linux/arm64")
    assert layout.tags() == ["v1"]
    cs = store(tmp_path)
    layout.import_blobs(image, cs)
    rootfs = tmp_path / "rootfs"
    unpack_image(image, cs, rootfs)
    assert (rootfs / "bin/busybox").is_file()


def test_oci_layout_tags_digests_and_errors(busybox_images, tmp_path: Path) -> None:
    writer = OCILayoutWriter(tmp_path / "layout")
    amd, arm = busybox_images["linux/amd64"], busybox_images["linux/arm64"]
    writer.add_image(amd, "single")
    index = writer.add_index([amd, arm], "multi")
    layout = OCILayout(tmp_path / "layout")
    assert sorted(layout.tags()) == ["multi", "single"]
    assert layout.resolve("single", ARM64).manifest_digest == amd.manifest.digest  # not an index: as is
    multi = layout.resolve("multi", ARM64)
    assert multi.manifest_digest == arm.manifest.digest and multi.index_digest == index.digest
    assert layout.resolve(digest=index.digest, platform=AMD64).manifest_digest == amd.manifest.digest
    with pytest.raises(OCILayoutError, match="no image tagged 'nope'.*multi"):
        layout.resolve("nope")
    assert parse_layout_ref("oci-layout:///a/b:tag") == parse_layout_ref("/a/b:tag")
    assert parse_layout_ref("oci-layout://rel/dir").tag is None
    # a corrupted blob in the layout is refused
    config_path = layout.blob_path(arm.config.digest)
    os.chmod(config_path, 0o644)
    config_path.write_bytes(arm.config.data.replace(b"arm64", b"amd64"))
    with pytest.raises(OCILayoutError, match="corrupt"):
        layout.resolve("multi", ARM64)
    with pytest.raises(OCILayoutError, match="not an OCI image layout"):
        OCILayout(tmp_path)


def test_https_to_a_plain_http_registry_gives_a_hint(registry_with_busybox, tmp_path: Path) -> None:
    # A loopback registry forced to HTTPS: the TLS handshake cannot work, and is not retried.
    toml = write_llbook_config(tmp_path / "t.toml", {registry_with_busybox.host: {"http": False}})
    config = load_registry_config(toml, env={}, home=tmp_path)
    with pytest.raises(RegistryError, match="does not speak TLS; set http = true"):
        ImageSource(client_for(config, RetryPolicy(attempts=3, base_delay=5))).resolve(registry_with_busybox.ref)


def test_unpack_layer_sniffs_compression_and_reports_bad_blobs(tmp_path: Path) -> None:
    from solver.source.image import LayerFormatError
    from solver.source.tarsafe import TarExtractError
    layer = layer_from_entries([file_entry("hello", b"world")], compression="gzip")
    blob = tmp_path / "blob"
    blob.write_bytes(layer.blob.data)
    # a vague "tar" media type with gzip bytes is sniffed
    result = unpack_layer(blob, "application/vnd.oci.image.layer.v1.tar", tmp_path / "a")
    assert result.diff_id == layer.diff_id and (tmp_path / "a/hello").read_bytes() == b"world"
    assert result.uncompressed_size == len(layer.tar)
    # gzip promised, plain tar delivered
    blob.write_bytes(layer.tar)
    with pytest.raises(LayerFormatError, match="gzip magic"):
        unpack_layer(blob, "application/vnd.oci.image.layer.v1.tar+gzip", tmp_path / "b")
    # a gzip stream cut in half
    blob.write_bytes(layer.blob.data[: len(layer.blob.data) // 2])
    with pytest.raises((LayerFormatError, TarExtractError)):
        unpack_layer(blob, layer.blob.media_type, tmp_path / "c")
    with pytest.raises(LayerFormatError, match="encrypted"):
        unpack_layer(blob, "application/vnd.oci.image.layer.v1.tar+gzip+encrypted", tmp_path / "d")


@pytest.mark.parametrize("reader", ["isal", "stdlib"])
def test_unpack_layer_gzip_readers_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str) -> None:
    """igzip and the standard library's fallback give the same files and diff_id, across many
    prefetched chunks; a damaged stream is refused with either."""
    import random
    from solver.source import image
    from solver.source.image import LayerFormatError
    from solver.source.tarsafe import TarExtractError
    if reader == "stdlib":
        monkeypatch.setattr(image, "_igzip", None)
    rng = random.Random(7)
    big = bytes(rng.getrandbits(8) for _ in range(3 * 1024 * 1024 + 17))  # crosses 1 MiB chunks
    entries = [file_entry(f"d{i % 7}/f{i}", f"{i}\n".encode() * i) for i in range(300)]
    layer = layer_from_entries(entries + [file_entry("big.bin", big)], compression="gzip")
    blob = tmp_path / "blob"
    blob.write_bytes(layer.blob.data)
    result = unpack_layer(blob, layer.blob.media_type, tmp_path / "a", expected_diff_id=layer.diff_id)
    assert result.uncompressed_size == len(layer.tar) and result.stats.files == 301
    assert (tmp_path / "a/big.bin").read_bytes() == big
    assert (tmp_path / "a/d5/f299").read_bytes() == b"299\n" * 299
    damaged = bytearray(layer.blob.data)
    damaged[100:164] = b"\xff" * 64
    blob.write_bytes(bytes(damaged))
    with pytest.raises((LayerFormatError, TarExtractError), match="corrupt|CRC|invalid|Invalid"):
        unpack_layer(blob, layer.blob.media_type, tmp_path / "b")
