"""`llbook dump-llb` end to end: real processes, real graphviz."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from solver import llb
from solver.llb import pb

AMD64 = llb.Platform("linux", "amd64")


def run_cli(*args: str, stdin: bytes = b"", cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "solver", *args], input=stdin, capture_output=True, timeout=120,
                          cwd=cwd)


@pytest.fixture
def def_pb() -> bytes:
    base = llb.image("busybox")
    st = base.with_env("A", "1").run("echo hi > /x", shell=True,
                                     mounts=[llb.cache_mount("/cache", "c"), llb.bind("/src", llb.local("ctx", session="s"))])
    out = llb.merge([st.root(), st.get_mount("/src").file(llb.mkdir("/d", 0o755).mkfile("/d/f", 0o600, "x"))])
    return out.marshal(AMD64).to_bytes()


def test_format_pb_returns_identical_bytes(def_pb: bytes, tmp_path: Path) -> None:
    proc = run_cli("dump-llb", "--format", "pb", stdin=def_pb)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == def_pb
    path = tmp_path / "def.pb"
    path.write_bytes(def_pb)
    assert run_cli("dump-llb", "--format", "pb", str(path)).stdout == def_pb


def test_format_json_digests_are_sha256_of_op_bytes(def_pb: bytes) -> None:
    proc = run_cli("dump-llb", "--format", "json", stdin=def_pb)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    defn = pb.Definition.from_bytes(def_pb)
    assert len(lines) == len(defn.def_) == 6  # busybox, local, exec, file, merge, final
    for line, op_bytes in zip(lines, defn.def_):
        obj = json.loads(line)
        assert obj["Digest"] == "sha256:" + hashlib.sha256(op_bytes).hexdigest()
        assert set(obj) == {"Op", "Digest", "OpMetadata"}
    assert run_cli("dump-llb", stdin=def_pb).stdout == proc.stdout  # json is the default


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz not installed")
def test_format_dot_renders_with_graphviz(def_pb: bytes) -> None:
    proc = run_cli("dump-llb", "--format", "dot", stdin=def_pb)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(b"digraph {\n")
    assert run_cli("dump-llb", "--dot", stdin=def_pb).stdout == proc.stdout
    svg = subprocess.run(["dot", "-Tsvg"], input=proc.stdout, capture_output=True, timeout=60)
    assert svg.returncode == 0, svg.stderr
    assert b"<svg" in svg.stdout
    assert b"echo hi" in svg.stdout and b"invtriangle" not in svg.stdout  # shapes are drawn, not named


def test_invalid_input_is_a_clean_error() -> None:
    proc = run_cli("dump-llb", stdin=b"\x0a\x05ab")
    assert proc.returncode == 1
    assert proc.stderr.decode().startswith("llbook: error: failed to parse definition")
    assert b"Traceback" not in proc.stderr
    missing = run_cli("dump-llb", "/nonexistent/def.pb")
    assert missing.returncode == 1 and b"cannot read /nonexistent/def.pb" in missing.stderr


def test_help_lists_dump_llb() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    assert b"dump-llb" in proc.stdout


def _frontend_available() -> bool:
    try:
        from solver.frontend import dockerfile_to_llb  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _frontend_available(), reason="Dockerfile frontend not available")
def test_dockerfile_is_lowered(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hi")
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM busybox\nRUN echo hi > /x\nCOPY a.txt /a\n")
    proc = run_cli("dump-llb", "-f", str(dockerfile), "--platform", "linux/amd64", "--format", "json", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    ops = [json.loads(line)["Op"] for line in proc.stdout.decode().splitlines()]
    assert ops[0]["Op"]["source"]["identifier"] == "docker-image://docker.io/library/busybox:latest"
    assert ops[0]["platform"] == {"Architecture": "amd64", "OS": "linux"}
    assert any("exec" in op["Op"] for op in ops) and any("file" in op["Op"] for op in ops)
    pb_out = run_cli("dump-llb", "-f", str(dockerfile), "--platform", "linux/amd64", "--format", "pb", str(tmp_path))
    assert pb.Definition.from_bytes(pb_out.stdout).head()


@pytest.mark.skipif(not _frontend_available(), reason="Dockerfile frontend not available")
def test_dockerfile_error_prints_file_and_line(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM busybox\nNOSUCHINSTRUCTION x\n")
    proc = run_cli("dump-llb", "-f", str(dockerfile), str(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.decode().startswith(f"{dockerfile}:2: ")
    assert b"Traceback" not in proc.stderr


def test_console_script_if_installed(def_pb: bytes) -> None:
    script = Path(sys.executable).parent / "llbook"
    if not script.exists():
        pytest.skip("llbook console script not installed in this environment")
    proc = subprocess.run([str(script), "dump-llb", "--format", "pb"], input=def_pb, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == def_pb


def test_resolve_pins_from_images_to_their_manifest_digest(tmp_path: Path, registry_config,
                                                           registry_with_busybox) -> None:
    """Without --resolve nothing is fetched; with it FROM is pinned as BuildKit pins it."""
    import os
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo pinned\n")
    env = {**os.environ, **registry_config.env}
    plain = subprocess.run([sys.executable, "-m", "solver", "dump-llb", "-f", str(tmp_path / "Dockerfile"),
                            str(tmp_path)], capture_output=True, text=True, env=env, timeout=120)
    assert plain.returncode == 0, plain.stderr
    assert '"docker-image://docker.io/library/busybox:latest"' in plain.stdout
    pinned = subprocess.run([sys.executable, "-m", "solver", "dump-llb", "--resolve", "-f",
                             str(tmp_path / "Dockerfile"), str(tmp_path)], capture_output=True, text=True,
                            env=env, timeout=120)
    assert pinned.returncode == 0, pinned.stderr
    expected = f"docker-image://docker.io/library/busybox:latest@{registry_with_busybox.digest}"
    assert f'"{expected}"' in pinned.stdout
