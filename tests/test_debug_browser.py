"""The Debug button in a real browser: JupyterLab (the app exposed to the page, so the
button opens a terminal panel) and Debian's chromium via Playwright. A failed cell shows
"Debug"; a click opens a JupyterLab terminal with the shell before the failing RUN; typed
commands show the state there. Afterwards no shell outlives the kernel. Screenshots go to
``test-artifacts/``."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from browser.chromium import LAUNCH_FLAGS, chromium_path
from browser.jupyterlab import start_lab
from kernel_ext.debug_terminal import JupyterServer, running_terminals
from test_debug_shell import processes_with

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CELLS = ["%load_ext kernel_ext",
         "%%dockerfile\nFROM busybox\nWORKDIR /srv\nRUN echo kept > /srv/kept.txt\n"
         "RUN echo failing-marker && false\n"]


# the text of the current terminal panel's xterm buffer (its canvas shows no DOM text)
TERMINAL_TEXT = """() => {
  const term = window.jupyterapp.shell.currentWidget.content._term;
  const buffer = term.buffer.active;
  const lines = [];
  for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i).translateToString(true));
  return lines.join("\\n");
}"""


def notebook(path: Path) -> None:
    cells = [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
              "source": text} for text in CELLS]
    path.write_text(json.dumps({"cells": cells, "metadata": {"kernelspec": {
        "display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5}))


@pytest.mark.timeout(300)
def test_debug_button_opens_a_terminal_with_the_shell(registry_config, tmp_path: Path) -> None:
    pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
    browser, why = chromium_path()
    if browser is None:
        pytest.skip(why)
    from playwright.sync_api import expect, sync_playwright
    root = tmp_path / "notebooks"
    root.mkdir()
    notebook(root / "debug.ipynb")
    cache = tmp_path / "cache"
    env = dict(os.environ)
    env.update(registry_config.env)
    env["LLBOOK_CACHE_DIR"] = str(cache)
    lab = start_lab(root, tmp_path / "jupyter", env, extra_args=("--LabApp.expose_app_in_browser=True",))
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=browser, headless=True, args=LAUNCH_FLAGS,
                viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.set_default_timeout(90_000)
            try:
                page.goto(lab.page_url("debug.ipynb"))
                expect(page.locator(".jp-StatusBar-TextItem", has_text="Idle").first).to_be_visible()
                page.locator(".jp-Notebook .jp-Cell").first.locator(".jp-InputPrompt").click()
                page.keyboard.press("Escape")
                page.keyboard.press("Shift+Enter")
                page.keyboard.press("Shift+Enter")
                button = page.locator(".llbook-debug-button").first
                button.wait_for(timeout=120_000)
                page.screenshot(path=str(ARTIFACTS / "debug-failed-cell.png"), full_page=True)
                button.click()
                terminal = page.locator(".jp-Terminal").first
                terminal.wait_for()
                expect(page.locator(".llbook-debug").first).to_have_attribute("data-terminal", re.compile(r".+"))
                time.sleep(3)  # the shell starts in the terminal (the inputs are solved from cache)
                terminal.click()
                page.keyboard.type("ls /srv; echo $PWD; echo done-$((6*7))\n")
                page.wait_for_function(f"() => ({TERMINAL_TEXT})().includes('done-42')", timeout=60_000)
                shown = page.evaluate(TERMINAL_TEXT).splitlines()
                assert [line.strip() for line in shown].count("kept.txt") == 1, shown  # before the failing RUN
                assert "/srv" in [line.strip() for line in shown]
                page.screenshot(path=str(ARTIFACTS / "debug-terminal.png"), full_page=True)
                server = JupyterServer(lab.url + "/", lab.token)
                assert running_terminals(server)
                for kernel in server.api("/api/kernels"):  # shut the kernel down: its terminal goes too
                    server.api(f"/api/kernels/{kernel['id']}", "DELETE")
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and (running_terminals(server) or processes_with(str(cache))):
                    time.sleep(0.5)
                assert running_terminals(server) == []
                assert processes_with(str(cache)) == []
            except Exception:
                page.screenshot(path=str(ARTIFACTS / "debug-failure.png"), full_page=True)
                shutil.copy(lab.log, ARTIFACTS / "debug-failure-jupyterlab.log")
                raise
            finally:
                context.close()
    finally:
        lab.stop()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and processes_with(str(cache)):
        time.sleep(0.5)
    assert processes_with(str(cache)) == []  # no shell outlives the kernel (and its server)
