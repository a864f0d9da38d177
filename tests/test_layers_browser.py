"""The layers view beyond dive, in a real browser (JupyterLab + Debian's chromium through
Playwright, as tests/test_widgets_browser.py): two cells build stages ``one`` and ``two``;
``%llb layers two`` shows the view, where the test sorts the tree by size, previews a text
file, compares the result with stage ``one`` (a changed and two added files, with sizes)
and with the registry's busybox for a platform picked from its index, and exports the tree; ``%llb layers two --diff one`` and ``--export`` do the same as text. Screenshots go to ``test-artifacts/layers-*.png``."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from browser.jupyterlab import start_lab
from test_widgets_browser import ARTIFACTS, LAUNCH_FLAGS, browser_executable, run_all_cells  # noqa: F401

FIXTURE = Path(__file__).parent / "fixtures" / "layers_notebook.ipynb"
BUILD_TIMEOUT_MS = 100_000


@pytest.fixture
def lab(tmp_path: Path, registry_config):
    root = tmp_path / "notebooks"
    root.mkdir()
    shutil.copy(FIXTURE, root / FIXTURE.name)
    env = dict(os.environ)
    env.update(registry_config.env)
    env["LLBOOK_CACHE_DIR"] = str(tmp_path / "cache")
    server = start_lab(root, tmp_path / "jupyter", env)
    yield server
    server.stop()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"layers-{name}.png"), full_page=True)


@pytest.mark.timeout(300)
def test_layers_view_sorts_previews_and_compares(browser_executable: str, lab, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=browser_executable, headless=True,
            args=LAUNCH_FLAGS, viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        try:
            page = context.new_page()
            page.set_default_timeout(60_000)
            console: list[str] = []
            page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
            try:
                drive(page, lab.page_url(FIXTURE.name), tmp_path / "notebooks")
            except Exception:
                shot(page, "failure")
                (ARTIFACTS / "layers-failure-console.txt").write_text("\n".join(console))
                shutil.copy(lab.log, ARTIFACTS / "layers-failure-jupyterlab.log")
                raise
        finally:
            context.close()


def root_paths(tree) -> list[str]:
    return tree.locator(":scope > .llbook-tree-node > .llbook-tree-row").evaluate_all(
        "rows => rows.map(r => r.dataset.path)")


def drive(page, page_url: str, notebooks: Path) -> None:
    from playwright.sync_api import expect
    page.goto(page_url)
    page.locator(".jp-Notebook").first.wait_for()
    expect(page.locator(".jp-StatusBar-TextItem", has_text="Idle").first).to_be_visible(timeout=90_000)
    run_all_cells(page)
    view = page.locator(".llbook-layers").last
    view.wait_for(timeout=BUILD_TIMEOUT_MS)
    tree = view.locator(".llbook-tree")
    expect(tree).to_have_attribute("aria-busy", "false")
    expect(tree).to_have_attribute("data-sort", "name")
    by_name = root_paths(tree)  # the top layer's changes (RUN also leaves /etc's mount points)
    assert by_name == sorted(by_name) and {"/greeting.txt", "/zdata"} <= set(by_name), by_name

    # sort by size: the 200 kB folder comes first, its size summed from the file below it
    view.locator(".llbook-sort").select_option("size")
    expect(tree).to_have_attribute("data-sort", "size")
    expect(tree).to_have_attribute("aria-busy", "false")
    by_size = root_paths(tree)
    assert by_size[0] == "/zdata" and sorted(by_size) == by_name and by_size != by_name, by_size
    expect(tree.locator(".llbook-tree-row[data-path='/zdata'] .llbook-col-size")).to_have_text("200.0 kB")
    sizes = view.locator(".llbook-layer-row td:nth-child(2)").all_inner_texts()
    assert sizes[0].endswith("MB") and sizes[1] == "200.0 kB", sizes  # the layer list, largest first
    shot(page, "sorted-by-size")

    # preview a text file of the top layer
    tree.locator(".llbook-tree-row[data-path='/greeting.txt']").click()
    preview = view.locator(".llbook-preview")
    expect(preview).to_have_class(re.compile(r"\bllbook-preview-text\b"))
    expect(preview).to_contain_text("hello from two, longer")
    expect(view.locator(".llbook-preview-box .llbook-section-title")).to_contain_text("/greeting.txt in layer 1 (text, 23 B)")
    shot(page, "preview")

    # the diff of two results: stage one → this one
    view.locator(".llbook-compare-other").fill("one")
    view.locator(".llbook-compare-button").click()
    summary = view.locator(".llbook-compare-summary")
    expect(summary).to_contain_text("one → two: 2 added, 0 removed, 1 changed", timeout=BUILD_TIMEOUT_MS)
    changed = view.locator(".llbook-compare-row[data-path='/greeting.txt']")
    expect(changed).to_have_attribute("data-kind", "changed")
    expect(changed).to_contain_text("15 B")
    expect(changed).to_contain_text("23 B")
    big = view.locator(".llbook-compare-row[data-path='/zdata/big']")
    expect(big).to_have_attribute("data-kind", "added")
    expect(big).to_contain_text("200.0 kB")
    colour = big.evaluate("el => getComputedStyle(el).color")
    assert colour == "rgb(26, 127, 55)", colour
    shot(page, "compare")

    # two builds from the history: the cell that built stage one is the build before the last
    view.locator(".llbook-compare-other").fill("history:^1")
    view.locator(".llbook-compare-button").click()
    expect(summary).to_contain_text("→ two: 2 added, 0 removed, 1 changed", timeout=BUILD_TIMEOUT_MS)
    expect(summary).to_contain_text("build ")
    shot(page, "compare-history")

    # against an image of a registry, for a platform picked from its index
    view.locator(".llbook-compare-other").fill("busybox")
    view.locator(".llbook-compare-other").press("Tab")  # change: the index's platforms are listed
    platform = view.locator(".llbook-compare-platform")
    expect(platform).to_have_attribute("data-count", "2")
    platform.select_option("linux/arm64")
    view.locator(".llbook-compare-button").click()
    expect(summary).to_contain_text("busybox:latest (linux/arm64) → two:", timeout=BUILD_TIMEOUT_MS)
    expect(view.locator(".llbook-compare-row[data-path='/zdata/big']")).to_have_attribute("data-kind", "added")
    expect(view.locator(".llbook-compare-row[data-path='/bin/busybox']")).to_have_count(0)  # the same bytes
    shot(page, "compare-image-platform")

    # export the tree (sorted by size) as CSV: the browser downloads it
    with page.expect_download() as download:
        view.locator(".llbook-export-csv").click()
    text = Path(download.value.path()).read_text()
    lines = text.splitlines()
    assert lines[0] == "path,kind,type,size,mode,uid,gid,link"
    assert lines[1].startswith("/zdata,added,dir,200000,")
    assert "/greeting.txt,added,file,23,-rw-r--r--,0,0," in lines

    # the same from cells: %llb layers two --diff one, --export tree.json
    cells = page.locator(".jp-Notebook .jp-Cell")
    expect(cells.nth(5).locator(".jp-OutputArea-output")).to_contain_text(
        "one → two: 2 added, 0 removed, 1 changed")
    expect(cells.nth(5).locator(".jp-OutputArea-output")).to_contain_text("/zdata/big")
    expect(cells.nth(6).locator(".jp-OutputArea-output")).to_contain_text("wrote the tree of stage two")
    exported = json.loads((notebooks / "tree.json").read_text())
    assert exported["files"][0]["path"] == "/bin" and exported["mode"] == "aggregated"  # the largest folder first
    shot(page, "commands")
