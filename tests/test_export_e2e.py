"""Exports of real builds: `llbook build --output ...` and `-t REF --push` on a Dockerfile,
read back by `docker load`/`docker run`/`docker history`/`docker inspect`, skopeo and umoci;
two SOURCE_DATE_EPOCH builds in fresh caches give one manifest digest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="llbook build with runc needs root here")

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = """FROM busybox
ENV APP_HOME=/srv/app GREETING=hello
WORKDIR /srv/app
RUN echo "$GREETING from llbook" > message.txt && echo doomed > /doomed.txt
RUN rm /doomed.txt && mkdir -p /data && echo kept > /data/kept
LABEL org.example.team=builders org.example.tier=test
EXPOSE 8080/tcp 9090/udp
USER 1000:1000
ENTRYPOINT ["/bin/sh", "-c", "exec \\"$@\\"", "--"]
CMD ["cat", "/srv/app/message.txt"]
"""


def llbook_build(context: Path, cache: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "solver.cli", "build", "--progress", "plain",
                           "--cache-dir", str(cache), *extra, str(context)],
                          env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    return ctx


def test_docker_archive_of_a_build_runs_in_docker(context: Path, tmp_path: Path, registry_config, dockerd) -> None:
    archive = tmp_path / "app.tar"
    ref = "llbook-e2e:latest"
    llbook_build(context, tmp_path / "cache", registry_config.env, "--output", f"type=docker,dest={archive},name={ref}")
    dockerd.docker("load", "-i", str(archive))
    try:
        assert dockerd.docker("run", "--rm", "--network=host", ref).stdout == "hello from llbook\n"
        check = dockerd.docker("run", "--rm", "--network=host", ref, "sh", "-c",
                               "test -e /doomed.txt && echo present || echo absent; cat /data/kept; id -u")
        assert check.stdout.split() == ["absent", "kept", "1000"]
        history = dockerd.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", ref).stdout.splitlines()
        ours = [h for h in history if "busybox" not in h.lower() or "RUN" in h][:9]
        assert ours[0].startswith("CMD [\"cat\" \"/srv/app/message.txt\"]")
        assert any(h.startswith("RUN |0 /bin/sh -c rm /doomed.txt") or h.startswith("RUN /bin/sh -c rm /doomed.txt")
                   for h in history), history
        assert any(h.startswith("WORKDIR /srv/app") for h in history)
        assert any(h.startswith("LABEL org.example.team=builders") for h in history)
        config = json.loads(dockerd.docker("inspect", ref).stdout)[0]["Config"]
        assert "GREETING=hello" in config["Env"] and "APP_HOME=/srv/app" in config["Env"]
        assert config["Cmd"] == ["cat", "/srv/app/message.txt"]
        assert config["Entrypoint"] == ["/bin/sh", "-c", "exec \"$@\"", "--"]
        assert config["WorkingDir"] == "/srv/app" and config["User"] == "1000:1000"
        assert set(config["ExposedPorts"]) == {"8080/tcp", "9090/udp"}
        labels = config["Labels"]  # the base image's labels are inherited, as docker build does
        assert labels["org.example.team"] == "builders" and labels["org.example.tier"] == "test"
    finally:
        dockerd.docker("rmi", "-f", ref, check=False)


def test_oci_export_of_a_build_read_by_skopeo_and_umoci(context: Path, tmp_path: Path, registry_config) -> None:
    layout = tmp_path / "layout"
    local = tmp_path / "local"
    llbook_build(context, tmp_path / "cache", registry_config.env, "--output", f"type=oci,dest={layout},tar=false,name=app:v1",
                 "--output", f"type=local,dest={local}")
    info = json.loads(subprocess.run(["skopeo", "inspect", f"oci:{layout}:v1"], check=True, capture_output=True,
                                     text=True).stdout)
    assert info["Labels"]["org.example.team"] == "builders"
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:v1", str(bundle)], check=True, capture_output=True)
    from test_export import tree
    assert tree(bundle / "rootfs") == tree(local)
    assert not (bundle / "rootfs" / "doomed.txt").exists()


def test_push_with_tag_then_docker_pull(context: Path, tmp_path: Path, registry_config, registry, dockerd) -> None:
    name = f"{registry.host}/llbook/e2e:1"
    proc = llbook_build(context, tmp_path / "cache", registry_config.env, "-t", name, "--push")
    info = json.loads(subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{name}"], check=True,
                                     capture_output=True, text=True).stdout)
    assert info["Digest"] in proc.stderr
    try:
        dockerd.docker("pull", name)
        assert dockerd.docker("run", "--rm", "--network=host", name).stdout == "hello from llbook\n"
    finally:
        dockerd.docker("rmi", "-f", name, check=False)


def test_source_date_epoch_builds_in_fresh_caches_share_a_digest(context: Path, tmp_path: Path,
                                                                registry_config) -> None:
    digests = []
    for i in range(2):
        out = tmp_path / f"img{i}.tar"
        llbook_build(context, tmp_path / f"cache{i}", registry_config.env, "--build-arg", "SOURCE_DATE_EPOCH=1700000000",
                     "--output", f"type=oci,dest={out}")
        info = json.loads(subprocess.run(["skopeo", "inspect", f"oci-archive:{out}"], check=True,
                                         capture_output=True, text=True).stdout)
        assert info["Created"].startswith("2023-11-14T22:13:20")
        digests.append(info["Digest"])
    assert digests[0] == digests[1]
