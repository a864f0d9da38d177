"""The solver with the machine-without-namespaces combination: proot executor on the native
(copy) snapshotter, as on mybinder.org."""

from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from solver import llb
from solver.errors import BuildError
from solver.solve.solver import Solver

if shutil.which("proot") is None:
    pytest.skip("proot is not installed", allow_module_level=True)


@pytest.fixture
def solver(tmp_path: Path, registry_config):
    from solver.executor.proot import ProotExecutor
    from solver.snapshot.native import NativeSnapshotter
    cache = tmp_path / "cache"
    s = Solver(cache_dir=cache, snapshotter=NativeSnapshotter(cache / "snapshots"), executor=ProotExecutor(),
               registry_config=registry_config.config)
    yield s
    s.close()


@contextmanager
def _view(solver: Solver, name: str):
    from solver.snapshot.mount import mounted
    key = f"testview-{time.time_ns()}"
    mounts = solver.snapshotter.view(key, name)
    try:
        with mounted(mounts) as root:
            yield root
    finally:
        solver.snapshotter.remove(key)


def test_run_copy_cache_and_failure_with_proot_on_native(solver: Solver, tmp_path: Path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "f.txt").write_text("from context\n")

    def build(last: str):
        st = llb.image("busybox").run("echo one > /one", shell=True, custom_name="[2/4] RUN one").root()
        st = st.file(llb.copy(llb.local("context"), "/f.txt", "/f.txt"), custom_name="[3/4] COPY f.txt /")
        return st.run(last, shell=True, custom_name="[4/4] RUN last").root()

    first = solver.solve(build("cat /f.txt /one > /both"), context_dirs={"context": ctx})
    with _view(solver, first.snapshot) as root:
        assert (root / "both").read_text() == "from context\none\n"
    warm = solver.solve(build("cat /f.txt /one > /both"), context_dirs={"context": ctx})
    assert warm.executed == []
    edited = solver.solve(build("cat /one > /both"), context_dirs={"context": ctx})
    assert [v.name for v in edited.executed] == ["[4/4] RUN last"]
    with pytest.raises(BuildError) as info:
        solver.solve(build("echo bad; exit 9"), context_dirs={"context": ctx})
    assert info.value.exit_code == 9 and "bad" in "\n".join(info.value.log_tail)
    assert not [i for i in solver.snapshotter.list() if i.kind != "committed"]
