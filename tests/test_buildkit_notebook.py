"""%%dockerfile cells solved by dockerd's BuildKit (`%llb config --buildkit-host dockerd://`).

The same IPython shell as tests/test_kernel_ext.py; the cells' LLB goes to the daemon,
whose Status stream drives the cell's progress text (built, cached, logs, errors).
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from fixtures.progress_text import step_states

import kernel_ext
from solver.errors import BuildError


@pytest.fixture(scope="module")
def shell():
    from IPython.terminal.interactiveshell import TerminalInteractiveShell
    from IPython.testing import globalipapp
    ip = globalipapp.start_ipython() or TerminalInteractiveShell.instance()
    ip.run_line_magic("load_ext", "kernel_ext")
    yield ip
    ip.run_line_magic("unload_ext", "kernel_ext")
    # start_ipython() answers None once called; let a later module (test_kernel_ext) start the
    # same singleton shell again
    if hasattr(globalipapp.start_ipython, "already_called"):
        del globalipapp.start_ipython.already_called


@pytest.fixture
def ip(shell, dockerd, tmp_path: Path, llbook_registry_env, monkeypatch):
    monkeypatch.chdir(tmp_path)
    state = kernel_ext._registry[id(shell)]
    state.session.close()
    state.session = kernel_ext._new_session()
    state.session.cache_dir = tmp_path / "cache"
    state.session.context = tmp_path
    state.session.registry_config = llbook_registry_env.config
    yield shell
    state.session.buildkit_host = None


def run(ip, text: str, cell_id: str, capsys) -> tuple[str, object]:
    result = ip.run_cell(text, cell_id=cell_id)
    return capsys.readouterr().out, result


def state_of(states: dict[str, str], command: str) -> str:
    """The state of the one step whose name ends with `command` (names carry "[stage-0 N]")."""
    found = [v for k, v in states.items() if k.endswith("] " + command)]
    assert len(found) == 1, (command, states)
    return found[0]


def test_cells_run_on_dockerd_with_cached_steps_and_logs(ip, capsys, registry_with_busybox) -> None:
    base = f"{registry_with_busybox.host}/library/busybox:latest"
    nonce = uuid.uuid4().hex[:12]
    out, _ = run(ip, "%llb config --buildkit-host dockerd:// --allow network.host", "cfg", capsys)
    assert "dockerd://" in out and "moby" in out  # the daemon's worker is listed
    session = kernel_ext._registry[id(ip)].session
    assert session.buildkit_host == "dockerd://"

    out, result = run(ip, f"%%dockerfile\nFROM {base}\nRUN --network=host echo cell-one-{nonce} | tee /one\n",
                      "a", capsys)
    assert result.error_in_exec is None, out
    assert f"cell-one-{nonce}" in out  # the RUN's log, streamed from the daemon
    assert state_of(step_states(out), f"RUN --network=host echo cell-one-{nonce} | tee /one") == "DONE"

    out, result = run(ip, f"%%dockerfile\nRUN --network=host cat /one > /two && echo two-{nonce}\n", "b", capsys)
    assert result.error_in_exec is None, out
    states = step_states(out)
    assert state_of(states, f"RUN --network=host echo cell-one-{nonce} | tee /one") == "CACHED"
    assert state_of(states, f"RUN --network=host cat /one > /two && echo two-{nonce}") == "DONE"
    assert f"two-{nonce}" in out and f"| cell-one-{nonce}" not in out
    # FROM may be reported completed rather than cached by dockerd's v0.8 BuildKit
    assert re.search(r"3 steps, [12] cached", out), out

    # the DAG and "why" views read the daemon's vertices
    statuses = session.vertex_status()
    assert "built" in statuses.values() and "cached" in statuses.values()
    out, result = run(ip, "%llb why", "why", capsys)
    why = str(result.result)
    assert f"echo cell-one-{nonce} | tee /one: CACHED" in why
    assert f"two-{nonce}: rebuilt — not in the cache of the BuildKit daemon at dockerd://" in why

    # re-running the first cell: everything cached on the daemon
    out, _ = run(ip, f"%%dockerfile\nFROM {base}\nRUN --network=host echo cell-one-{nonce} | tee /one\n",
                 "a", capsys)
    assert state_of(step_states(out), f"RUN --network=host echo cell-one-{nonce} | tee /one") == "CACHED"


def test_failing_cell_on_dockerd_is_located_at_its_line(ip, capsys, registry_with_busybox) -> None:
    base = f"{registry_with_busybox.host}/library/busybox:latest"
    run(ip, "%llb config --buildkit-host dockerd:// --allow network.host", "cfg", capsys)
    out, result = run(ip, f"%%dockerfile\nFROM {base}\nRUN --network=host echo going down && exit 7\n", "f", capsys)
    error = result.error_in_exec
    assert isinstance(error, BuildError), out
    assert error.exit_code == 7 and error.line == 2 and "going down" in error.log_tail


def test_export_through_the_daemon_lands_in_dockerd(ip, capsys, dockerd, registry_with_busybox) -> None:
    base = f"{registry_with_busybox.host}/library/busybox:latest"
    run(ip, "%llb config --buildkit-host dockerd:// --allow network.host", "cfg", capsys)
    run(ip, f"%%dockerfile\nFROM {base}\nRUN --network=host echo exported > /e\nCMD [\"cat\", \"/e\"]\n", "x", capsys)
    name = f"llbook-bk-nb-{uuid.uuid4().hex[:8]}:latest"
    session = kernel_ext._registry[id(ip)].session
    try:
        done = session.export(f"type=image,name={name}")
        assert done["digest"].startswith("sha256:")
        assert dockerd.docker("run", "--rm", "--network=host", name).stdout == "exported\n"
    finally:
        dockerd.docker("rmi", "-f", name, check=False)


def test_unreachable_daemon_in_config_names_address(ip, capsys, tmp_path: Path) -> None:
    address = f"unix://{tmp_path}/nothing.sock"
    out, result = run(ip, f"%llb config --buildkit-host {address}", "cfg", capsys)
    assert result.error_in_exec is not None
    assert address in str(result.error_in_exec)


def test_layers_view_says_where_the_result_is(ip, capsys, registry_with_busybox) -> None:
    base = f"{registry_with_busybox.host}/library/busybox:latest"
    run(ip, "%llb config --buildkit-host dockerd:// --allow network.host", "cfg", capsys)
    run(ip, f"%%dockerfile\nFROM {base}\nRUN --network=host echo x > /x\n", "v", capsys)
    _, result = run(ip, "%llb layers --files", "view", capsys)
    assert "BuildKit daemon at dockerd://" in str(result.error_in_exec)
    assert "type=local" in str(result.error_in_exec)


def test_exec_runs_on_the_daemon(ip, capsys, registry_with_busybox) -> None:
    base = f"{registry_with_busybox.host}/library/busybox:latest"
    nonce = uuid.uuid4().hex
    run(ip, "%llb config --buildkit-host dockerd:// --allow network.host", "cfg", capsys)
    run(ip, f"%%dockerfile\nFROM {base}\nENV WHO={nonce}\nWORKDIR /w\nRUN --network=host echo x > f\n", "e", capsys)
    for _ in range(2):  # never answered from cache
        _, result = run(ip, "%llb exec -- sh -c 'echo $WHO; pwd; cat f'", "exec", capsys)
        assert str(result.result) == f"{nonce}\n/w\nx\n"
    _, result = run(ip, "%llb exec -- sh -c 'echo oops; exit 4'", "exec", capsys)
    assert str(result.result) == "oops\n\n(exit code 4)"
