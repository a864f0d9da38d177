"""Syntax and semantics newer than dockerd 20.10's BuildKit (v0.8), which the differential
suite cannot ask docker build about: each is built by llbook and checked against what
BuildKit's current reference (frontend/dockerfile/docs/reference.md) and source say."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from solver.frontend.parser import parse_dockerfile

ROOT = Path(__file__).resolve().parents[2]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="RUN with runc needs root here")


def build(tmp_path: Path, dockerfile: str, files: dict[str, bytes] | None = None, *, env: dict | None = None,
          check: bool = True) -> tuple[subprocess.CompletedProcess, Path]:
    ctx, out = tmp_path / "ctx", tmp_path / "out"
    for name, data in (files or {}).items():
        (ctx / name).parent.mkdir(parents=True, exist_ok=True)
        (ctx / name).write_bytes(data)
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    proc = subprocess.run([sys.executable, "-m", "solver.cli", "build", "--progress", "plain",
                           "--cache-dir", str(tmp_path / "cache"), "--output", f"type=local,dest={out}", str(ctx)],
                          env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc, out


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def targz(members: dict[str, bytes | None]) -> bytes:
    """A gzip tar; a None member is a directory entry."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o750
                tar.addfile(info)
                continue
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def http_files(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    served = tmp_path / "www"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


# -- COPY --parents (reference.md "COPY --parents") -------------------------------------------

def test_copy_parents_keeps_parent_directories(tmp_path: Path) -> None:
    _, out = build(tmp_path, "FROM scratch\nCOPY ./x/a.txt ./y/a.txt /no_parents/\n"
                   "COPY --parents ./x/a.txt ./y/a.txt /parents/\n",
                   {"x/a.txt": b"xa", "y/a.txt": b"ya"})
    assert tree(out) == ["no_parents", "no_parents/a.txt", "parents", "parents/x", "parents/x/a.txt",
                         "parents/y", "parents/y/a.txt"]
    assert (out / "no_parents/a.txt").read_bytes() == b"ya"  # the later source silently wins


def test_copy_parents_pivot_and_double_star(tmp_path: Path) -> None:
    _, out = build(tmp_path, "FROM scratch\nCOPY --parents ./x/./y/*.txt /pivot/\n"
                   "COPY --parents ./src/**/*.txt /deep/\n",
                   {"x/y/a.txt": b"a", "x/y/b.txt": b"b", "x/y/c.log": b"c",
                    "src/a.txt": b"1", "src/x/b.txt": b"2", "src/x/y/c.txt": b"3", "src/x/y/d.md": b"4"})
    assert tree(out / "pivot") == ["y", "y/a.txt", "y/b.txt"]
    assert tree(out / "deep") == ["src", "src/a.txt", "src/x", "src/x/b.txt", "src/x/y", "src/x/y/c.txt"]


def test_copy_parents_missing_source_without_wildcards_fails(tmp_path: Path) -> None:
    proc, _ = build(tmp_path, "FROM scratch\nCOPY --parents ./x/missing.txt /p/\n", {"x/a.txt": b"a"},
                    check=False)
    assert proc.returncode != 0 and "missing.txt" in proc.stderr and "Traceback" not in proc.stderr


# -- ADD --checksum and --unpack (reference.md "ADD --checksum", "ADD --unpack") ------------

def test_add_checksum_verifies_http_content(tmp_path: Path, http_files: tuple[Path, str]) -> None:
    served, base = http_files
    (served / "tool.bin").write_bytes(b"tool v1\n")
    good = "sha256:" + hashlib.sha256(b"tool v1\n").hexdigest()
    _, out = build(tmp_path / "good", f"FROM scratch\nADD --checksum={good} {base}/tool.bin /opt/\n")
    assert (out / "opt/tool.bin").read_bytes() == b"tool v1\n"
    bad = "sha256:" + hashlib.sha256(b"something else").hexdigest()
    proc, _ = build(tmp_path / "bad", f"FROM scratch\nADD --checksum={bad} {base}/tool.bin /opt/\n", check=False)
    assert proc.returncode != 0 and bad.removeprefix("sha256:") in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("dockerfile, message", [
    ("FROM scratch\nADD --checksum=sha256:{h} local.txt /\n", "checksum requires HTTP(S) or Git sources"),
    ("FROM scratch\nCOPY --checksum=sha256:{h} local.txt /\n", "unknown flag: --checksum"),  # parseCopy
    ("FROM scratch\nADD --checksum=sha256:{h} http://127.0.0.1:1/a http://127.0.0.1:1/b /\n",
     "checksum can't be specified for multiple sources"),
])
def test_checksum_errors_follow_buildkit(tmp_path: Path, dockerfile: str, message: str) -> None:
    proc, _ = build(tmp_path, dockerfile.format(h="0" * 64), {"local.txt": b"x"}, check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_add_unpack_flag(tmp_path: Path, http_files: tuple[Path, str]) -> None:
    served, base = http_files
    archive = targz({"inside/one.txt": b"one"})
    (served / "archive.tar.gz").write_bytes(archive)
    _, out = build(tmp_path, f"FROM scratch\nADD --unpack=true {base}/archive.tar.gz /download\n"
                   f"ADD {base}/archive.tar.gz /kept/\nADD --unpack=false my-archive.tar.gz /local/\n"
                   "ADD my-archive.tar.gz /unpacked/\n", {"my-archive.tar.gz": archive})
    assert (out / "download/inside/one.txt").read_bytes() == b"one"  # remote, unpacked on request
    assert (out / "kept/archive.tar.gz").read_bytes() == archive  # remote: not unpacked by default
    assert (out / "local/my-archive.tar.gz").read_bytes() == archive  # local, not unpacked on request
    assert (out / "unpacked/inside/one.txt").read_bytes() == b"one"  # local: unpacked by default


# -- the # check= directive (parsed here; solver/frontend/checks uses it) --------------------

@pytest.mark.parametrize("text, value", [
    ("# check=skip=JSONArgsRecommended;error=true\nFROM scratch\n", "skip=JSONArgsRecommended;error=true"),
    ("# syntax=docker/dockerfile:1\n#CHECK = skip=all \nFROM scratch\n", "skip=all"),
    ("# escape=`\n# check=error=true\nFROM scratch\n", "error=true"),
])
def test_check_directive_is_parsed(text: str, value: str) -> None:
    assert parse_dockerfile(text).directives["check"] == value


def test_check_directive_after_an_instruction_is_a_comment() -> None:
    assert "check" not in parse_dockerfile("FROM scratch\n# check=error=true\n").directives


def test_build_with_check_directive(tmp_path: Path) -> None:
    _, out = build(tmp_path, "# check=skip=all\nFROM scratch\nCOPY a.txt /\n", {"a.txt": b"a"})
    assert (out / "a.txt").read_bytes() == b"a"


# -- other semantics dockerd 20.10 does not have ------------------------------------------

def test_expansion_without_colon_modifiers(tmp_path: Path) -> None:
    # shell/lex.go: ${V-x} and ${V+x} test set-ness only (dockerd 20.10: "missing ':'")
    _, out = build(tmp_path, 'FROM scratch\nENV EMPTY=""\nENV A=${EMPTY-x} B=${UNSET-x} C=${EMPTY+y} D=${UNSET+y}\n'
                   "COPY a.txt /${A}${B}${C}${D}.txt\n", {"a.txt": b"a"})
    assert tree(out) == ["xy.txt"]


def test_copy_heredoc_link_and_exclude(tmp_path: Path) -> None:
    _, out = build(tmp_path, "FROM scratch\nARG WHO=world\nCOPY <<EOF /hello.txt\nhello $WHO\nEOF\n"
                   "COPY --link d /linked/\nCOPY --exclude=*.log d /excluded/\n",
                   {"d/a.txt": b"a", "d/b.log": b"b"})
    assert (out / "hello.txt").read_text() == "hello world\n"
    assert tree(out / "linked") == ["a.txt", "b.log"] and tree(out / "excluded") == ["a.txt"]


@needs_root
def test_add_chown_owns_only_the_made_destination_of_archives(tmp_path: Path, llbook_registry_env) -> None:
    # docker build (dockerd 20.10's BuildKit 0.8, the conformance suite's case add-tar-chown):
    # the destination made for the archive takes the owner, the entries keep the archive's,
    # and directories Untar implies are made 0755 for root. (BuildKit 46e52f472, 2025,
    # chowns the entries too; llbook follows docker build.)
    archive = targz({"arch/": None, "arch/one.txt": b"one", "implied/two.txt": b"two"})
    _, out = build(tmp_path, "FROM busybox\nADD --chown=1000:1000 a.tar.gz /ac/\n"
                   "RUN stat -c '%u:%g:%a' /ac /ac/arch /ac/arch/one.txt /ac/implied /ac/implied/two.txt > /owners\n",
                   {"a.tar.gz": archive}, env=llbook_registry_env.env)
    assert (out / "owners").read_text().split() == ["1000:1000:755", "0:0:750", "0:0:644",
                                                     "0:0:755", "0:0:644"]
