"""Adversarial builds through `llbook build` (issue 13 point 4, issue 18 points 5, 7, 8, 9):
huge RUN lines, context symlinks out of the context, long paths in --output type=local, a
full disk. Each test prints what it tried and what it measured."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from test_build_cli import build, write

pytestmark = pytest.mark.root

if os.geteuid() != 0:
    pytest.skip("llbook build with runc needs root here", allow_module_level=True)


def test_megabyte_run_line_puts_the_cause_first_and_shortens_the_command(registry_config, tmp_path: Path):
    ctx = tmp_path / "ctx"
    write(ctx / "Dockerfile", "FROM busybox\nRUN echo " + "x" * 1_000_000 + "\n")
    proc, _ = build(registry_config, ctx, tmp_path / "cache", check=False)
    print(f"1 MB RUN line: exit {proc.returncode}, stderr {len(proc.stderr):,} bytes")
    print(re.sub(r"x{50,}", lambda m: f"<x * {len(m.group())}>", proc.stderr))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert len(proc.stderr) < 20_000
    assert "argument list too long" in proc.stderr.lower()
