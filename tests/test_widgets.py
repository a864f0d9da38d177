"""Widget models and widgets driven from Python, on real builds: DAG statuses after a
build, an edit and a failure; the layer tree against the snapshot diff (add, change,
delete, replace a directory); dive's efficiency on a hand-computed example; the layer
tree's message channel; export controls writing an OCI archive that skopeo accepts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kernel_ext.session import NotebookSession
from kernel_ext.widgets import (DagWidget, ExportControls, LayersWidget, RunHistory, build_dag, build_layers,
                                compute_efficiency)
from kernel_ext.widgets.layers_model import build_layers as real_build_layers
from kernel_ext.widgets.dag_model import BUILT, CACHED, FAILED, NOT_RUN, STALE
from kernel_ext.widgets.efficiency import layer_leaves
from kernel_ext.widgets.export_controls import DOCKER, OCI_TAR, PUSH, ExportRequest
from kernel_ext.widgets.layers_model import AGGREGATED, KINDS, LAYER_ONLY, LayersModel, layer_tree
from solver.errors import BuildError, LLBookError
from solver.export.result_source import layer_chain
from solver.llb import dump
from solver.snapshot.diff import ADDED, MODIFIED, REMOVED, Change, FileType, LayerDiff, walk_oci


@pytest.fixture
def session(tmp_path: Path, registry_config) -> NotebookSession:
    s = NotebookSession(cache_dir=tmp_path / "cache", context=tmp_path, registry_config=registry_config.config)
    yield s
    s.close()


def graph_digests(session: NotebookSession, stage: str | None = None) -> set[str]:
    _, state, _ = session.stage_state(stage)
    return {e.digest for e in dump.load_ops(state.marshal()) if e.op.op is not None}


def by_name(model) -> dict[str, str]:
    return {v.label: v.status for v in model.vertices}


# -- DAG ----------------------------------------------------------------------------------------

def test_dag_statuses_after_build_edit_and_failure(session: NotebookSession) -> None:
    history = RunHistory()
    session.run_cell("FROM busybox\nRUN echo v1 > /v\n", "a")
    model = build_dag(session.dag_input(session.cell("a")), history=history)
    assert {v.digest for v in model.vertices} == graph_digests(session)
    assert by_name(model) == {"docker.io/library/busybox:latest": BUILT, "RUN echo v1 > /v": BUILT}

    run_b = session.run_cell("RUN cat /v > /copy\n", "b")
    model = build_dag(session.dag_input(run_b.cell), history=history)
    assert {v.digest for v in model.vertices} == graph_digests(session)
    assert by_name(model) == {"docker.io/library/busybox:latest": CACHED, "RUN echo v1 > /v": CACHED,
                              "RUN cat /v > /copy": BUILT}
    copy = next(v for v in model.vertices if v.label == "RUN cat /v > /copy")
    assert copy.cell == "cell 2" and copy.line == 1 and copy.instruction == "RUN cat /v > /copy"
    assert copy.cache_key.startswith("sha256:") and copy.duration is not None and copy.layer_size is not None
    assert copy.kind == "exec" and copy.shape == "box" and "exec" in copy.op_json["Op"]
    assert copy.reasons and copy.reasons[0]["kind"] == "no-previous"

    # edit the first cell: its RUN is rebuilt, the second cell is stale (its vertex never ran)
    run_a = session.run_cell("FROM busybox\nRUN echo v2 > /v\n", "a")
    assert [c.filename for c in run_a.stale] == ["cell 2"]
    model = build_dag(session.dag_input(run_a.cell), history=history)
    assert {v.digest for v in model.vertices} == graph_digests(session)
    assert by_name(model) == {"docker.io/library/busybox:latest": CACHED, "RUN echo v2 > /v": BUILT,
                              "RUN cat /v > /copy": STALE}
    v2 = next(v for v in model.vertices if v.label == "RUN echo v2 > /v")
    assert any(r["kind"] == "command" and "echo v1" in r["old"] and "echo v2" in r["new"] for r in v2.reasons)

    # a failing cell: its vertex is failed, the stale one stays stale
    with pytest.raises(BuildError) as info:
        session.run_cell("RUN echo boom && exit 3\n", "c")
    history.record_failure(info.value.vertex, str(info.value))
    model = build_dag(session.dag_input(session.cell("c")), history=history)
    assert {v.digest for v in model.vertices} == graph_digests(session)
    assert by_name(model) == {"docker.io/library/busybox:latest": CACHED, "RUN echo v2 > /v": BUILT,
                              "RUN cat /v > /copy": STALE, "RUN echo boom && exit 3": FAILED}
    failed = next(v for v in model.vertices if v.status == FAILED)
    assert failed.digest == info.value.vertex and "exit code 3" in failed.error

    # a new cell that was never run shows as not run in the stage graph of a later lowering
    session.upsert("RUN echo later\n", "d", session.cell("a").options)
    model = build_dag(session.dag_input(), history=history)
    assert by_name(model)["RUN echo later"] == NOT_RUN

    # fixing the failed cell clears the failure
    run_c = session.run_cell("RUN echo fixed\n", "c")
    history.record_run(run_c.result.vertices)
    assert FAILED not in build_dag(session.dag_input(run_c.cell), history=history).statuses().values()


def test_dag_svg_has_shapes_clusters_mount_labels_and_vertex_ids(session: NotebookSession) -> None:
    session.run_cell("FROM busybox AS builder\nRUN echo art > /art\n", "b1")
    session.run_cell("FROM busybox AS final\nRUN --mount=type=bind,from=builder,source=/art,target=/mnt/art "
                     "cat /mnt/art > /copy\nCOPY --from=builder /art /art2\n", "f1")
    model = build_dag(session.dag_input(session.cell("f1")), "final")
    shapes = {v.kind: v.shape for v in model.vertices}
    assert shapes == {"source": "ellipse", "exec": "box", "file": "note"}
    assert {v.stage for v in model.vertices} == {"builder", "final"}
    assert any(e.label == "/mnt/art" for e in model.edges)
    dot = model.to_dot()
    assert "subgraph cluster_0" in dot and "subgraph cluster_1" in dot
    svg = model.to_svg()
    for v in model.vertices:
        assert f'id="{v.digest}"' in svg
    assert "stage builder" in svg and "stage final" in svg and ">/mnt/art<" in svg
    widget = DagWidget(model)
    assert set(widget.vertices) == {v.digest for v in model.vertices}
    bundle = widget._repr_mimebundle_()
    assert "<svg" in bundle["text/html"] and "application/vnd.jupyter.widget-view+json" in bundle


def test_dag_cache_dumps_each_op_once_with_the_same_json(session: NotebookSession) -> None:
    from kernel_ext.widgets.dag_model import DagCache
    session.run_cell("FROM busybox\nRUN echo cached > /c\n", "c1")
    plain = build_dag(session.dag_input())
    cache = DagCache()
    first = build_dag(session.dag_input(), cache=cache)
    second = build_dag(session.dag_input(), cache=cache)
    assert [v.op_json for v in first.vertices] == [v.op_json for v in plain.vertices] == \
        [v.op_json for v in second.vertices]
    assert set(cache.op_jsons) == {v.digest for v in plain.vertices}


def test_dag_svg_without_dot_is_an_llbook_error(monkeypatch, tmp_path: Path) -> None:
    """The graphviz package runs Debian's dot; where it is missing the cell says so."""
    from kernel_ext.widgets.dag_model import render_svg
    assert render_svg("digraph { a -> b }").startswith("<svg")
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot on PATH
    with pytest.raises(LLBookError, match="graphviz's `dot`"):
        render_svg("digraph { a -> b }")


