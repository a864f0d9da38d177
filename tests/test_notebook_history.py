"""Build history and cache transfer in a real kernel: every %%dockerfile cell build is recorded,
%llb history lists and diffs them as llbook history does, and %llb cache export/import
moves a session's cache into a fresh kernel with an empty cache dir."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from kernel_driver import Execution, Kernel
from kernel_ext.session import CellOptions, NotebookSession
from solver.history import HistoryStore


@pytest.fixture
def kernel_env(tmp_path: Path, registry_config) -> dict[str, str]:
    env = dict(os.environ)
    env.update(registry_config.env)
    env["LLBOOK_CACHE_DIR"] = str(tmp_path / "cache")
    env.pop("LLBOOK_CACHE_FROM", None)
    return env


def start(env: dict[str, str], cwd: Path) -> Kernel:
    kernel = Kernel(env, str(cwd))
    loaded = kernel.execute("%load_ext kernel_ext")
    assert loaded.status == "ok", loaded.text
    return kernel


def state_of(text: str, step: str) -> str:
    """CACHED, DONE or ERROR: the state of the one step ``#N [stage-S n] STEP  STATE`` of a cell's progress."""
    found = {m.group(1) for m in re.finditer(r"^#\d+ \[[^\]]+\] (?:.*?)  (CACHED|DONE|ERROR)\b", text, re.M)
             if m.group(0).split("] ", 1)[1].startswith(step + "  ")}
    assert len(found) == 1, text
    return found.pop()


def html_of(run: Execution) -> str:
    return "\n".join(o["data"].get("text/html", "") for o in run.outputs if "data" in o)


