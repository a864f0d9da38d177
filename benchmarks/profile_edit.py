"""One re-executed RUN taken apart: the edit-last build of run_all's busybox chain, step by step.

    .venv/bin/python benchmarks/profile_edit.py [--repeat 15] [--strace]

In one process (as the resident server runs builds), after a first build fills the
cache, the last RUN is edited and rebuilt --repeat times. The engine's steps are wrapped
to time them (wall; medians over the rebuilds): the solve and its cache lookups, the
exec op, mounting the snapshot, runc (bundle, spec, seccomp, `runc run`), the snapshot
commit, its size, the cache index, and the whole build as `llbook build` runs it. With
--strace, one more rebuild under `strace -c -f` (runc and the RUN included).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from profile_cold import _timed, strace_top, strace_total  # noqa: E402

STEPS = [  # (label, module, attribute path)
    ("whole build (the CLI's run_build)", "solver.cli.build", "run_build"),
    ("  lowering (Dockerfile to LLB)", "solver.cli.build", "lower"),
    ("  solve", "solver.solve.solver", "Solver.solve"),
    ("    cache lookups", "solver.solve.solver", "Solver._lookup"),
    ("    exec op (the edited RUN)", "solver.solve.ops_exec", "execute_exec"),
    ("      prepare + mount the snapshot", "solver.solve.ops_exec", "_mount_specs"),
    ("      runc executor", "solver.executor.runc", "RuncExecutor.run"),
    ("        resolve user (passwd, group)", "solver.executor.runc", "resolve_user"),
    ("        bundle (spec, seccomp, files)", "solver.executor.runc", "RuncExecutor._write_bundle"),
    ("          seccomp profile", "solver.executor.runc", "load_profile"),
    ("        runc run (start to exit)", "solver.executor.runc", "RuncExecutor._run_container"),
    ("      snapshot commit", "solver.snapshot.overlay", "OverlaySnapshotter.commit"),
    ("      unmount", "solver.snapshot.mount", "unmount"),
    ("    snapshot size", "solver.snapshot.overlay", "OverlaySnapshotter.usage"),
    ("    cache index", "solver.solve.solver", "Solver._index"),
    ("  exports (image commit)", "solver.cli.build", "_export_all"),
]


def _wrap_all(table: dict[str, list[float]]) -> None:
    for label, module, attr in STEPS:
        owner = importlib.import_module(module)
        *path, name = attr.split(".")
        for part in path:
            owner = getattr(owner, part)
        if hasattr(owner, name):
            wrapped = _timed(table, label, getattr(owner, name))
            if isinstance(inspect.getattr_static(owner, name), staticmethod):
                wrapped = staticmethod(wrapped)
            setattr(owner, name, wrapped)


def _edit(ctx: Path, value: str) -> None:
    from bench_build import LAST_MARK
    df = ctx / "Dockerfile"
    lines = [f"RUN echo {value} > /last.txt {LAST_MARK}" if LAST_MARK in line else line
             for line in df.read_text().splitlines()]
    df.write_text("\n".join(lines) + "\n")


def child(ctx: Path, cache: Path, repeat: int, warm: bool) -> None:
    """In this process: a first build, then `repeat` timed edit-last (or warm) rebuilds; JSON out."""
    from solver.cli.main import main as cli_main
    argv = ["build", "--no-server", "--progress", "quiet", "--cache-dir", str(cache), str(ctx)]
    if cli_main(argv) != 0:
        raise SystemExit("first build failed")
    table: dict[str, list[float]] = {}
    _wrap_all(table)
    runs = []
    for i in range(repeat):
        if not warm:
            _edit(ctx, f"edit-{i}-{time.time_ns()}")
        table.clear()
        start = time.monotonic()
        if cli_main(argv) != 0:
            raise SystemExit("rebuild failed")
        runs.append({"total": time.monotonic() - start, **{k: v[1] for k, v in table.items()}})
    print(json.dumps(runs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--strace", action="store_true")
    parser.add_argument("--warm", action="store_true", help="rebuild unchanged instead (all cached)")
    parser.add_argument("--case", default="busybox-10-run", help="a case of run_all.py (busybox-based)")
    parser.add_argument("--child", nargs=2, metavar=("CTX", "CACHE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), args.repeat, args.warm)
        return 0
    from bench_build import push_busybox_base
    from run_all import CASES, _fresh_context
    work = Path(tempfile.mkdtemp(prefix="llbook-prof-edit-", dir="/var/tmp"))
    registry, base = push_busybox_base(work)
    try:
        case = next(c for c in CASES if c.name == args.case)
        ctx = _fresh_context(case, base, work, "edit")
        out = subprocess.run([sys.executable, __file__, "--repeat", str(args.repeat), "--child", str(ctx),
                              str(work / "cache")] + (["--warm"] if args.warm else []),
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(out.stderr[-3000:])
        runs = json.loads(out.stdout.strip().splitlines()[-1])
        what = "warm rebuild" if args.warm else "edit-last"
        print(f"\n{time.strftime('%Y-%m-%d', time.gmtime())}; {what} of {case.name}, in one process; "
              f"medians of {len(runs)} rebuilds\n")
        print("| step (wrapped function) | wall (ms) |\n| --- | ---: |")
        print(f"| in-process build, end to end | {statistics.median(r['total'] for r in runs) * 1000:.1f} |")
        for label, _, _ in STEPS:
            found = [r.get(label, 0.0) for r in runs]
            if any(found):
                print(f"| {label} | {statistics.median(found) * 1000:.1f} |")
        if args.strace:
            if not args.warm:
                _edit(ctx, f"edit-strace-{time.time_ns()}")
            trace = work / "strace.txt"
            llbook = str(Path(sys.executable).with_name("llbook"))
            subprocess.run(["strace", "-c", "-f", "-qq", "-o", str(trace), llbook, "build", "--no-server",
                            "--progress", "quiet", "--cache-dir", str(work / "cache"), str(ctx)],
                           check=True, capture_output=True)
            print(f"\nsyscalls of one {what} `llbook build --no-server` (start-up, runc and the RUN "
                  f"included): {strace_total(trace)} ({strace_top(trace, 10)})")
    finally:
        registry.stop()
        subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