def test_dag_of_120_vertices_renders() -> None:
    from kernel_ext.widgets.dag_model import DagEdge, DagModel, DagVertex
    vertices = [DagVertex(f"sha256:{i:064x}", f"[{i}/120] RUN step {i}", f"RUN step {i}", "box", "exec",
                          CACHED if i % 2 else BUILT, stage=f"s{i // 40}") for i in range(120)]
    edges = [DagEdge(vertices[i - 1].digest, vertices[i].digest) for i in range(1, 120)]
    edges += [DagEdge(vertices[i - 7].digest, vertices[i].digest, "/cache") for i in range(7, 120, 7)]
    svg = DagModel("s2", vertices, edges).to_svg()
    assert svg.count('class="node') == 120


# -- layers -------------------------------------------------------------------------------------

BASE = ("FROM busybox\n"
        "RUN mkdir -p /d/sub /rep && echo a > /d/sub/f && echo keep > /keep && echo old > /mod"
        " && echo x > /rep/x1 && echo y > /rep/y1\n")
CHANGE = ("RUN echo new > /new && echo changed >> /mod && rm /keep && rm -rf /rep && mkdir /rep"
          " && echo z > /rep/x1 && mkdir /d/sub/deeper && echo t > /d/sub/deeper/t\n")


def walk_children(widget: LayersWidget, layer: int, mode: str = LAYER_ONLY, pattern: str = "",
                  kinds=KINDS) -> dict[str, str]:
    """Every entry reachable by expanding folders through the widget's message handler."""
    out: dict[str, str] = {}
    todo = ["/"]
    while todo:
        path = todo.pop()
        reply = widget.answer({"type": "children", "req": 1, "layer": layer, "path": path, "mode": mode,
                               "pattern": pattern, "kinds": list(kinds)})
        assert "error" not in reply, reply
        for entry in reply["entries"]:
            out[entry["path"]] = entry["kind"]
            if entry["has_children"]:
                todo.append(entry["path"])
    return out


