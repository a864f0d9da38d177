"""The widgets in a real browser: JupyterLab started here on 127.0.0.1 (token, no
browser), Debian's chromium driven by Playwright. Runs the fixture notebook, clicks a
DAG vertex (the details pane shows its digest), expands folders of the layer tree (an
added file is green), presses Export (the file appears). Screenshots of each view go to
``test-artifacts/``."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from browser.chromium import LAUNCH_FLAGS, chromium_path
from browser.jupyterlab import start_lab

FIXTURE = Path(__file__).parent / "fixtures" / "widget_notebook.ipynb"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
BUILD_TIMEOUT_MS = 100_000


@pytest.fixture(scope="module")
def browser_executable() -> str:
    pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    path, why = chromium_path()
    if path is None:
        pytest.skip(why)
    return path


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
    page.screenshot(path=str(ARTIFACTS / f"widgets-{name}.png"), full_page=True)


def open_tab(page, title: str):
    tab = page.locator(".llbook-result .lm-TabBar-tab", has_text=title).first
    tab.click()
    return tab


@pytest.mark.timeout(300)
def test_widgets_in_jupyterlab_with_chromium(browser_executable: str, lab, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=browser_executable, headless=True,
            args=LAUNCH_FLAGS, viewport={"width": 1400, "height": 1000})
        try:
            page = context.new_page()
            page.set_default_timeout(60_000)
            console: list[str] = []
            page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
            try:
                drive(page, lab.page_url(FIXTURE.name), tmp_path)
            except Exception:
                shot(page, "failure")
                (ARTIFACTS / "widgets-failure-console.txt").write_text("\n".join(console))
                shutil.copy(lab.log, ARTIFACTS / "widgets-failure-jupyterlab.log")
                raise
        finally:
            context.close()


def run_all_cells(page) -> None:
    """Shift+Enter through the notebook from its first cell, as a user does."""
    from playwright.sync_api import expect
    cells = page.locator(".jp-Notebook .jp-Cell")
    count = cells.count()
    cells.first.locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")
    for i in range(count):
        page.keyboard.press("Shift+Enter")
        code = cells.nth(i).locator(".jp-InputPrompt")
        if "jp-CodeCell" in (cells.nth(i).get_attribute("class") or "") and i < count - 1:
            expect(code).to_have_text(re.compile(r"\[\d+\]"), timeout=60_000)


def drive(page, page_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect
    page.goto(page_url)
    page.locator(".jp-Notebook").first.wait_for()
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first).to_be_attached(
        timeout=90_000)
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first).to_be_attached(
        timeout=90_000)
    expect(page.locator(".jp-StatusBar-TextItem", has_text="Idle").first).to_be_visible(timeout=90_000)
    run_all_cells(page)

    result = page.locator(".llbook-result").first
    result.wait_for(timeout=BUILD_TIMEOUT_MS)
    expect(result.locator(".llbook-progress")).to_contain_text("steps")
    # the static copy for nbconvert is in the notebook, hidden where the widgets render
    fallback = page.locator(".llbook-static-fallback").first
    expect(fallback).to_be_attached()
    expect(fallback).to_be_hidden()
    # the build check's warning under the progress, with the cell's offending line highlighted
    check = result.locator(".llbook-checks .llbook-check").first
    expect(check).to_contain_text("LegacyKeyValueFormat")
    expect(check).to_contain_text("(cell 1, line 4)")
    hit = check.locator(".llbook-check-hit")
    expect(hit).to_have_count(1)
    expect(hit).to_have_attribute("data-line", "4")
    expect(hit).to_contain_text("ENV greeting hello")
    background = hit.evaluate("el => getComputedStyle(el).backgroundColor")
    assert background == "rgb(255, 248, 197)", background
    shot(page, "progress")

    # DAG: click the RUN vertex, the details pane shows its digest
    open_tab(page, "DAG")
    node = result.locator(".llbook-graph g.node.llbook-built", has_text="RUN mkdir").first
    node.wait_for()
    digest = node.get_attribute("id")
    assert digest and digest.startswith("sha256:")
    # the "why rebuilt" entry of the FROM selects its vertex in the graph
    source = result.locator(".llbook-graph g.node", has_text="busybox").first
    result.locator(".llbook-why-entry", has_text="FROM").first.click()
    expect(source).to_have_class(re.compile(r"\bllbook-selected\b"))
    expect(result.locator(".llbook-details .llbook-digest .llbook-field-value")).to_have_text(
        source.get_attribute("id"))
    node.click()
    details = result.locator(".llbook-details")
    expect(details.locator(".llbook-digest .llbook-field-value")).to_have_text(digest)
    expect(details).to_contain_text("cell 1, line 2")  # the session's first %%dockerfile cell
    expect(details.locator(".llbook-cache-key .llbook-field-value")).to_contain_text("sha256:")
    shot(page, "dag")

    # Layers: the top layer modified hello.txt (yellow); the layer below added it (green)
    open_tab(page, "Layers")
    tree = result.locator(".llbook-tree")
    expect(tree).to_have_attribute("data-layer", "2")
    expect(tree).to_have_attribute("aria-busy", "false")
    tree.locator(".llbook-tree-row[data-path='/app']").click()
    tree.locator(".llbook-tree-row[data-path='/app/data']").click()
    modified = tree.locator(".llbook-tree-row[data-path='/app/data/hello.txt']")
    expect(modified).to_have_class(re.compile(r"\bllbook-modified\b"))
    modified.click()  # the file's content diff against the layer below
    expect(result.locator(".llbook-diff")).to_contain_text("+again")
    expect(result.locator(".llbook-waste")).to_contain_text("/app/data/hello.txt")  # written by two layers
    result.locator(".llbook-layer-row[data-index='1']").click()
    expect(tree).to_have_attribute("data-layer", "1")
    expect(tree).to_have_attribute("aria-busy", "false")
    tree.locator(".llbook-tree-row[data-path='/app']").click()
    tree.locator(".llbook-tree-row[data-path='/app/data']").click()
    added = tree.locator(".llbook-tree-row[data-path='/app/data/hello.txt']")
    expect(added).to_have_class(re.compile(r"\bllbook-added\b"))
    colour = added.evaluate("el => getComputedStyle(el).color")
    assert colour == "rgb(26, 127, 55)", colour
    expect(result.locator(".llbook-efficiency")).to_contain_text("efficiency")
    shot(page, "layers")

    # Export: an OCI archive at a path we choose
    open_tab(page, "Export")
    target = tmp_path / "exported.oci.tar"
    dest = result.locator(".llbook-export-dest input")
    dest.fill(str(target))
    dest.press("Enter")
    button = result.locator(".llbook-export-button")
    expect(button).to_be_enabled()
    button.click()
    expect(result.locator(".llbook-export-digest")).to_contain_text("sha256:", timeout=BUILD_TIMEOUT_MS)
    assert target.is_file() and target.stat().st_size > 0
    expect(result.locator(".llbook-export-output")).to_contain_text("docker load -i")
    shot(page, "export")

    check_large_views(page)


def check_large_views(page) -> None:
    """150 vertices and 50,000 files (synthetic widgets of the notebook's last cells) answer clicks."""
    from playwright.sync_api import expect
    big = page.locator(".llbook-big-dag").first
    big.scroll_into_view_if_needed()
    expect(big.locator("g.node")).to_have_count(150)
    node = big.locator("g.node").nth(140)
    digest = node.get_attribute("id")
    node.click()
    expect(big.locator(".llbook-details .llbook-digest .llbook-field-value")).to_have_text(digest)
    shot(page, "dag-150")

    tree = page.locator(".llbook-big-tree").first
    tree.scroll_into_view_if_needed()
    tree.locator(".llbook-tree-row[data-path='/data']").click()
    expect(tree.locator(".llbook-tree-row[data-path^='/data/d']")).to_have_count(100)
    tree.locator(".llbook-tree-row[data-path='/data/d042']").click()
    expect(tree.locator(".llbook-tree-row[data-path^='/data/d042/']")).to_have_count(500)
    expect(tree.locator(".llbook-tree-row[data-path='/data/d042/file21000.txt']")).to_have_class(
        re.compile(r"\bllbook-added\b"))
    filter_box = tree.locator(".llbook-filter")
    filter_box.fill(r"file4999\d")
    # the filtered tree opens up to its matches: one folder, ten files
    expect(tree.locator(".llbook-tree-row[data-path='/data/d099/file49990.txt']")).to_be_visible()
    expect(tree.locator(".llbook-tree-row[data-path^='/data/d']")).to_have_count(11)
    shot(page, "layers-50000")
