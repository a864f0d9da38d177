"""llbook build's --add-host, --ulimit, --shm-size, --label, --iidfile, -q, --no-cache-filter (runc), --network through dockerd, and --load into dockerd."""

from __future__ import annotations

import json
import os
import tarfile
import uuid
from pathlib import Path

import pytest

from test_build_cli import LLBOOK, _env, build, executed, write

pytestmark = pytest.mark.root


def test_add_host_ulimit_and_shm_size_reach_run(registry_config, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    write(ctx / "Dockerfile", "FROM busybox\nRUN cat /etc/hosts > /hosts && ulimit -n > /nofile && ulimit -Hn >> /nofile"
          " && df -k /dev/shm | tail -1 > /shm\n")
    out = tmp_path / "out"
    build(registry_config, ctx, tmp_path / "cache", "--add-host", "db.example:10.1.2.3",
          "--add-host", "Other=192.0.2.7", "--ulimit", "nofile=1234:2345", "--shm-size", "8m",
          "--output", f"type=local,dest={out}")
    hosts = (out / "hosts").read_text().splitlines()
    assert "10.1.2.3\tdb.example" in hosts and "192.0.2.7\tother" in hosts
    assert (out / "nofile").read_text().split() == ["1234", "2345"]
    assert (out / "shm").read_text().split()[1] == str(8 * 1024)  # 1K-blocks of the tmpfs


def test_bad_flag_values_are_one_line_errors(registry_config, tmp_path: Path) -> None:
    import subprocess
    for flag, value in (("--add-host", "nohost"), ("--add-host", "h:not-an-ip"), ("--ulimit", "nofile=9:1"),
                        ("--ulimit", "bogus=1"), ("--shm-size", "lots")):
        proc = subprocess.run([*LLBOOK, "build", flag, value, str(tmp_path)], env=_env(registry_config),
                              capture_output=True, text=True)
        assert proc.returncode == 2 and flag in proc.stderr and "Traceback" not in proc.stderr


def test_label_iidfile_and_quiet_print_the_image_id(registry_config, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    write(ctx / "Dockerfile", 'FROM busybox\nLABEL from.file=yes\nRUN echo hi > /hi\n')
    archive, iid = tmp_path / "image.tar", tmp_path / "iid"
    proc, _ = build(registry_config, ctx, tmp_path / "cache", "-q", "--label", "org.example.k=v1",
                    "--label", "from.file=overridden", "--iidfile", str(iid), "--output", f"type=oci,dest={archive}")
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))
        manifest = json.load(tar.extractfile("blobs/sha256/" + index["manifests"][0]["digest"].split(":")[1]))
        config_digest = manifest["config"]["digest"]
        config = json.load(tar.extractfile("blobs/sha256/" + config_digest.split(":")[1]))
    assert config["config"]["Labels"]["org.example.k"] == "v1"
    assert config["config"]["Labels"]["from.file"] == "overridden"  # the flag wins, as in dockerfile2llb
    assert iid.read_text() == config_digest
    assert proc.stdout.strip() == config_digest  # -q: only the image ID on stdout
    assert "built " not in proc.stderr