def test_layer_model_matches_the_snapshot_diff(session: NotebookSession) -> None:
    session.run_cell(BASE, "a")
    run = session.run_cell(CHANGE, "b")
    snapshotter = session.solver.snapshotter
    chain = layer_chain(snapshotter, run.result.snapshot)
    model = build_layers(session, None, run.result)
    assert [l.snapshot for l in model.layers] == chain and len(chain) == 3
    diff = snapshotter.layer_diff(chain[-1])
    oci = {e.name: e.kind for e in walk_oci(snapshotter.diff_dir(chain[-1]))}
    assert oci.get("rep/.wh..wh..opq") == "opaque" or oci.get(".wh.rep") == "whiteout", oci  # replaced dir
    assert oci.get(".wh.keep") == "whiteout"
    expected = {ADDED: {"/new", "/d/sub/deeper", "/d/sub/deeper/t"},
                MODIFIED: {"/mod", "/rep", "/rep/x1", "/d", "/d/sub"},
                REMOVED: {"/keep", "/rep/y1"}}
    for kind, paths in expected.items():
        assert {c.path for c in diff.of_kind(kind)} - {"/etc", "/root", "/root/.ash_history"} == paths, kind
    widget = LayersWidget(model)
    assert widget.layer == 2
    seen = walk_children(widget, 2)
    for kind in (ADDED, MODIFIED, REMOVED):
        assert {p for p, k in seen.items() if k == kind} == {c.path for c in diff.of_kind(kind)}, kind
    assert set(seen) == {c.path for c in diff.changes} | {"/"} - {"/"}
    info = model.layers[2]
    assert info.instruction.startswith("RUN echo new > /new") and info.vertex
    assert info.digest == "" and info.cache_key.startswith("sha256:")  # no blob before an export
    assert (info.added, info.modified, info.removed) == (len(diff.added), len(diff.modified), len(diff.removed))
    # the base layer is the pulled blob (its digest), made by the image source vertex
    dag = build_dag(session.dag_input(run.cell))
    source = next(v for v in dag.vertices if v.kind == "source")
    assert model.layers[0].digest.startswith("sha256:") and model.layers[0].vertex == source.digest
    assert model.layers[0].snapshot.startswith("layer-")

    # aggregated: the whole filesystem, this layer's changes coloured, removals still shown
    agg = walk_children(widget, 2, AGGREGATED)
    assert agg["/bin/sh"] == "unmodified" and agg["/new"] == ADDED and agg["/keep"] == REMOVED
    assert agg["/d/sub/f"] == "unmodified" and "/rep/y1" in agg and agg["/rep/x1"] == MODIFIED

    # filters: kinds and a regex, parents of matches listed
    only_added = walk_children(widget, 2, kinds=[ADDED])
    assert {p for p, k in only_added.items() if k == ADDED} == expected[ADDED]
    assert set(only_added) == expected[ADDED] | {"/d", "/d/sub"}
    assert set(walk_children(widget, 2, AGGREGATED, pattern=r"/x1$")) == {"/rep", "/rep/x1"}
    assert "bad filter" in widget.answer({"type": "children", "path": "/", "pattern": "(", "layer": 2})["error"]

    # a file's content diff between two layers
    reply = widget.answer({"type": "diff", "path": "/mod", "old": 1, "new": 2})
    assert reply["lines"][-2:] == [" old", "+changed"]
    assert widget.answer({"type": "diff", "path": "/rep/x1", "old": 1, "new": 2})["lines"][-2:] == ["-x", "+z"]
    assert widget.answer({"type": "diff", "path": "/bin/busybox", "old": 0, "new": 2})["binary"]

    bundle = widget._repr_mimebundle_()
    assert "llbook-layers-summary" in bundle["text/html"] and "echo new" in bundle["text/plain"]


