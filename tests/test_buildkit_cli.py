"""`llbook build --buildkit-host` / `BUILDKIT_HOST` against dockerd's BuildKit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def llbook(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, **(env or {})}
    for name in ("BUILDKIT_HOST", "LLBOOK_BUILDKIT_HOST"):
        if env is None or name not in env:
            full.pop(name, None)
    return subprocess.run([sys.executable, "-m", "solver", *args], capture_output=True, text=True, env=full,
                          cwd=cwd or ROOT, timeout=600)


@pytest.fixture
def project(tmp_path: Path, registry_with_busybox) -> Path:
    base = f"{registry_with_busybox.host}/library/busybox:latest"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "greeting.txt").write_text("hello from the context\n")
    (ctx / "Dockerfile").write_text(
        f"FROM {base}\nCOPY greeting.txt /greeting.txt\n"
        "RUN --network=host --mount=type=secret,id=pw cat /greeting.txt > /out && wc -c < /run/secrets/pw >> /out"
        f" && echo {uuid.uuid4().hex}\n"  # new to the daemon's (content-addressed) cache in every run
        'CMD ["cat", "/out"]\n')
    (tmp_path / "pw").write_text("123456")
    return ctx


def test_build_with_buildkit_host_tags_into_dockerd(dockerd, project: Path, tmp_path: Path) -> None:
    name = f"llbook-bk-cli-{uuid.uuid4().hex[:8]}:latest"
    meta = tmp_path / "meta.json"
    try:
        done = llbook("build", "--buildkit-host", "dockerd://", "--allow", "network.host", "--progress", "plain",
                      "--secret", f"id=pw,src={tmp_path / 'pw'}", "-t", name, "--metadata-file", str(meta),
                      str(project), env={"LLBOOK_CACHE_DIR": str(tmp_path / "cache")})
        assert done.returncode == 0, done.stderr
        assert "built on dockerd://" in done.stderr and "COPY greeting.txt /greeting.txt" in done.stderr
        assert dockerd.docker("run", "--rm", "--network=host", name).stdout == "hello from the context\n6\n"
        data = json.loads(meta.read_text())
        assert data["containerimage.digest"].startswith("sha256:")
        assert data["llbook.buildkit.host"] == "dockerd://"
        assert any("RUN" in v["name"] and not v["cached"] for v in data["llbook.vertices"])
        shown = llbook("history", "inspect", "--cache-dir", str(tmp_path / "cache"), "^0")
        assert shown.returncode == 0, shown.stderr
        assert "Builder:        dockerd://" in shown.stdout and "Status:" in shown.stdout
        from solver.history import HistoryStore
        (record,) = HistoryStore.of(tmp_path / "cache").records()
        assert record.status == "completed" and record.result["image_digest"] == data["containerimage.digest"]
        assert any("RUN" in s.name and s.status == "built" for s in record.steps)
        assert record.secrets == ["pw"] and record.exports[0]["type"] == "moby"
    finally:
        dockerd.docker("rmi", "-f", name, check=False)


def test_buildkit_host_env_and_local_output(dockerd, project: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = llbook("build", "--allow", "network.host", "--progress", "quiet",
                  "--secret", f"id=pw,src={tmp_path / 'pw'}", "--output", f"type=local,dest={out}", str(project),
                  env={"BUILDKIT_HOST": "dockerd://", "LLBOOK_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    assert (out / "out").read_text() == "hello from the context\n6\n"
    assert (out / "bin" / "sh").is_symlink() or (out / "bin" / "sh").exists()


def test_refused_entitlement_and_unreachable_daemon_are_clear(dockerd, project: Path, tmp_path: Path) -> None:
    env = {"LLBOOK_CACHE_DIR": str(tmp_path / "cache")}
    done = llbook("build", "--buildkit-host", "dockerd://", "--secret", f"id=pw,src={tmp_path / 'pw'}",
                  str(project), env=env)
    assert done.returncode == 1
    assert "dockerd://" in done.stderr and "network.host is not allowed" in done.stderr
    from solver.history import HistoryStore
    (record,) = HistoryStore.of(tmp_path / "cache").records()  # a refused build is in the history too
    assert record.status == "failed" and "network.host is not allowed" in (record.error or "")
    assert record.config["Builder"] == "dockerd://"
    missing = f"unix://{tmp_path}/none.sock"
    done = llbook("build", "--buildkit-host", missing, "--allow", "network.host", str(project), env=env)
    assert done.returncode == 1
    assert f"BuildKit daemon at {missing} is unreachable" in done.stderr


def test_named_build_context_directory(dockerd, tmp_path: Path, registry_with_busybox) -> None:
    base = f"{registry_with_busybox.host}/library/busybox:latest"
    ctx, extra = tmp_path / "ctx", tmp_path / "extra"
    ctx.mkdir()
    extra.mkdir()
    (extra / "from-extra.txt").write_text("named context\n")
    (ctx / "Dockerfile").write_text(f"FROM {base}\nCOPY --from=extra from-extra.txt /got.txt\n")
    out = tmp_path / "out"
    done = llbook("build", "--buildkit-host", "dockerd://", "--build-context", f"extra={extra}", "--progress",
                  "quiet", "--output", f"type=local,dest={out}", str(ctx),
                  env={"LLBOOK_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    assert (out / "got.txt").read_text() == "named context\n"


def test_docker_archive_output_through_dockerd(dockerd, project: Path, tmp_path: Path) -> None:
    """dockerd's BuildKit has no docker exporter: the image goes to its store, then `docker save`."""
    import tarfile
    archive = tmp_path / "image.tar"
    before = set(dockerd.docker("images", "-q", "--no-trunc").stdout.split())
    done = llbook("build", "--buildkit-host", "dockerd://", "--allow", "network.host", "--progress", "quiet",
                  "--secret", f"id=pw,src={tmp_path / 'pw'}", "--output", f"type=docker,dest={archive}",
                  str(project), env={"LLBOOK_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        config = json.loads(tar.extractfile(manifest[0]["Config"]).read())  # type: ignore[union-attr]
    assert config["config"]["Cmd"] == ["cat", "/out"] and len(manifest[0]["Layers"]) == 3  # base, COPY, RUN
    assert not [t for t in dockerd.docker("images", "--format", "{{.Repository}}").stdout.split()
                if t.startswith("llbook-export-")]  # the temporary tag is gone
    loaded = dockerd.docker("load", "-i", str(archive)).stdout
    image_id = loaded.strip().rsplit(" ", 1)[-1]
    try:
        assert dockerd.docker("run", "--rm", "--network=host", image_id).stdout == "hello from the context\n6\n"
    finally:
        if image_id not in before:
            dockerd.docker("rmi", "-f", image_id, check=False)
