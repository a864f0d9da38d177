"""The teaching notebooks run top to bottom (nbclient) against the loopback registry that
mirrors docker.io (set through LLBOOK_CONFIG, the notebooks are not edited), with no
error output, and the outputs that prove their claims say what the text claims."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
ALL = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))


def execute(name: str, workdir: Path, env: dict[str, str]) -> nbformat.NotebookNode:
    shutil.copy(NOTEBOOKS / name, workdir / name)
    nb = nbformat.read(workdir / name, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return nb


def cell_text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif out["output_type"] in ("display_data", "execute_result"):
            parts.append(out["data"].get("text/plain", ""))
        elif out["output_type"] == "error":
            parts.append("\n".join(out["traceback"]))
    return "\n".join(parts)


def code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def find(nb: nbformat.NotebookNode, needle: str) -> str:
    """Output text of the first code cell whose source contains ``needle``."""
    for cell in code_cells(nb):
        if needle in cell.source:
            return cell_text(cell)
    raise AssertionError(f"no cell with {needle!r}")


@pytest.fixture(scope="module")
def run_notebook(tmp_path_factory, registry_config):
    cache = tmp_path_factory.mktemp("nb-cache")
    env = dict(registry_config.env, LLBOOK_CACHE_DIR=str(cache))
    done: dict[str, nbformat.NotebookNode] = {}

    def run(name: str) -> nbformat.NotebookNode:
        if name not in done:
            done[name] = execute(name, tmp_path_factory.mktemp(name.split("-")[0]), env)
        return done[name]

    return run


def test_every_notebook_is_there_and_ends_with_what_to_remember() -> None:
    assert ALL == ["01-first-image.ipynb", "02-what-is-llb.ipynb", "03-cache-keys.ipynb",
                   "04-multistage-and-parallelism.ipynb", "05-layers-diffs-and-export.ipynb",
                   "06-inside-the-solver.ipynb", "07-build-checks.ipynb"]
    for name in ALL:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        assert nb.cells[0].cell_type == "markdown"
        assert "What to remember" in nb.cells[-1].source
        assert all(not c.get("outputs") for c in code_cells(nb)), f"{name} is committed with outputs"


@pytest.mark.parametrize("name", ALL)
def test_notebook_runs_without_errors(run_notebook, name: str) -> None:
    nb = run_notebook(name)
    errors = [cell_text(c) for c in code_cells(nb) if any(o["output_type"] == "error" for o in c.outputs)]
    assert errors == []


def test_01_second_cell_reuses_the_cache(run_notebook) -> None:
    out = find(run_notebook("01-first-image.ipynb"), "RUN wc -c /hello.txt")
    lines = [l for l in out.splitlines() if l.startswith("#")]
    assert sum("CACHED" in l for l in lines) == 2 and "1 steps" not in out
    assert "hello from llbook" in find(run_notebook("01-first-image.ipynb"), "docker load") or \
        "no Docker daemon" in find(run_notebook("01-first-image.ipynb"), "docker load")


def test_02_digests_are_sha256_of_the_bytes(run_notebook) -> None:
    nb = run_notebook("02-what-is-llb.ipynb")
    out = find(nb, "hashlib.sha256(raw)")
    verdicts = [line.split()[-1] for line in out.splitlines() if line.startswith("sha256:")]
    assert verdicts and set(verdicts) == {"True"}
    shared = find(nb, "llb.merge([a, b])").split()
    assert shared[0] == "True" and int(shared[2]) == int(shared[1]) + 1


def test_03_claims_hold(run_notebook) -> None:
    nb = run_notebook("03-cache-keys.ipynb")
    outputs = [cell_text(c) for c in code_cells(nb) if "print([(v.name, v.cached)" in c.source]
    sibling, touched, cache_mount = outputs
    assert "False" not in sibling and "True" in sibling
    assert "False" not in touched  # touch + unrelated edit: everything cached
    assert "False" not in cache_mount
    why = find(nb, "%llb why")
    assert "app.py" in why
    linear, graph = find(nb, "linear_reruns").splitlines()[:2]
    assert "linear chain builder re-runs 4" in linear and "COPY --link" in linear
    assert "re-ran     3" in graph and "COPY --link" not in graph and "echo b1" not in graph


def test_04_stages_ran_in_parallel(run_notebook) -> None:
    nb = run_notebook("04-multistage-and-parallelism.ipynb")
    assert "all three ran at the same time: True" in find(nb, "overlap =")
    import re
    full, only_two = map(int, re.findall(r": (\d+)", find(nb, "only_two")))
    assert only_two < full


def test_05_two_builds_one_digest(run_notebook) -> None:
    nb = run_notebook("05-layers-diffs-and-export.ipynb")
    assert "identical: True" in find(nb, "SOURCE_DATE_EPOCH")
    markers = find(nb, "'.wh.' in n")
    assert ".wh.tmp-file" in markers and "data/old/.wh..wh..opq" in markers


def test_06_entitlement_refused_and_second_solve_cached(run_notebook) -> None:
    nb = run_notebook("06-inside-the-solver.ipynb")
    assert "network.host" in find(nb, "hostnet")
    second = find(nb, "second = solver.solve(state)")
    assert all(line.endswith("second: cached") for line in second.splitlines() if line.strip())
    assert "from-writer" in find(nb, "inside-demo")


def test_07_each_warning_it_explains_is_found_and_the_fix_clears_them(run_notebook) -> None:
    nb = run_notebook("07-build-checks.ipynb")
    report = find(nb, "result = check_dockerfile(broken)")
    assert report.startswith("Check complete, 9 warnings have been found!")
    for rule, line in [("FromAsCasing", 1), ("SecretsUsedInArgOrEnv", 2), ("WorkdirRelativePath", 3),
                       ("LegacyKeyValueFormat", 4), ("ConsistentInstructionCasing", 7), ("UndefinedVar", 9),
                       ("ExposeProtoCasing", 10), ("JSONArgsRecommended", 11),
                       ("MultipleInstructionsDisallowed", 11)]:
        assert f"WARNING: {rule} - " in report and f"Dockerfile:{line}\n" in report, rule
    assert "(did you mean $PATH?)" in report
    cli = find(nb, '"--check", str(project)],\n                     capture_output=True, text=True)\nprint(cli.stdout.splitlines()[0])')
    assert "Check complete, 9 warnings have been found!" in cli and "exit status: 1" in cli
    first, second = (cell_text(c) for c in code_cells(nb) if c.source.startswith("%%dockerfile\nFROM busybox as")
                     or c.source.startswith("%%dockerfile\nfrom busybox"))
    assert "4 warnings found:" in first and "(cell 1, line 4)" in first and "   4 | >>> ENV MODE production" in first
    assert "(did you mean $PATH?) (cell 2, line 3)" in second and "   3 | >>> ENV PATH=/app/bin:$PAHT" in second
    checks = [cell_text(c) for c in code_cells(nb) if c.source == "%llb check"]
    assert checks[0].startswith("Check complete, 9 warnings have been found!") and "cell 2:5" in checks[0]
    assert checks[1] == "Check complete, no warnings found."
    strict = find(nb, "strict = ")
    assert "JSONArgsRecommended among them: False" in strict
    assert "error: lint violation found for rules:" in strict and "skip=all: 0 warnings, error: None" in strict
    fixed = find(nb, "fixed = ")
    assert fixed.startswith("Check complete, no warnings found.") and "| exit status: 0" in fixed
    assert all("warning" not in cell_text(c) for c in code_cells(nb)[-3:-1])


def test_executed_notebook_renders_as_html_with_its_outputs(run_notebook) -> None:
    """What `./dev.sh docs` does: nbconvert HTML of an executed notebook keeps the outputs."""
    from nbconvert import HTMLExporter
    nb = run_notebook("02-what-is-llb.ipynb")
    html, _ = HTMLExporter().from_notebook_node(nb)
    digest_line = next(l for l in find(nb, "hashlib.sha256(raw)").splitlines() if l.startswith("sha256:"))
    assert digest_line.split()[0] in html
    assert "<svg" in html or "data:image/svg+xml" in html  # the dump-llb DOT rendered by graphviz
