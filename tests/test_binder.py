"""binder/ holds what repo2docker needs, the README badge points at this repository's
binder path, and a notebook runs as an unprivileged user with proot and the native
snapshotter, as on mybinder.org (no root, no user namespaces, no FUSE, no Docker)."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from typing import Any
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
START_NOTEBOOK = "notebooks/01-first-image.ipynb"
# python -c RUNNER NOTEBOOK DIR: execute NOTEBOOK in DIR (errors kept in its outputs) and save it
RUNNER = ("import nbformat, sys\nfrom nbclient import NotebookClient\n"
          "nb = nbformat.read(sys.argv[1], as_version=4)\n"
          "NotebookClient(nb, timeout=600, kernel_name='python3', allow_errors=True,\n"
          "               resources={'metadata': {'path': sys.argv[2]}}).execute()\n"
          "nbformat.write(nb, sys.argv[1])\n")


def repository_slug() -> str:
    url = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    match = re.fullmatch(r"https://github\.com/([^/]+/[^/]+?)(?:\.git)?/?", url)
    assert match, f"pyproject's Repository URL is not a GitHub repository: {url}"
    return match.group(1)


def test_binder_has_what_repo2docker_needs() -> None:
    binder = ROOT / "binder"
    apt = (binder / "apt.txt").read_text().split()
    assert {"graphviz", "proot"} <= set(apt)
    post_build = binder / "postBuild"
    assert os.access(post_build, os.X_OK) and "pip install" in post_build.read_text() and "-e" in post_build.read_text()
    assert re.fullmatch(r"python-3\.\d+\s*", (binder / "runtime.txt").read_text())
    assert os.access(binder / "start", os.X_OK) and 'exec "$@"' in (binder / "start").read_text()
    assert (ROOT / START_NOTEBOOK).is_file()


def test_readme_badge_points_at_this_repository() -> None:
    readme = (ROOT / "README.md").read_text()
    expected = f"https://mybinder.org/v2/gh/{repository_slug()}/HEAD?urlpath=lab/tree/{START_NOTEBOOK}"
    assert f"[![Binder](https://mybinder.org/badge_logo.svg)]({expected})" in readme


def _unprivileged_user() -> str:
    try:
        return pwd.getpwuid(1000).pw_name
    except KeyError:
        subprocess.run(["useradd", "--uid", "1000", "--create-home", "llbook-binder"], check=True)
        return "llbook-binder"


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to uid 1000 needs root")
def test_start_notebook_runs_as_uid_1000_with_proot_and_native_snapshots(request, registry_config) -> None:
    if shutil.which("proot") is None:
        pytest.skip("proot is not installed (apt-get install proot)")
    user = _unprivileged_user()
    home = Path(tempfile.mkdtemp(prefix="llbook-binder-"))  # outside pytest's root-private temp dirs
    request.addfinalizer(lambda: shutil.rmtree(home, ignore_errors=True))
    shutil.copy(ROOT / START_NOTEBOOK, home / "01.ipynb")
    nb = nbformat.read(home / "01.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("%llb config"))  # the copy only: shows executor and snapshotter
    nbformat.write(nb, home / "01.ipynb")
    shutil.copy(registry_config.path, home / "llbook.toml")
    subprocess.run(["chown", "-R", "1000:1000", str(home)], check=True)
    # The venv's interpreter may live under a private home (pyenv in /root); the machine's
    # own Python of the same minor version runs the venv's packages for the other user.
    python = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    if not os.access(python, os.X_OK):
        pytest.skip(f"{python} is not installed")
    site = next(p for p in sys.path if p.endswith("site-packages") and str(ROOT) in p)
    env = {"HOME": str(home), "PATH": os.environ["PATH"], "LLBOOK_CONFIG": str(home / "llbook.toml"),
           "PYTHONPATH": f"{site}:{ROOT}",
           "LLBOOK_EXECUTOR": "proot", "LLBOOK_CACHE_DIR": str(home / "cache"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime")}
    proc = subprocess.run(["runuser", "-u", user, "--", python, "-c", RUNNER, str(home / "01.ipynb"), str(home)],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    done = nbformat.read(home / "01.ipynb", as_version=4)
    errors = [o for c in done.cells if c.cell_type == "code" for o in c.outputs if o["output_type"] == "error"]
    assert errors == [], "\n".join("\n".join(e["traceback"]) for e in errors)
    config = json.dumps(done.cells[-1].outputs)
    assert "ProotExecutor" in config and "NativeSnapshotter" in config, config
    second = next(c for c in done.cells if c.cell_type == "code" and "RUN wc -c" in c.source)
    assert "CACHED" in json.dumps(second.outputs)


def _dockerfile_steps(cell: Any) -> list[tuple[str, str]]:
    """(step, CACHED|DONE|ERROR) of a %%dockerfile cell's text progress."""
    text = "\n".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in cell.outputs)
    return re.findall(r"^#\d+ (\[[^\]]+\] .*?)  (CACHED|DONE|ERROR)\b", text, re.M)


def test_postbuild_ships_the_notebooks_cache_and_a_fresh_kernel_opens_cached(tmp_path: Path, registry_config) -> None:
    """postBuild's step (binder/cache_notebooks.py) runs the start notebook with a fresh cache and
    exports it; binder/start hands it to a kernel whose cache dir is empty: every step is CACHED."""
    shipped = tmp_path / "shipped cache"  # a space: the spec lines and the start script keep it
    env = {**os.environ, **registry_config.env, "HOME": str(tmp_path / "home"), "LLBOOK_NOTEBOOK_CACHE": str(shipped),
           "LLBOOK_CACHE_DIR": str(tmp_path / "unused")}
    env.pop("LLBOOK_CACHE_FROM", None)
    (tmp_path / "home").mkdir()
    proc = subprocess.run([sys.executable, str(ROOT / "binder" / "cache_notebooks.py"), "--strict", str(shipped),
                           str(ROOT / START_NOTEBOOK)], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (tmp_path / "unused").exists()  # the notebooks ran in a cache of their own
    specs = (shipped / "cache-from").read_text()
    assert specs == f"type=local,src={shipped},tag=01-first-image\n", specs
    fresh = tmp_path / "fresh-cache"
    env["LLBOOK_CACHE_DIR"] = str(fresh)
    started = subprocess.run([str(ROOT / "binder" / "start"), "printenv", "LLBOOK_CACHE_FROM"], env=env,
                             capture_output=True, text=True, check=True)
    assert started.stdout == specs
    work = tmp_path / "pod"
    work.mkdir()
    shutil.copy(ROOT / START_NOTEBOOK, work / "01.ipynb")
    proc = subprocess.run([str(ROOT / "binder" / "start"), sys.executable, "-c", RUNNER, str(work / "01.ipynb"),
                           str(work)], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    done = nbformat.read(work / "01.ipynb", as_version=4)
    errors = [o for c in done.cells if c.cell_type == "code" for o in c.outputs if o["output_type"] == "error"]
    assert errors == [], "\n".join("\n".join(e["traceback"]) for e in errors)
    cells = [c for c in done.cells if c.cell_type == "code" and c.source.startswith("%%dockerfile")]
    steps = [step for c in cells for step in _dockerfile_steps(c)]
    assert len(cells) == 2 and len(steps) >= 3, steps
    assert all(state == "CACHED" for _, state in steps), steps
    assert (work / "hello.tar").stat().st_size > 0  # the export read the imported layers
