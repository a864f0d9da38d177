"""Fixtures of the adversarial suite (issue 13 point 4): builds through `llbook build` with
runc and the loopback registry of tests/conftest.py (busybox as `FROM busybox`), a
sentinel directory outside every root, and the run's tally printed at the end.

- `small_tmpfs` (function-scoped) -> callable(size: str) -> Path: mounts a tmpfs of that
  size (`mount -t tmpfs -o size=...`) in the test's tmp dir, unmounted after the test.
- `adv` (function-scoped) -> Adv: `.env` for llbook subprocesses (registry mirror config,
  TMPDIR = `.tmp` so bundle directories of this test's builds are countable), `.cache`,
  `.sentinel` (a directory with files no build may change; `.sentinel_changes()` counts
  entries added, removed or changed since the test began), `.base` the test's tmp dir.

At the end of the run the tally of adv_helpers.report (what each test tried and measured)
is printed and written as JSON to $LLBOOK_ADV_SUMMARY (default: the temp dir's
llbook-adversarial-summary.json); README's reliability figures are read from it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from adv_helpers import TALLY, changed_entries, env_for, tree


@dataclass
class Adv:
    base: Path
    env: dict[str, str]
    cache: Path
    tmp: Path
    sentinel: Path
    before: dict

    def sentinel_changes(self) -> int:
        return changed_entries(self.before, tree(self.sentinel))


def make_sentinel(path: Path) -> Path:
    (path / "sub").mkdir(parents=True)
    (path / "victim").write_text("original\n")
    (path / "sub" / "deep").write_text("deep original\n")
    os.symlink("victim", path / "link")
    return path


@pytest.fixture
def adv(registry_config, tmp_path: Path) -> Adv:
    if os.geteuid() != 0 or shutil.which("runc") is None:
        pytest.skip("the adversarial suite builds with runc and needs root")
    sentinel = make_sentinel(tmp_path / "sentinel-outside")
    tmp = tmp_path / "tmp"
    return Adv(base=tmp_path, env=env_for(registry_config, tmp), cache=tmp_path / "cache", tmp=tmp,
               sentinel=sentinel, before=tree(sentinel))


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        where = tmp_path / f"tmpfs-{len(mounted)}"
        where.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)], check=True)
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], check=False)


def summary_path() -> Path:
    """Where the run's tally is written as JSON: $LLBOOK_ADV_SUMMARY, else the temp dir."""
    return Path(os.environ.get("LLBOOK_ADV_SUMMARY") or Path(tempfile.gettempdir(), "llbook-adversarial-summary.json"))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if TALLY.areas:
        terminalreporter.section("adversarial suite: what was tried and measured")
        for line in TALLY.lines():
            terminalreporter.write_line(line)
        outcomes = {key: len(terminalreporter.stats.get(key, [])) for key in ("passed", "failed", "skipped", "error")}
        data = {"areas": {area: dict(counts) for area, counts in sorted(TALLY.areas.items())},
                "totals": {key: TALLY.total(key) for key in ("hostile_inputs", "writes_outside", "corrupt_entries",
                                                             "orphans", "secret_hits")},
                "tests": outcomes, "machine": os.uname().machine, "kernel": os.uname().release,
                "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        path = summary_path()
        path.write_text(json.dumps(data, indent=1) + "\n")
        terminalreporter.write_line(f"summary written to {path}")
