"""The notebook session's build checks: the session Dockerfile's lines mapped back to cells,
warnings that see every cell, check=error=true failing a cell, and vertex warnings in the DAG."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel_ext.session import CellOptions, NotebookSession
from kernel_ext.widgets.dag_model import build_dag
from solver.errors import DockerfileError


@pytest.fixture
def session(tmp_path: Path):
    s = NotebookSession(cache_dir=tmp_path / "cache", context=tmp_path)
    yield s
    s.close()


def test_session_lines_map_back_to_cells(session):
    session.upsert("\n\nFROM scratch AS one\nARG greeting=hi\n", "a", CellOptions())
    session.upsert("FROM scratch AS two\n", "b", CellOptions())
    session.upsert("# back in stage one\nENV GREETING=$greting\n", "c", CellOptions(stage="one"))
    source = session.session_source()
    assert source.text.splitlines()[4] == "ENV GREETING=$greting"  # cell 3 is grouped with stage one
    (warning,) = session.check().warnings
    assert (warning.rule, warning.cell, warning.line) == ("UndefinedVar", "cell 3", 2)
    assert warning.message == "Usage of undefined variable '$greting' (did you mean $greeting?)"
    assert warning.cell_text.split("\n")[warning.line - 1] == "ENV GREETING=$greting"


def test_cell_run_keeps_its_warnings_and_the_dag_names_them(session):
    run = session.run_cell("FROM scratch\nWORKDIR app\n", "w")
    assert [(w.rule, w.line) for w in run.cell.warnings] == [("WorkdirRelativePath", 2)]
    vertices = build_dag(session.dag_input(run.cell)).vertices
    mkdir = [v for v in vertices if "WORKDIR" in v.name]
    assert mkdir and mkdir[0].warnings == [
        'WorkdirRelativePath: Relative workdir "app" can have unexpected results if the base image changes']
    again = session.run_cell("FROM scratch\nWORKDIR /app\n", "w")
    assert again.cell.warnings == []
    assert all(not v.warnings for v in build_dag(session.dag_input(again.cell)).vertices)


def test_error_true_fails_the_cell_that_has_the_warning(session):
    session.run_cell("# check=error=true\nFROM scratch\n", "top")
    with pytest.raises(DockerfileError) as failure:
        session.run_cell("CMD run\n", "cmd")
    assert failure.value.filename == "cell 2" and failure.value.line == 1
    assert failure.value.message == "lint violation found for rules: JSONArgsRecommended"
    assert session.cell("cmd").status == "failed"