def change(path: str, kind: str, size: int = 0, is_dir: bool = False) -> Change:
    return Change(path, kind, FileType.DIR if is_dir else FileType.FILE, size, 0o755 if is_dir else 0o644, 0, 0)


def test_efficiency_matches_a_hand_computed_example() -> None:
    layers = [
        LayerDiff((change("/a", ADDED, is_dir=True), change("/a/f1", ADDED, 100), change("/a/f2", ADDED, 200),
                   change("/b", ADDED, 50))),
        LayerDiff((change("/a", MODIFIED, is_dir=True), change("/a/f1", MODIFIED, 150), change("/c", ADDED, 30))),
        LayerDiff((change("/a", REMOVED, is_dir=True), change("/b", MODIFIED, 50))),
    ]
    assert layer_leaves(layers[0]) == ["/a/f1", "/a/f2", "/b"]
    eff = compute_efficiency(layers)
    # per path (cumulative, smallest): /a/f1 (100+150, 100), /a/f2 (200, 200), /b (50+50, 50),
    # /c (30, 30), /a removed: hides 0 + 150 + 200 = (350, 350)
    assert eff.score == pytest.approx(730 / 930)
    assert eff.wasted == 250 + 100
    assert [c.path for c in eff.inefficiencies] == ["/a/f1", "/b"]
    assert (eff.size, eff.user_size) == (350 + 180 + 50, 180 + 50)
    assert eff.wasted_user_percent == pytest.approx(100 * 350 / 230)
    # a removed file costs nothing itself, but the file it removed is counted twice (dive)
    eff = compute_efficiency([LayerDiff((change("/big", ADDED, 1000),)), LayerDiff((change("/big", REMOVED, 1000),))])
    assert eff.score == 0.0 and eff.wasted == 1000
    assert compute_efficiency([]).score == 1.0


def test_50000_file_layer_stays_lazy() -> None:
    changes = [change(f"/data/d{i // 500:03d}", ADDED, is_dir=True) for i in range(0, 50000, 500)]
    changes += [change(f"/data/d{i // 500:03d}/file{i:05d}.txt", ADDED, i % 4096) for i in range(50000)]
    changes.append(change("/data", ADDED, is_dir=True))
    diff = LayerDiff(tuple(sorted(changes, key=lambda c: c.path)))
    model = LayersModel("big", [], [diff])
    root = model.children(0, "/")
    data = model.children(0, "/data")
    one = model.children(0, "/data/d042")
    assert [e["path"] for e in root["entries"]] == ["/data"] and len(data["entries"]) == 100
    assert len(one["entries"]) == 500 and one["entries"][0]["kind"] == ADDED
    found = model.children(0, "/data", pattern=r"file4999\d")
    assert [e["path"] for e in found["entries"]] == ["/data/d099"]
    assert len(layer_tree(diff)) == 50101


# -- export -------------------------------------------------------------------------------------

