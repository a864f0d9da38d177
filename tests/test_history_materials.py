"""What the build history keeps beyond the steps: the secret and ssh ids a build was served
(never a value, key path or agent socket), its docker build flags as buildx history inspect
names them, and a notebook's %llb export recorded as an export; and %llb's help names every
sub-command. Real builds: llbook build in subprocesses, %%dockerfile in a real kernel, a real
ssh-agent."""

from __future__ import annotations

import hashlib
import re
import sys
import subprocess
from pathlib import Path

import pytest

import kernel_ext.commands as commands
from kernel_ext.magics import LLBookMagics
from test_build_ssh import _keygen, _run, _env_with, agent  # noqa: F401 - agent: a real ssh-agent holding one key
from test_notebook_history import kernel_env, start  # noqa: F401 - kernel_env: registry, fresh cache
from solver.history import HistoryStore

pytestmark = pytest.mark.root

SECRET = "v4lue-never-kept"
DOCKERFILE = ("FROM busybox\n"  # the RUN checks the secret by its md5: the Dockerfile is kept in the record
              "RUN --mount=type=secret,id=tok --mount=type=ssh --mount=type=ssh,id=keyed "
              f'test "$(md5sum < /run/secrets/tok | cut -c1-32)" = {hashlib.md5(SECRET.encode()).hexdigest()} '
              "&& echo served\n")


def _history_bytes(cache: Path) -> bytes:
    """Every file the history keeps under the cache dir (records and logs)."""
    root = HistoryStore.of(str(cache)).root
    return b"".join(p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file())


def test_cli_record_keeps_secret_and_ssh_ids_and_the_flags(registry_config, agent, tmp_path: Path) -> None:  # noqa: F811
    sock, _ = agent
    ctx, cache = tmp_path / "ctx", tmp_path / "cache"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    secret = tmp_path / "token.txt"
    secret.write_text(SECRET)
    key = _keygen(tmp_path / "id_keyed", "keyed@llbook")
    env = _env_with(registry_config, SSH_AUTH_SOCK=sock)
    done = _run(registry_config, env, "--cache-dir", str(cache), "--secret", f"id=tok,src={secret}",
                "--ssh", "default", "--ssh", f"keyed={key}", "--network", "none", "--add-host", "db:10.0.0.7",
                "--shm-size", "64m", "--ulimit", "nofile=100:200", "--no-cache-filter", "stage-0", str(ctx))
    assert done.returncode == 0, done.stderr
    assert "served" in done.stderr
    proc = subprocess.run([*_cli(), "history", "inspect", "--cache-dir", str(cache)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Secrets (ids only):\n  tok\n" in out
    assert "SSH (ids only):\n  default\n  keyed\n" in out
    for line in ("Network:        none", "Extra Hosts:    db=10.0.0.7", "No Cache Filter: stage-0",
                 "Shm Size:       67108864", "Resource Limits: nofile=100:200"):
        assert line in out, out
    kept = _history_bytes(cache)
    assert b"tok" in kept and b"keyed" in kept
    for never in (SECRET, str(secret), str(key), sock):  # no value, key path or agent socket
        assert never.encode() not in kept, never


def _cli() -> list[str]:
    return [sys.executable, "-m", "solver.cli"]


def test_notebook_records_ids_and_export(kernel_env, agent, tmp_path: Path) -> None:  # noqa: F811
    sock, _ = agent
    secret = tmp_path / "token.txt"
    secret.write_text(SECRET)
    key = _keygen(tmp_path / "id_keyed", "keyed@llbook")
    notebook = tmp_path / "nb"
    notebook.mkdir()
    kernel = start({**kernel_env, "SSH_AUTH_SOCK": sock}, notebook)
    try:
        config = kernel.execute("%llb config --ssh default --add-host db:10.0.0.7", cell_id="cfg")
        assert config.status == "ok", config.text
        cell = kernel.execute(f"%%dockerfile --secret id=tok,src={secret} --ssh keyed={key}\n{DOCKERFILE}",
                              cell_id="c1")
        assert cell.status == "ok" and "served" in cell.text, cell.text
        inspect = kernel.execute("%llb history inspect ^0", cell_id="h1")
        assert "Secrets (ids only):\n  tok\n" in inspect.text, inspect.text
        assert "SSH (ids only):\n  default\n  keyed\n" in inspect.text
        assert "Extra Hosts:    db=10.0.0.7" in inspect.text
        oci = tmp_path / "out.oci.tar"
        exported = kernel.execute(f"%llb export --output type=oci,dest={oci}", cell_id="ex")
        assert exported.status == "ok", exported.text
        digest = re.search(r"digest\s+(sha256:[0-9a-f]{64})", exported.text).group(1)
        listing = kernel.execute("%llb history", cell_id="h2")
        assert "%llb export stage-0" in listing.text, listing.text
        record = kernel.execute("%llb history inspect ^0", cell_id="h3").text
        assert "Name:           %llb export stage-0" in record, record
        assert f"Exports:\n  oci {oci} {digest}" in record
        assert f"Result:         {digest}" in record
        assert "Build Steps:    2/2 (100% cached)" in record  # the cell built it; the export solved it again
        assert "Secrets (ids only):\n  tok\n" in record  # every cell's secrets serve the export's solve
        help_text = kernel.execute("%llb --help", cell_id="help").text
        assert "cache" in help_text.split("sub-commands:", 1)[1]
    finally:
        kernel.shutdown()
    kept = _history_bytes(Path(kernel_env["LLBOOK_CACHE_DIR"]))
    for never in (SECRET, str(secret), str(key), sock):
        assert never.encode() not in kept, never


def test_every_sub_command_is_in_the_help() -> None:
    magic_doc = LLBookMagics.llb.__doc__ or ""
    module_doc = commands.__doc__ or ""
    listed_magic = set(re.split(r"[|\s]+", magic_doc.split("[--help]", 1)[0].replace("%llb", "")))
    listed_module = {w.strip(" .,\n") for w in module_doc.split("\n\n")[1].split("``")[0].split(",")}
    assert set(commands.COMMANDS) <= listed_magic, listed_magic
    assert set(commands.COMMANDS) <= listed_module, listed_module