def test_no_cache_filter_reruns_only_the_named_stage(registry_config, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    write(ctx / "Dockerfile", "FROM busybox AS Base\nRUN echo base > /b\n"
          "FROM base AS app\nRUN cat /b > /a\n")
    cache = tmp_path / "cache"
    build(registry_config, ctx, cache)
    _, warm = build(registry_config, ctx, cache)
    assert executed(warm) == []
    _, meta = build(registry_config, ctx, cache, "--no-cache-filter", "app")
    assert [n.split("] ", 1)[1] for n in executed(meta)] == ["RUN cat /b > /a"]
    _, meta = build(registry_config, ctx, cache, "--no-cache-filter", "BASE,app")  # names match case-insensitively
    assert sorted(n.split("] ", 1)[1] for n in executed(meta)) == ["RUN cat /b > /a", "RUN echo base > /b"]


def test_buildkit_host_dockerd_network_host(dockerd, registry_with_busybox, tmp_path: Path) -> None:
    """The acceptance case: a RUN without --network builds on dockerd with --network=host --allow network.host."""
    import subprocess
    import sys
    base = f"{registry_with_busybox.host}/library/busybox:latest"
    ctx = tmp_path / "ctx"
    nonce = uuid.uuid4().hex
    write(ctx / "Dockerfile", f"FROM {base}\nRUN grep -c db.example /etc/hosts > /n && echo {nonce} >> /n\n"
          'CMD ["cat", "/n"]\n')
    name = f"llbook-flags-{nonce[:8]}:latest"
    env = {k: v for k, v in os.environ.items() if k not in ("BUILDKIT_HOST", "LLBOOK_BUILDKIT_HOST")}
    env["LLBOOK_CACHE_DIR"] = str(tmp_path / "cache")
    try:
        done = subprocess.run([sys.executable, "-m", "solver", "build", "--buildkit-host", "dockerd://",
                               "--network=host", "--allow", "network.host", "--add-host", "db.example:10.9.9.9",
                               "--progress", "plain", "-t", name, str(ctx)], capture_output=True, text=True,
                              env=env, cwd=Path(__file__).resolve().parents[1], timeout=600)
        assert done.returncode == 0, done.stderr
        assert dockerd.docker("run", "--rm", "--network=host", name).stdout.split() == ["1", nonce]
    finally:
        dockerd.docker("rmi", "-f", name, check=False)


def test_load_puts_the_image_into_dockerd(dockerd, registry_config, tmp_path: Path, monkeypatch) -> None:
    """--load: the docker archive goes through docker load into the dockerd the tests start."""
    ctx, scratch = tmp_path / "ctx", tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # where the archive for docker load is written
    nonce = uuid.uuid4().hex
    write(ctx / "Dockerfile", f'FROM busybox\nRUN echo {nonce} > /n\nLABEL org.example.nonce={nonce}\nCMD ["cat", "/n"]\n')
    name = f"llbook-load-{nonce[:8]}:v1"
    iid = tmp_path / "iid"
    try:
        proc, _ = build(registry_config, ctx, tmp_path / "cache", "--load", "-t", name, "--iidfile", str(iid))
        assert f"Loaded image: {name}" in proc.stderr
        inspect = json.loads(dockerd.docker("image", "inspect", name).stdout)[0]
        assert inspect["Id"] == iid.read_text()  # the image ID docker build would print
        assert inspect["Config"]["Labels"]["org.example.nonce"] == nonce
        assert dockerd.docker("run", "--rm", "--network=host", name).stdout.strip() == nonce
    finally:
        dockerd.docker("rmi", "-f", name, check=False)
    assert list(scratch.iterdir()) == []  # the archive is gone after the load


def test_load_without_a_reachable_dockerd_is_one_line(registry_config, tmp_path: Path) -> None:
    import socket
    import subprocess
    ctx = tmp_path / "ctx"
    write(ctx / "Dockerfile", "FROM busybox\nRUN echo never > /n\n")
    dead = tmp_path / "dead.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(dead))  # bound, never listening: connections are refused
    try:
        for host, cause in ((f"unix://{tmp_path / 'none.sock'}", "does not exist"),
                            (f"unix://{dead}", "Connection refused")):
            env = {**_env(registry_config), "DOCKER_HOST": host}
            proc = subprocess.run([*LLBOOK, "build", "--progress", "plain", "--cache-dir", str(tmp_path / "cache"),
                                   "--load", str(ctx)], env=env, capture_output=True, text=True, timeout=300)
            assert proc.returncode == 1 and "Traceback" not in proc.stderr
            lines = proc.stderr.strip().splitlines()
            assert lines == [f"error: --load: no docker daemon is reachable: DOCKER_HOST={host}"
                             f"{': ' if 'refused' in cause else ' '}{cause}; start dockerd, or write the image "
                             "with --output type=docker,dest=FILE"], proc.stderr
    finally:
        sock.close()


def test_relative_dockerfile_in_a_removed_directory_and_unreadable_config_home(tmp_path: Path) -> None:
    """Issue 12's last acceptance point, the cases tests/test_build_cli_errors.py leaves: ``-f Dockerfile``
    from a removed working directory names the removed directory (was "No such file or directory"), and
    a user who may not read $HOME/.config gets one line naming it (was a PermissionError traceback)."""
    import shutil
    import subprocess
    import sys
    from test_build_cli_errors import ROOT, one_line_error
    ctx, gone = tmp_path / "ctx", tmp_path / "gone"
    write(ctx / "Dockerfile", "FROM scratch\n")
    gone.mkdir()
    script = f'cd "{gone}" && rmdir "{gone}" && exec "$@"'
    proc = subprocess.run(["sh", "-c", script, "sh", sys.executable, "-m", "solver.cli", "build", "-f", "Dockerfile",
                           "--cache-dir", str(tmp_path / "cache"), str(ctx)],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    one_line_error(proc, "cannot read Dockerfile Dockerfile", "current directory no longer exists")
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return
    import tempfile
    with tempfile.TemporaryDirectory(prefix="llbook-nobody-", dir="/tmp") as public:  # pytest's tmp is 0700
        base = Path(public)
        base.chmod(0o755)
        (base / ".config").mkdir(mode=0o700)  # root's; the build runs as nobody
        write(base / "ctx" / "Dockerfile", "FROM scratch\n")
        (base / "cache").mkdir()
        (base / "cache").chmod(0o777)
        proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                               "solver.cli", "build", "--cache-dir", str(base / "cache"), str(base / "ctx")],
                              env={**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(base)}, capture_output=True,
                              text=True, timeout=120)
        one_line_error(proc, "cannot read registry config", str(base / ".config"), "Permission denied")