def test_export_controls_write_an_oci_archive_skopeo_accepts(session: NotebookSession, tmp_path: Path) -> None:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed (apt-get install skopeo)")
    session.run_cell("FROM busybox\nRUN echo exported > /e\n", "a")
    controls = ExportControls(session, directory=str(tmp_path))
    assert controls.kind.value == OCI_TAR and controls.dest.value == str(tmp_path / "image.oci.tar")
    controls.tag.value = "Bad Tag"
    assert controls.button.disabled and "bad tag" in controls.validation.value
    controls.tag.value = "llbook/app:1"
    assert not controls.button.disabled
    controls.compression.value = "zstd"
    controls.button.click()
    assert controls.last_error == ""
    out = tmp_path / "image.oci.tar"
    assert out.is_file() and controls.progress.value == controls.progress.max
    proc = subprocess.run(["skopeo", "inspect", f"oci-archive:{out}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    inspected = json.loads(proc.stdout)
    assert inspected["Digest"] == controls.last_result["digest"] and len(inspected["Layers"]) == 2
    raw = json.loads(subprocess.run(["skopeo", "inspect", "--raw", f"oci-archive:{out}"], capture_output=True,
                                    text=True, check=True).stdout)
    assert raw["layers"][-1]["mediaType"].endswith("+zstd")  # the compression choice
    assert controls.last_result["digest"] in controls.result.value and "docker load -i" in controls.result.value

    controls.kind.value = DOCKER
    assert controls.dest.value == str(tmp_path / "image.docker.tar")
    controls.button.click()
    assert (tmp_path / "image.docker.tar").is_file() and "docker run --rm -it llbook/app:1" in controls.result.value


def test_export_controls_show_errors_in_the_widget(session: NotebookSession, tmp_path: Path) -> None:
    session.run_cell("FROM busybox\n", "a")
    controls = ExportControls(session, directory=str(tmp_path))
    controls.dest.value = ""
    assert controls.button.disabled and "destination" in controls.validation.value
    controls.dest.value = str(tmp_path / "missing" / "dir" / "x.tar")
    assert controls.button.disabled and "does not exist" in controls.validation.value
    assert ExportRequest(PUSH, tag="").problems() == ["pushing needs a tag such as registry.example/app:1"]
    controls.kind.value = PUSH
    controls.tag.value = "127.0.0.1:9/nothing/here:1"  # nothing listens on port 9
    assert not controls.button.disabled
    assert controls.run() is None
    assert controls.last_error and "export failed" in controls.result.value
    assert controls.progress.bar_style == "danger"


# -- static fallbacks -----------------------------------------------------------------------------

def test_nbconvert_html_of_an_executed_notebook_shows_the_dag_svg_and_layer_summary(
        registry_config, tmp_path: Path) -> None:
    import os

    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter
    nb = nbformat.read(Path(__file__).parent / "fixtures" / "widget_notebook.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("%llb graph"))
    nb.cells.append(nbformat.v4.new_code_cell("%llb layers"))
    env = dict(os.environ, **registry_config.env, LLBOOK_CACHE_DIR=str(tmp_path / "cache"))
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    old = dict(os.environ)
    os.environ.update(env)
    try:
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    build = nb.cells[2].outputs
    views = [o for o in build if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(views) == 1, build  # the progress display became the result view
    data = views[0]["data"]
    assert "RUN mkdir -p /app/data" in data["text/plain"] and re.search(r"\d+ steps", data["text/plain"])
    assert "llbook-progress" in data["text/html"]
    fallbacks = [o["data"]["text/html"] for o in build if "llbook-static-fallback" in o.get("data", {}).get("text/html", "")]
    assert len(fallbacks) == 1 and "<svg" in fallbacks[0] and "llbook-layers-summary" in fallbacks[0]
    assert nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]  # state was stored
    body, _ = HTMLExporter().from_notebook_node(nb)
    # the result view, %llb graph and %llb layers each leave their static copy in the HTML
    assert body.count("class=\"llbook-static-fallback\"") + body.count("class='llbook-static-fallback'") >= 3
    assert body.count("<svg") >= 2 and 'id="sha256:' in body, "DAG SVG missing from the HTML export"
    assert body.count("llbook-layers-summary") >= 2 and "efficiency" in body and "llbook-progress" in body


# -- result view and %llb full views ---------------------------------------------------------------

def test_result_view_after_a_build_and_after_a_failure(session: NotebookSession) -> None:
    from kernel_ext.commands import KernelState
    from kernel_ext.progress_view import LiveProgress
    from kernel_ext.widgets import build_result_view
    from kernel_ext.widgets.result_view import TAB_TITLES
    state = KernelState(session, rich_display=True)
    live = LiveProgress(rich=False, quiet=True)
    run = session.run_cell("FROM busybox\nRUN echo built > /b\n", "a", progress=live)
    live.pump()
    view = build_result_view(state, live, run=run, summary=run.summary)
    assert tuple(view.titles) == TAB_TITLES
    assert view.dag is not None and view.layers is not None and view.export is not None
    assert {v["status"] for v in view.dag.vertices.values()} == {BUILT}
    assert view.dag.why and view.dag.why[0]["cell"] == "cell 1"
    assert "RUN echo built > /b" in view.progress_text and "steps" in view.progress_text
    fallback = view.fallback()._repr_mimebundle_()
    assert "llbook-static-fallback" in fallback["text/html"] and "<svg" in fallback["text/html"]
    assert "llbook-layers-summary" in fallback["text/html"]

    live = LiveProgress(rich=False, quiet=True)
    with pytest.raises(BuildError) as info:
        session.run_cell("RUN echo no && exit 5\n", "b", progress=live)
    live.pump()
    view = build_result_view(state, live, error=info.value, summary="failed")
    statuses = {v["label"]: v["status"] for v in view.dag.vertices.values()}
    assert statuses == {"docker.io/library/busybox:latest": CACHED, "RUN echo built > /b": CACHED,
                        "RUN echo no && exit 5": FAILED}
    assert view.layers is None and view.export is None  # nothing to show or export from a failed build


def test_an_edited_rerun_shows_its_result_in_the_same_view(session: NotebookSession, monkeypatch) -> None:
    from ipywidgets.widgets.widget import _instances
    from kernel_ext.commands import KernelState
    from kernel_ext.progress_view import LiveProgress
    from kernel_ext.widgets import show_result, widget_state
    import IPython.display
    shown: list[object] = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append(obj))
    state = KernelState(session, rich_display=True)
    views, opened = [], []
    for text in ("FROM busybox\nRUN echo 1 > /x\n", "FROM busybox\nRUN echo 2 > /x\n"):
        live = LiveProgress(rich=False, quiet=False)
        run = session.run_cell(text, "same-cell", progress=live)
        live.pump()
        before = set(_instances)
        views.append(show_result(state, live, run=run, summary=run.summary))
        opened.append(set(_instances) - before)
        if len(views) == 1:
            views[0].selected_index = 1  # the DAG tab opened: its widget is made now
            dag, layers_hint = views[0].dag, views[0].children[2]
    first, second = views
    assert second is first and first.comm is not None and opened[1] == set()  # no widget opened again
    assert first.dag is dag and dag.comm is not None  # the DAG widget shows the edit's graph
    labels = {v["label"]: v["status"] for v in dag.vertices.values()}
    assert "RUN echo 2 > /x" in labels and "RUN echo 1 > /x" not in labels and labels["RUN echo 2 > /x"] == BUILT
    assert "RUN echo 2 > /x" in first.progress_text and "RUN echo 2 &gt; /x" in first._progress.value
    assert "echo 1" not in first._progress.value
    assert first.children[2] is layers_hint and first._built.keys() == {1}  # Layers is still made when opened
    first.selected_index = 2
    assert first.layers.comm is not None and layers_hint.comm is None
    assert first.children[2] is first.layers and first.content.result_key[1] == run.result.head
    assert widget_state(state).views == {"same-cell": first}
    assert "<svg" in shown[-1]._repr_mimebundle_()["text/html"] and shown[-2] is first


def test_an_edited_rerun_remakes_an_opened_layers_tab(session: NotebookSession, monkeypatch) -> None:
    from kernel_ext.commands import KernelState
    from kernel_ext.progress_view import LiveProgress
    from kernel_ext.widgets import show_result
    import IPython.display
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: None)
    state = KernelState(session, rich_display=True)
    layers = []
    for text in ("FROM busybox\nRUN echo a > /a\n", "FROM busybox\nRUN echo b > /b\n"):
        live = LiveProgress(rich=False, quiet=False)
        run = session.run_cell(text, "layers-cell", progress=live)
        live.pump()
        view = show_result(state, live, run=run, summary=run.summary)
        view.selected_index = 2
        layers.append(view.layers)
    old, new = layers
    assert old is not new and old.comm is None and new.comm is not None  # the old result's tree is closed
    assert view.children[2] is new and view.content.layers is not None


def test_tabs_are_widgets_only_once_opened(session: NotebookSession, monkeypatch) -> None:
    from kernel_ext.commands import KernelState
    from kernel_ext.progress_view import LiveProgress
    from kernel_ext.widgets import show_result
    import IPython.display
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: None)
    state = KernelState(session, rich_display=True)
    live = LiveProgress(rich=False, quiet=False)
    run = session.run_cell("FROM busybox\nRUN echo lazy > /l\n", "lazy", progress=live)
    live.pump()
    view = show_result(state, live, run=run, summary=run.summary)
    assert [type(c).__name__ for c in view.children] == ["HTML"] * 4 and view._built == {}
    assert "<svg" in view.fallback()._repr_mimebundle_()["text/html"]  # the fallback needs no widget
    view.selected_index = 2
    assert view._built.keys() == {2} and view.children[2] is view.layers and view.layers.layers
    view.selected_index = 3
    assert view.children[3] is view.export and view.export.button.comm is not None


