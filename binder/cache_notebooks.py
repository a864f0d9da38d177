"""Run the teaching notebooks once and export their build cache for the image (binder/postBuild).

Each notebook with ``%%dockerfile`` cells runs in a scratch copy with a fresh build cache;
a last cell ``%llb cache export --all type=local,dest=DEST,tag=NAME,mode=max`` writes what
its cells built into DEST (BuildKit's local cache layout, one tag per notebook). DEST/cache-from
lists the ``--cache-from`` specs, one a line; binder/start hands them to every kernel as
``LLBOOK_CACHE_FROM``, so a fresh pod opens with the cells CACHED.

    python binder/cache_notebooks.py [--strict] DEST [NOTEBOOK ...]   (default: notebooks/*.ipynb but NOT_SHIPPED)
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS_FILE = "cache-from"
# Notebooks whose lesson is the rebuild an edit causes: a shipped cache holding every version of
# their cells would show those cells CACHED on a fresh pod and contradict the text.
NOT_SHIPPED = frozenset({"03-cache-keys.ipynb"})


def spec(**fields: str) -> str:
    """A buildx cache spec (``type=local,src=...``), quoted as its CSV parser reads it."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow([f"{k}={v}" for k, v in fields.items()])
    return out.getvalue()


def builds_images(path: Path) -> bool:
    import nbformat
    nb = nbformat.read(path, as_version=4)
    return any(c.cell_type == "code" and c.source.lstrip().startswith("%%dockerfile") for c in nb.cells)


def export_notebook(path: Path, dest: Path, work: Path) -> str | None:
    """Run ``path`` in ``work`` and export its cache under the notebook's name; the error
    text when the export cell failed (None: exported)."""
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(path, as_version=4)
    export = spec(type="local", dest=str(dest), tag=path.stem, mode="max")
    nb.cells.append(nbformat.v4.new_code_cell(f"%llb cache export --all {shlex.quote(export)}"))
    client = NotebookClient(nb, timeout=900, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(work)}})
    client.execute()
    errors = [o for o in nb.cells[-1].outputs if o.get("output_type") == "error"]
    return "\n".join(f"{e.get('ename')}: {e.get('evalue')}" for e in errors) or None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dest", type=Path, help="the cache directory the image ships")
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--strict", action="store_true", help="fail when a notebook's cache is not exported")
    args = parser.parse_args(argv)
    dest = args.dest.absolute()
    notebooks = args.notebooks or sorted(p for p in (ROOT / "notebooks").glob("*.ipynb") if p.name not in NOT_SHIPPED)
    scratch = Path(tempfile.mkdtemp(prefix="llbook-notebook-cache-"))
    os.environ["LLBOOK_CACHE_DIR"] = str(scratch / "build-cache")  # the kernels' fresh cache, dropped after
    os.environ.pop("LLBOOK_CACHE_FROM", None)
    specs, failed = [], []
    try:
        for path in notebooks:
            if not builds_images(path):
                continue
            work = scratch / path.stem
            work.mkdir()
            error = export_notebook(path.absolute(), dest, work)
            if error is None:
                specs.append(spec(type="local", src=str(dest), tag=path.stem))
                print(f"exported the cache of {path.name} to {dest} (tag {path.stem})")
            else:
                failed.append(path.name)
                print(f"warning: {path.name}: its cache was not exported: {error}", file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if specs:
        (dest / SPECS_FILE).write_text("".join(s + "\n" for s in specs))
    return 1 if args.strict and (failed or not specs) else 0


if __name__ == "__main__":
    sys.exit(main())