OUTLINE_DOCKERFILE = """\
# syntax=docker/dockerfile:1

# GO_VERSION sets the Go toolchain version
ARG GO_VERSION=1.22
# BASE the base image <alpine>
ARG BASE=alpine:${GO_VERSION}
ARG UNUSED=nothing

# base builds the common layer
FROM ${BASE} AS base
# VERSION of the release
ARG VERSION=v1 REV
RUN --mount=type=secret,id=token,required=true --mount=type=ssh true

FROM base AS build
# bar is not about FLAVOR
# FLAVOR picks the flavour
ARG FLAVOR=plain
ARG GO_VERSION
RUN --mount=type=secret,id=aws --mount=type=ssh,id=deploy,required=true \\
    --mount=type=secret,target=/run/secrets/npmrc true

FROM busybox AS lint
# LINTER is only for lint
ARG LINTER=golangci
RUN --mount=type=ssh,id=lintkey true

# release is the shipped image
FROM scratch AS release
COPY --from=build /x /x
"""


def _call(registry_config, ctx: Path, *flags: str):
    import subprocess
    return subprocess.run([*LLBOOK, "build", *flags, str(ctx)], env=_env(registry_config), capture_output=True,
                          text=True, timeout=120)


def test_call_outline_prints_as_buildx(registry_config, tmp_path: Path) -> None:
    """--call=outline: the args the target uses (global ones its FROM needs, their defaults' args, its base
    stage's and the stages it copies from), with the comments above each ARG; secrets and ssh ids."""
    ctx = tmp_path / "ctx"
    write(ctx / "Dockerfile", OUTLINE_DOCKERFILE)
    proc = _call(registry_config, ctx, "--call=outline")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        "TARGET:      release\n"
        "DESCRIPTION: is the shipped image\n"
        "\n"
        "BUILD ARG    VALUE         DESCRIPTION\n"
        "GO_VERSION   1.22          sets the Go toolchain version\n"
        "BASE         alpine:1.22   the base image <alpine>\n"
        "VERSION      v1            of the release\n"
        "REV                        \n"
        "FLAVOR       plain         picks the flavour\n"
        "\n"
        "SECRET   REQUIRED\n"
        "token    true\n"
        "aws      \n"
        "npmrc    \n"
        "\n"
        "SSH       REQUIRED\n"
        "default   \n"
        "deploy    true\n"
        "\n")
    # another target and a build arg: lint uses none of the global args
    proc = _call(registry_config, ctx, "--call", "outline", "--target", "lint", "--build-arg", "LINTER=revive")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ("TARGET: lint\n\n"
                           "BUILD ARG   VALUE    DESCRIPTION\n"
                           "LINTER      revive   is only for lint\n\n"
                           "SSH       REQUIRED\n"
                           "lintkey   \n\n")