def test_rerunning_an_unchanged_cell_refreshes_its_view(session: NotebookSession, monkeypatch) -> None:
    from kernel_ext.commands import KernelState
    from kernel_ext.progress_view import LiveProgress
    from kernel_ext.widgets import show_result
    import IPython.display
    from kernel_ext.widgets import result_view
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: None)
    made = []
    monkeypatch.setattr(result_view, "build_layers", lambda *a: made.append(a) or real_build_layers(*a))
    state = KernelState(session, rich_display=True)
    views = []
    for _ in range(2):
        live = LiveProgress(rich=False, quiet=False)
        run = session.run_cell("FROM busybox\nRUN echo same > /s\n", "same", progress=live)
        live.pump()
        views.append(show_result(state, live, run=run, summary=run.summary))
        dag = views[-1].dag
    first, second = views
    assert second is first and first.comm is not None and dag.comm is not None  # kept, not rebuilt
    assert "CACHED" in first._progress.value and "CACHED" in first.progress_text
    assert {v["status"] for v in dag.vertices.values()} == {CACHED}  # the DAG shows the re-run
    assert len(made) == 1  # the same result's layers are not computed again


def test_result_view_bundle_names_its_model_and_shows_the_progress(session: NotebookSession, monkeypatch) -> None:
    from kernel_ext.commands import KernelState
    from kernel_ext.progress_view import LiveProgress
    from kernel_ext.widgets import show_result
    import IPython.display
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: None)
    state = KernelState(session, rich_display=True)
    live = LiveProgress(rich=False, quiet=False)
    run = session.run_cell("FROM busybox\nRUN echo bundle > /b\n", "bundle", progress=live)
    live.finish(run.summary, show=False)
    view = show_result(state, live, run=run, summary=run.summary)
    bundle = view._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == view.model_id
    assert bundle["text/plain"] == view.progress_text and "RUN echo bundle > /b" in bundle["text/plain"]
    assert run.summary in bundle["text/html"] or run.summary in bundle["text/plain"]