def llbook(*args: str, env: dict[str, str]) -> str:
    proc = subprocess.run([sys.executable, "-m", "solver.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_history_lists_cell_builds_and_diff_names_the_changed_run(kernel_env, tmp_path: Path) -> None:
    kernel = start(kernel_env, tmp_path)
    try:
        first = kernel.execute("%%dockerfile --build-arg FLAVOUR=plain\nFROM busybox\nARG FLAVOUR\n"
                               "RUN echo one > /f\n", cell_id="c1")
        assert first.status == "ok", first.text
        second = kernel.execute("%%dockerfile --build-arg FLAVOUR=plain\nFROM busybox\nARG FLAVOUR\n"
                                "RUN echo two > /f\n", cell_id="c1")
        assert second.status == "ok", second.text
        listing = kernel.execute("%llb history")
        assert listing.status == "ok", listing.text
        rows = [line for line in listing.text.splitlines() if line.startswith(tuple("abcdefghijklmnopqrstuvwxyz0123456789"))
                and "completed" in line]
        assert len(rows) == 2 and all(" cell 1 " in row for row in rows), listing.text
        assert "<table>" in html_of(listing) and html_of(listing).count("<td>cell 1</td>") == 2
        diff = kernel.execute("%llb history diff")
        assert diff.status == "ok", diff.text
        assert "command changed: /bin/sh -c echo one > /f → /bin/sh -c echo two > /f" in diff.text, diff.text
        refs = [row.split()[0] for row in rows]  # latest first
        explicit = kernel.execute(f"%llb history diff {refs[1]} {refs[0]}")
        assert explicit.text == diff.text
        cli = llbook("history", "diff", "--cache-dir", kernel_env["LLBOOK_CACHE_DIR"], env=kernel_env)
        assert cli.rstrip("\n") == diff.text.rstrip("\n")  # the CLI's ^1 ^0 are the same two builds
        inspect = kernel.execute("%llb history inspect ^1")
        assert "Frontend:       notebook" in inspect.text and f"Ref:            {refs[1]}" in inspect.text
        assert re.search(r"Build Steps:    \d+/\d+ \(\d+% cached\)", inspect.text), inspect.text
        assert "FLAVOUR=plain" in inspect.text and "RUN echo one > /f" in inspect.text
        bad = kernel.execute("%llb history inspect ^7")
        assert bad.status == "error" and "there are 2 builds of this session" in bad.text
        failing = kernel.execute("%%dockerfile\nRUN echo about-to-fail && false\n", cell_id="c2")
        assert failing.status == "error"
        latest = kernel.execute("%llb history inspect")
        assert "Status:         failed" in latest.text and "Error:" in latest.text, latest.text
        assert re.search(r"FAILED +\S+  \[stage-0 3\] RUN echo about-to-fail && false", latest.text), latest.text
    finally:
        kernel.shutdown()
    record = HistoryStore.of(kernel_env["LLBOOK_CACHE_DIR"]).resolve("^1")  # survives the kernel
    assert record.frontend == "notebook" and record.status == "completed" and record.session
    assert record.sources == {"cell 1": "FROM busybox\nARG FLAVOUR\nRUN echo two > /f\n"}
    assert record.args == {"FLAVOUR": "plain"}


def test_cache_export_then_a_fresh_kernel_imports_it_and_the_cell_is_cached(kernel_env, tmp_path: Path) -> None:
    cell = "%%dockerfile\nFROM busybox\nRUN echo exported-step > /e\n"
    layout = tmp_path / "exported-cache"
    kernel = start(kernel_env, tmp_path)
    try:
        built = kernel.execute(cell, cell_id="c1")
        assert built.status == "ok", built.text
        assert state_of(built.text, "RUN echo exported-step > /e") == "DONE", built.text
        export = kernel.execute(f"%llb cache export type=local,dest={layout},mode=max")
        assert export.status == "ok", export.text
        assert re.search(r"local\s+\S+exported-cache\s+max\s+sha256:[0-9a-f]{64}\s+[1-9]\d*\s+[1-9]", export.text)
        assert "<table>" in html_of(export)
        staged = kernel.execute(f"%llb cache export --stage stage-0 type=local,dest={layout},tag=stage,mode=min")
        assert staged.status == "ok" and " min " in staged.text, staged.text
        assert {m["annotations"]["org.opencontainers.image.ref.name"]
                for m in json.loads((layout / "index.json").read_text())["manifests"]} == {"latest", "stage"}
    finally:
        kernel.shutdown()
    fresh = dict(kernel_env, LLBOOK_CACHE_DIR=str(tmp_path / "empty-cache"))
    kernel = start(fresh, tmp_path)
    try:
        # the fresh cache dir really is empty: a step nobody exported runs
        other = kernel.execute("%%dockerfile\nFROM busybox\nRUN echo not-exported > /n\n", cell_id="other")
        assert state_of(other.text, "RUN echo not-exported > /n") == "DONE", other.text
        imported = kernel.execute(f"%llb cache import --cache-from type=local,src={layout}")
        assert imported.status == "ok" and f"local {layout}" in imported.text, imported.text
        assert f"local {layout}" in kernel.execute("%llb cache ls").text
        again = kernel.execute(cell, cell_id="c1")
        assert again.status == "ok", again.text
        assert state_of(again.text, "RUN echo exported-step > /e") == "CACHED", again.text
        latest = [line for line in kernel.execute("%llb history").text.splitlines() if " cell 2 " in line]
        assert len(latest) == 1 and latest[0].endswith("2/2 cached"), latest
        checked = kernel.execute("%llb exec -- cat /e")  # the imported layers are there when read
        assert "exported-step" in checked.text, checked.text
        broken = kernel.execute(f"%llb cache import type=local,src={tmp_path / 'nowhere'}")
        assert broken.status == "ok" and "WARNING" in broken.text and "continuing without it" in broken.text
    finally:
        kernel.shutdown()


def test_cache_export_refuses_what_it_cannot_write(kernel_env, tmp_path: Path) -> None:
    kernel = start(kernel_env, tmp_path)
    try:
        nothing = kernel.execute(f"%llb cache export type=local,dest={tmp_path / 'x'}")
        assert nothing.status == "error" and "no cell has a result yet" in nothing.text
        assert kernel.execute("%%dockerfile\nFROM busybox\n", cell_id="c").status == "ok"
        for spec, message in (("type=inline", "the inline cache lives in an image's config"),
                              ("type=local", "type=local needs dest="),
                              (f"--all type=local,dest={tmp_path / 'x'}", "add mode=max")):
            run = kernel.execute(f"%llb cache export {spec}")
            assert run.status == "error" and message in run.text, (spec, run.text)
            assert "Traceback" not in run.text
    finally:
        kernel.shutdown()


def test_a_failure_to_record_never_fails_the_cell(tmp_path: Path, llbook_registry_env) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "history").write_text("not a directory")  # every write of a record fails
    session = NotebookSession(cache_dir=cache, context=tmp_path, registry_config=llbook_registry_env.config)
    try:
        run = session.run_cell("FROM busybox\nRUN echo still-builds > /s\n", "c", CellOptions())
        assert run.result is not None and run.result.snapshot
    finally:
        session.close()
    assert (cache / "history").read_text() == "not a directory"


def test_export_all_keeps_every_version_of_an_edited_cell(tmp_path: Path, llbook_registry_env) -> None:
    """--all exports each build of the session: the COPY of app.py v1 and of v2 are one vertex
    with two cache keys, and a fresh session that imports the cache has both CACHED."""
    from kernel_ext import cache_transfer
    text = "FROM busybox AS ctx\nCOPY app.py /app/app.py\nRUN cat /app/app.py\n"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    options = CellOptions(context=str(ctx))
    layout = tmp_path / "layout"
    sessions = []

    def session(name: str) -> NotebookSession:
        sessions.append(NotebookSession(cache_dir=tmp_path / name, context=tmp_path,
                                        registry_config=llbook_registry_env.config))
        return sessions[-1]
    try:
        first = session("first")
        for version in ("v1", "v2"):
            (ctx / "app.py").write_text(f"print('{version}')\n")
            first.run_cell(text, "copy", options)
        reports = cache_transfer.export_caches(first, [f"type=local,dest={layout},mode=max"], all_cells=True)
        assert len(reports) == 1 and reports[0].records > 0
        fresh = session("fresh")
        assert cache_transfer.import_caches(fresh, [f"type=local,src={layout}"]) == []
        for version in ("v1", "v2"):
            (ctx / "app.py").write_text(f"print('{version}')\n")
            run = fresh.run_cell(text, "copy", options)
            steps = {v.name.split("] ", 1)[1]: v.cached for v in run.result.vertices if v.kind != "local"}
            assert steps["COPY app.py /app/app.py"] and steps["RUN cat /app/app.py"], (version, steps)
    finally:
        for s in sessions:
            s.close()


def test_registry_cache_round_trip_between_sessions(tmp_path: Path, llbook_registry_env, registry_with_busybox) -> None:
    """type=registry,ref=…,mode=max from one session; a bare REF (as docker build --cache-from) in another."""
    from kernel_ext import cache_transfer
    ref = f"{registry_with_busybox.host}/cache/notebook:{uuid.uuid4().hex[:12]}"
    text = f"FROM busybox\nRUN echo {ref} > /r\n"
    sessions = [NotebookSession(cache_dir=tmp_path / name, context=tmp_path, registry_config=llbook_registry_env.config)
                for name in ("first", "fresh")]
    try:
        first, fresh = sessions
        assert not first.run_cell(text, "r", CellOptions()).result.cached_count
        [report] = cache_transfer.export_caches(first, [f"type=registry,ref={ref},mode=max"])
        assert report.digest.startswith("sha256:") and report.layers >= 2
        assert cache_transfer.import_caches(fresh, [ref]) == []
        run = fresh.run_cell(text, "r", CellOptions())
        assert [v.cached for v in run.result.vertices] == [True, True], run.result.vertices
    finally:
        for s in sessions:
            s.close()