def test_call_outline_json(registry_config, tmp_path: Path) -> None:
    import base64
    ctx = tmp_path / "ctx"
    write(ctx / "Dockerfile", OUTLINE_DOCKERFILE)
    proc = _call(registry_config, ctx, "--call=outline,format=json", "--target", "base")
    assert proc.returncode == 0, proc.stderr
    assert "\\u003calpine\\u003e" in proc.stdout  # Go's HTML-safe escapes
    assert proc.stdout.startswith('{\n  "name": "base",\n  "description": "builds the common layer",\n')
    data = json.loads(proc.stdout)
    assert data["args"] == [
        {"name": "GO_VERSION", "description": "sets the Go toolchain version", "value": "1.22",
         "location": {"ranges": [{"start": {"line": 4}, "end": {"line": 4}}]}},
        {"name": "BASE", "description": "the base image <alpine>", "value": "alpine:1.22",
         "location": {"ranges": [{"start": {"line": 6}, "end": {"line": 6}}]}},
        {"name": "VERSION", "description": "of the release", "value": "v1",
         "location": {"ranges": [{"start": {"line": 12}, "end": {"line": 12}}]}},
        {"name": "REV", "location": {"ranges": [{"start": {"line": 12}, "end": {"line": 12}}]}}]
    assert data["secrets"] == [{"name": "token", "required": True,
                                "location": {"ranges": [{"start": {"line": 13}, "end": {"line": 13}}]}}]
    assert data["ssh"] == [{"name": "default", "location": {"ranges": [{"start": {"line": 13}, "end": {"line": 13}}]}}]
    assert base64.b64decode(data["sources"][0]).decode() == OUTLINE_DOCKERFILE
    assert list(data) == ["name", "description", "args", "secrets", "ssh", "sources"]


def test_call_targets_text_and_json(registry_config, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    write(ctx / "Dockerfile", OUTLINE_DOCKERFILE)
    proc = _call(registry_config, ctx, "--call=targets")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ("TARGET            DESCRIPTION\n"
                           "base              builds the common layer\n"
                           "build             \n"
                           "lint              \n"
                           "release (default) is the shipped image\n")
    proc = _call(registry_config, ctx, "--call=targets,format=json")
    data = json.loads(proc.stdout)
    assert data["targets"][0] == {"name": "base", "description": "builds the common layer", "base": "${BASE}",
                                  "location": {"ranges": [{"start": {"line": 10}, "end": {"line": 10}}]}}
    assert data["targets"][-1] == {"name": "release", "default": True, "description": "is the shipped image",
                                   "base": "scratch",
                                   "location": {"ranges": [{"start": {"line": 29}, "end": {"line": 29}}]}}
    write(ctx / "Dockerfile", "FROM busybox\nRUN true\n")
    assert _call(registry_config, ctx, "--call=targets").stdout == "TARGET    DESCRIPTION\n(default) \n"
    assert _call(registry_config, ctx, "--call=outline").stdout == ""  # no name, no description, nothing used


def test_bad_call_values_are_usage_errors(registry_config, tmp_path: Path) -> None:
    for value, message in (("bogus", "unknown call 'bogus'"), ("outline,x=1", "invalid print field: x=1"),
                           ("outline,targets", "invalid print value: outline,targets"),
                           ("outline,format=yaml", "invalid format 'yaml'")):
        proc = _call(registry_config, tmp_path, f"--call={value}")
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_call_check_ignorestatus_and_lint_alias(registry_config, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    write(ctx / "Dockerfile", "FROM scratch AS Base\nENV A 1\n")  # StageNameCasing, LegacyKeyValueFormat
    lint = _call(registry_config, ctx, "--call=lint")
    assert lint.returncode == 1 and "StageNameCasing" in lint.stdout
    ignored = _call(registry_config, ctx, "--call=check,ignorestatus=true")
    assert ignored.returncode == 0 and ignored.stdout == lint.stdout  # the same report, exit 0 as buildx
    as_json = _call(registry_config, ctx, "--call=check,format=json")
    assert as_json.returncode == 1 and as_json.stderr == ""  # the lint result.json (tests/test_build_checks_json.py)
    assert [w["ruleName"] for w in json.loads(as_json.stdout)["warnings"]] == ["StageNameCasing", "LegacyKeyValueFormat"]