def test_the_cell_line_parser_is_reused_without_carrying_values() -> None:
    from kernel_ext.magics import dockerfile_parser
    first = dockerfile_parser().parse_args(["--build-arg", "A=1", "--add-host", "h:10.0.0.1", "-q"])
    second = dockerfile_parser().parse_args([])
    assert dockerfile_parser() is dockerfile_parser()
    assert first.build_arg == ["A=1"] and first.add_hosts == [("h", "10.0.0.1")] and first.quiet
    assert second.build_arg == [] and second.add_hosts == [] and not second.quiet


def test_llb_commands_open_the_full_views_in_a_widget_front_end(session: NotebookSession) -> None:
    from kernel_ext import commands
    from kernel_ext.widgets.fallback import WithFallback
    from solver.errors import LLBookError
    state = commands.KernelState(session, rich_display=True)
    state.last_run = session.run_cell("FROM busybox\nRUN echo one > /one\n", "a")
    state.last_run = session.run_cell("FROM busybox\nRUN echo two > /one\n", "a")
    graph = commands.run(state, ["graph"])
    assert isinstance(graph, WithFallback) and isinstance(graph.widget, DagWidget)
    assert "<svg" in graph.fallback()._repr_mimebundle_()["text/html"]
    why = commands.run(state, ["why"]).widget
    rebuilt = [e for e in why.why[0]["entries"] if not e["cached"]]
    assert any("echo one" in r["old"] and "echo two" in r["new"] for e in rebuilt for r in e["reasons"])
    assert all(e["digest"] in why.vertices for e in why.why[0]["entries"])  # each links to a DAG vertex
    text = commands.run(state, ["why"]).fallback()._repr_mimebundle_()["text/plain"]
    assert "command changed" in text and "echo one" in text and "echo two" in text
    layers = commands.run(state, ["layers"]).widget
    assert isinstance(layers, LayersWidget) and len(layers.layers) == 2
    export = commands.run(state, ["export"]).widget
    assert isinstance(export, ExportControls)
    state.rich_display = False
    with pytest.raises(LLBookError, match="needs --output"):
        commands.run(state, ["export"])
    assert "echo two" in repr(commands.run(state, ["why"]))  # the text forms stay for terminals


