"""The IPython extension in a real IPython shell: %%dockerfile cells on a session, %llb.

Builds run for real (runc or proot, overlay or native) against the loopback registry
that mirrors docker.io, so `FROM busybox` resolves to the machine's busybox.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.progress_text import step_states

import kernel_ext
from solver.errors import BuildError, DockerfileError


@pytest.fixture(scope="module")
def shell():
    from IPython.testing.globalipapp import start_ipython
    ip = start_ipython()
    ip.run_line_magic("load_ext", "kernel_ext")
    ip.run_line_magic("load_ext", "kernel_ext")  # loading twice is harmless
    yield ip
    ip.run_line_magic("unload_ext", "kernel_ext")


@pytest.fixture
def ip(shell, tmp_path: Path, llbook_registry_env, monkeypatch):
    monkeypatch.chdir(tmp_path)
    state = kernel_ext._registry[id(shell)]
    state.session.close()
    state.session = kernel_ext._new_session()
    state.session.cache_dir = tmp_path / "cache"
    state.session.context = tmp_path
    state.session.registry_config = llbook_registry_env.config
    return shell


def cell(ip, text: str, cell_id: str, capsys) -> tuple[str, object]:
    """Run a cell the way ipykernel does (with a cell id); return its stdout and result."""
    result = ip.run_cell(text, cell_id=cell_id)
    out = capsys.readouterr().out
    return out, result


def test_incremental_cells_run_only_the_new_vertex(ip, capsys) -> None:
    out, _ = cell(ip, "%%dockerfile\nFROM busybox\nRUN echo one > /one\n", "a", capsys)
    assert "2 steps, 0 cached" in out
    out, _ = cell(ip, "%%dockerfile\nRUN cat /one > /two\n", "b", capsys)
    st = step_states(out)
    assert [s for s in st.values()] == ["CACHED", "CACHED", "DONE"], out
    assert "3 steps, 2 cached" in out


def test_editing_an_earlier_cell_replaces_it_and_marks_later_cells_stale(ip, capsys) -> None:
    cell(ip, "%%dockerfile\nFROM busybox\nRUN echo v1 > /v\n", "a", capsys)
    cell(ip, "%%dockerfile\nRUN cat /v > /copy\n", "b", capsys)
    cell(ip, "%%dockerfile\nENV UNCHANGED=1\n", "c", capsys)
    out, _ = cell(ip, "%%dockerfile\nFROM busybox\nRUN echo v2 > /v\n", "a", capsys)
    assert "stale: cell 2, cell 3" in out
    session = kernel_ext._registry[id(ip)].session
    assert len(session.cells) == 3 and "v2" in session.cells[0].text
    assert "echo v1" not in session.dockerfile()
    out, _ = cell(ip, "%%dockerfile\nRUN cat /v > /copy\n", "b", capsys)
    assert list(step_states(out).values()) == ["CACHED", "CACHED", "DONE"]
    assert "stale" not in out.splitlines()[-1] or "cell 2" not in out.splitlines()[-1]
    out, _ = cell(ip, "%%dockerfile\nFROM busybox\nRUN echo v1 > /v\n", "a", capsys)  # back to v1
    out, _ = cell(ip, "%%dockerfile\nRUN cat /v > /copy\n", "b", capsys)
    assert list(step_states(out).values()) == ["CACHED"] * 3  # reused: the key is the v1 one again


def test_multi_stage_across_cells(ip, capsys) -> None:
    cell(ip, "%%dockerfile\nFROM busybox AS builder\nRUN echo artefact > /out\n", "b1", capsys)
    cell(ip, "%%dockerfile\nFROM busybox AS final\nRUN echo base > /base\n", "f1", capsys)
    out, _ = cell(ip, "%%dockerfile\nCOPY --from=builder /out /from-builder\n", "f2", capsys)
    assert "DONE" in out
    res = ip.run_cell("%llb exec -- cat /from-builder /base", cell_id="x")
    assert str(res.result) == "artefact\nbase\n"
    out, _ = cell(ip, "%%dockerfile --stage builder\nRUN echo more >> /out\n", "b2", capsys)
    assert "[builder" in out
    text = repr(ip.run_cell("%llb dockerfile", cell_id="y").result)
    assert text.index("FROM busybox AS builder") < text.index("echo more") < text.index("FROM busybox AS final")


def test_failing_cell_then_fixed_cell(ip, capsys) -> None:
    cell(ip, "%%dockerfile\nFROM busybox\n", "a", capsys)
    out, res = cell(ip, "%%dockerfile\nRUN echo about to fail && exit 7\n", "b", capsys)
    assert isinstance(res.error_in_exec, BuildError)
    assert res.error_in_exec.exit_code == 7
    assert "about to fail" in "\n".join(res.error_in_exec.log_tail)
    assert res.error_in_exec.line == 1 and res.error_in_exec.filename == "cell 2"
    out, res = cell(ip, "%%dockerfile\nRUN echo fixed\n", "b", capsys)
    assert res.error_in_exec is None and "fixed" in out


def test_dockerfile_error_names_the_cell_line(ip, capsys) -> None:
    cell(ip, "%%dockerfile\nFROM busybox\n", "a", capsys)
    out, res = cell(ip, "%%dockerfile\nRUN true\nFROBNICATE now\n", "b", capsys)
    err = res.error_in_exec
    assert isinstance(err, DockerfileError)
    assert err.line == 2 and err.filename == "cell 2" and "FROBNICATE" in str(err).upper()
    out, res = cell(ip, "%%dockerfile\nRUN true\n", "b", capsys)
    assert res.error_in_exec is None


def test_dollar_stays_dockerfile_syntax(ip, capsys) -> None:
    cell(ip, "%%dockerfile\nFROM busybox\nARG NAME=world\nENV GREETING=hello\n", "a", capsys)
    ip.user_ns["NAME"] = "python-value"
    out, res = cell(ip, "%%dockerfile --build-arg NAME=arg\nRUN echo \"$GREETING ${NAME} {NAME}\" > /g\n", "b", capsys)
    assert res.error_in_exec is None
    res = ip.run_cell("%llb exec -- cat /g", cell_id="x")
    assert str(res.result) == "hello arg {NAME}\n"


def test_llb_exec_leaves_no_trace(ip, capsys) -> None:
    cell(ip, "%%dockerfile\nFROM busybox\nRUN echo kept > /kept\n", "a", capsys)
    session = kernel_ext._registry[id(ip)].session
    before = {s.name for s in session.solver.snapshotter.list()}
    res = ip.run_cell("%llb exec -- sh -c 'echo scribble > /kept; cat /kept'", cell_id="x")
    assert str(res.result) == "scribble\n"
    assert {s.name for s in session.solver.snapshotter.list()} == before
    res = ip.run_cell("%llb exec -- cat /kept", cell_id="y")
    assert str(res.result) == "kept\n"


def test_llb_subcommands_have_help_and_work(ip, capsys) -> None:
    cell(ip, "%%dockerfile\nFROM busybox\nRUN echo hi > /hi\n", "a", capsys)
    for sub in ("graph", "layers", "export", "dump", "dockerfile", "exec", "history", "why", "status",
                "reset", "du", "prune", "config", "cache"):
        res = ip.run_cell(f"%llb {sub} --help", cell_id="h")
        assert res.error_in_exec is None, sub
        assert "usage: %llb " + sub in capsys.readouterr().out
    assert "<svg" in ip.run_cell("%llb graph", cell_id="g").result._repr_svg_()
    assert '"Digest"' in repr(ip.run_cell("%llb dump", cell_id="d").result)
    assert "RUN echo hi" in repr(ip.run_cell("%llb history steps", cell_id="h2").result)
    assert "cell 1  completed" in repr(ip.run_cell("%llb history", cell_id="h3").result)
    why = repr(ip.run_cell("%llb why 1", cell_id="w").result)
    assert "RUN echo hi" in why
    layers = repr(ip.run_cell("%llb layers", cell_id="l").result)
    assert "echo hi" in layers
    assert "cache dir" in repr(ip.run_cell("%llb config", cell_id="c").result)


def test_llb_prune_reports_what_it_removed(ip, capsys) -> None:
    """%llb prune runs the CLI's prune (the session's lease keeps what the kernel uses)."""
    cell(ip, "%%dockerfile\nFROM busybox\nRUN echo old > /old\n", "a", capsys)
    cell(ip, "%%dockerfile\nFROM busybox\nRUN echo new > /new\n", "a", capsys)
    before = ip.run_cell("%llb du", cell_id="d1").result.rows
    res = ip.run_cell("%llb prune --keep-storage 0", cell_id="p")
    assert res.error_in_exec is None
    text = str(res.result)
    assert text.splitlines()[-1].startswith("Total reclaimed: "), text
    removed = [line for line in text.splitlines() if line.startswith("removed ")]
    assert len(ip.run_cell("%llb du", cell_id="d2").result.rows) == len(before) - len(removed)


def test_why_names_the_changed_command(ip, capsys) -> None:
    cell(ip, "%%dockerfile\nFROM busybox\nRUN echo numpy > /pkg\n", "a", capsys)
    cell(ip, "%%dockerfile\nFROM busybox\nRUN echo pandas > /pkg\n", "a", capsys)
    why = repr(ip.run_cell("%llb why", cell_id="w").result)
    assert "echo numpy" in why and "echo pandas" in why, why


def test_python_api_for_code_cells(ip, capsys, tmp_path: Path) -> None:
    cell(ip, "%%dockerfile\nFROM busybox AS app\nRUN echo api > /api\n", "a", capsys)
    res = ip.run_cell("import kernel_ext\ns = kernel_ext.session()\nsorted(s.stages)", cell_id="p")
    assert res.result == ["app"]
    session = kernel_ext.session()
    result = session.solve("app")
    assert result.cached_count >= 2
    assert "FROM busybox AS app" in session.dockerfile()
    assert "digraph" in session.graph()
    out = session.export(f"type=tar,dest={tmp_path}/fs.tar")
    assert Path(out["destination"]).exists()
