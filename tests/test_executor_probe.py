"""Choosing executors and snapshotters by probing this machine."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from solver.executor.base import ExecutorError, ProcessSpec
from solver.executor.probe import (
    choose_executor,
    choose_snapshotter,
    probe_proot,
    probe_runtime,
)
from solver.executor.proot import ProotExecutor
from solver.executor.runc import RuncExecutor
from solver.snapshot.base import SnapshotError
from solver.snapshot.native import NativeSnapshotter
from solver.snapshot.overlay import OverlaySnapshotter
from solver.snapshot.probe import overlay_supported
from helpers_rootfs import private_tmp_dir

@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """Outside pytest's basetemp, which concurrent pytest sessions may prune."""
    yield from private_tmp_dir()


def test_auto_prefers_a_working_runtime() -> None:
    executor = choose_executor("auto")
    if os.geteuid() == 0 and shutil.which("runc"):
        assert probe_runtime("runc")
        assert isinstance(executor, RuncExecutor)
    else:
        assert isinstance(executor, (RuncExecutor, ProotExecutor))


def test_environment_variable_and_explicit_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    if not probe_proot():
        pytest.skip("proot is not installed or does not work here")
    monkeypatch.setenv("LLBOOK_EXECUTOR", "proot")
    assert isinstance(choose_executor(), ProotExecutor)
    with pytest.raises(ExecutorError, match="unknown executor"):
        choose_executor("docker")


def test_missing_runtime_is_refused() -> None:
    if probe_runtime("crun"):
        pytest.skip("crun works on this machine")
    with pytest.raises(ExecutorError, match="crun"):
        choose_executor("crun")


def test_chosen_executor_runs_something(tmp_path: Path) -> None:
    from helpers_rootfs import busybox_available, make_busybox_rootfs

    if not busybox_available():
        pytest.skip("no static busybox")
    rootfs = make_busybox_rootfs(tmp_path / "rootfs")
    out = bytearray()
    assert choose_executor().run(rootfs, ProcessSpec(["echo", "hi"]), stdout=out.extend) == 0
    assert out == b"hi\n"


def test_snapshotter_choice(tmp_path: Path) -> None:
    chosen = choose_snapshotter(tmp_path / "auto")
    if os.geteuid() == 0 and overlay_supported(str(tmp_path / "auto")):
        assert isinstance(chosen, OverlaySnapshotter)
    else:
        assert isinstance(chosen, NativeSnapshotter)
    assert os.listdir(tmp_path / "auto" / "tmp") == []  # the probe cleaned up
    native = choose_snapshotter(tmp_path / "n", preference="native")
    assert isinstance(native, NativeSnapshotter)
    # the root remembers its driver, whatever is asked later
    assert isinstance(choose_snapshotter(tmp_path / "n", preference="overlay"), NativeSnapshotter)
    with pytest.raises(SnapshotError):
        choose_snapshotter(tmp_path / "x", preference="zfs")