def test_stacking_many_removals_over_50000_files() -> None:
    from kernel_ext.widgets.layers_model import aggregated_tree
    base = [change(f"/d{i // 100:03d}", ADDED, is_dir=True) for i in range(0, 50000, 100)]
    base += [change(f"/d{i // 100:03d}/f{i:05d}", ADDED, 10) for i in range(50000)]
    removals = [change(f"/d{i // 100:03d}/f{i:05d}", REMOVED, 10) for i in range(0, 40000, 10)]
    removals += [change(f"/d{d:03d}", REMOVED, is_dir=True) for d in range(400, 500)]
    diffs = [LayerDiff(tuple(base)), LayerDiff(tuple(removals))]
    eff = compute_efficiency(diffs)
    tree = aggregated_tree(diffs)
    # 4,000 removed files: each path seen twice (10 bytes, then 0): wasted 10 bytes each;
    # 100 removed directories: one leaf each, hiding their 100 files of 10 bytes (not wasted)
    assert eff.wasted == 4000 * 10 and len(eff.inefficiencies) == 4000
    assert eff.score == pytest.approx((46000 * 10 + 100 * 1000) / (50000 * 10 + 100 * 1000))
    assert sum(1 for e in tree.entries.values() if e.kind == REMOVED) == 4000 + 100


def test_export_controls_push_to_a_registry(session: NotebookSession, registry) -> None:
    from solver.source.reference import parse as parse_reference
    from solver.source.registry import RegistryClient
    session.run_cell("FROM busybox\nRUN echo pushed > /p\n", "a")
    controls = ExportControls(session)
    controls.kind.value = PUSH
    assert controls.dest.disabled and controls.button.disabled  # a push needs a tag
    controls.tag.value = f"{registry.host}/llbook/pushed:1"
    controls.button.click()
    assert controls.last_error == "", controls.last_error
    digest = controls.last_result["digest"]
    assert digest in controls.result.value and f"docker pull {registry.host}/llbook/pushed:1" in controls.result.value
    client = RegistryClient(session.solver.registry_config)
    manifest = client.get_manifest(parse_reference(f"{registry.host}/llbook/pushed:1"))
    assert manifest.digest == digest
