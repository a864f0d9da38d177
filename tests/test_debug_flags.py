"""``llbook debug`` takes the build's docker build flags (so its steps are the build's, from the
cache), and the notebook's debug terminal passes the session's: build args, entitlements,
%llb config flags, every cell's secret and ssh ids; a cell with RUN flags of its own is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel_ext.cell_flags import BuildFlags
from kernel_ext.debug_terminal import session_flags
from kernel_ext.session import CellOptions, NotebookSession
from solver.cli.build import SecretSpec
from solver.cli.build_ssh import SSHSpec
from solver.errors import LLBookError
from solver.frontend import RunOptions
from test_build_cli import LLBOOK, build, write
from test_debug_shell import PROMPT, PtySession, shell_env

DOCKERFILE = 'FROM busybox\nENV PS1="dbg-prompt# "\nRUN cat /etc/hosts > /hosts\n'


def _debug(registry_config, cache: Path, context: Path, *flags: str) -> str:
    session = PtySession([*LLBOOK, "debug", "--progress", "plain", "--cache-dir", str(cache), "--step", "2",
                          *flags, str(context)], shell_env(registry_config))
    session.read_until(PROMPT)
    session.type(b"grep -c db.example /hosts; exit 0\r")
    assert session.wait() == 0, session.text()
    return session.text()


@pytest.mark.root
@pytest.mark.timeout(300)
def test_debug_with_the_build_flags_opens_on_the_cached_step(registry_config, tmp_path: Path) -> None:
    context, cache = tmp_path / "ctx", tmp_path / "cache"
    write(context / "Dockerfile", DOCKERFILE)
    build(registry_config, context, cache, "--add-host", "db.example:10.0.0.9")
    same = _debug(registry_config, cache, context, "--add-host", "db.example:10.0.0.9")
    assert "RUN cat /etc/hosts > /hosts" in same and "CACHED" in same.split("RUN cat /etc/hosts > /hosts", 1)[1]
    assert "\n1\r" in same or "\n1\n" in same, same  # the step's /hosts has the build's host
    other = _debug(registry_config, cache, context)  # without the flag it is another step: run again
    assert "\n0\r" in other or "\n0\n" in other, other
    assert "DONE" in other.split("RUN cat /etc/hosts > /hosts", 1)[1].split("BusyBox")[0]


def _session(tmp_path: Path) -> NotebookSession:
    session = NotebookSession(cache_dir=tmp_path / "cache", context=tmp_path, entitlements=("network.host",),
                              build_args={"A": "1"})
    session.flags = BuildFlags(network="host", run=RunOptions(extra_hosts=(("db", "10.0.0.9"),), shm_size=1024,
                                                             ulimits=(("nofile", 5, 6),)),
                               secrets=(SecretSpec("tok", tmp_path / "t"),), ssh=(SSHSpec("work", ("/k",)),))
    return session


def test_session_flags_are_llbook_debug_arguments(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SSH_AUTH_SOCK", "/agent.sock")
    session = _session(tmp_path)
    session.upsert("FROM busybox\n", "c1", CellOptions(flags=BuildFlags(ssh=(SSHSpec("default"),),
                                                                        run=RunOptions(labels=(("k", "v"),)))))
    assert session_flags(session) == [
        "--build-arg", "A=1", "--allow", "network.host", "--network", "host", "--add-host", "db=10.0.0.9",
        "--shm-size", "1024", "--ulimit", "nofile=5:6", "--secret", f"id=tok,src={tmp_path / 't'}",
        "--ssh", "work=/k", "--ssh", "default=/agent.sock"]


def test_a_cell_with_its_own_run_flags_is_refused(tmp_path: Path) -> None:
    session = _session(tmp_path)
    session.upsert("FROM busybox\n", "c1", CellOptions())
    session.upsert("RUN true\n", "c2", CellOptions(flags=BuildFlags(network="none")))
    with pytest.raises(LLBookError, match=r"cell 2 set --network/--add-host/--shm-size/--ulimit of its own"):
        session_flags(session)
