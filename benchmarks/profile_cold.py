"""A cold Debian build taken apart: pull, decompress, hash, unpack, then the whole build by function.

    .venv/bin/python benchmarks/profile_cold.py [--repeat 3] [--no-strace]

Each layer phase runs in a child process of its own (median of --repeat runs), so its wall
time and CPU time (all threads, set-up excluded) are its own; its syscalls (`strace -c -f`,
a separate run) include the child's start-up and set-up (about 3,500: see the pull row):
- pull: the Debian image (bench's debootstrap tarball, benchmarks/debian_rootfs.py) from a
  loopback registry into an empty content store;
- decompress: the layer blob read to the end, with each gzip reader llbook can use;
- hash: sha256 of the uncompressed tar, in memory;
- unpack: `tarsafe.extract` of the uncompressed tar (from memory) into a fresh directory;
- unpack_layer: decompress + hash + extract in one pass, as a pull does.
Then cold in-process builds of run_all's Debian case with the engine's phase functions
wrapped to time them (wall, and CPU of the thread that ran them: resolve, pull, unpack,
each RUN, runc, each COPY, snapshot commit, image commit), and the build's syscalls under strace.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import resource
import shutil
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

from debian_rootfs import debian_rootfs_tarball  # noqa: E402

PHASES = ("pull", "decompress-stdlib", "decompress", "hash", "unpack", "unpack_layer")
TIMED = [  # (label, module, attribute path): wrapped in the build's process to time them
    ("resolve image (manifest, config)", "solver.source.image", "ImageSource.resolve"),
    ("pull (download into the content store)", "solver.source.image", "ImageSource.pull"),
    ("unpack_layer (decompress+hash+extract)", "solver.source.image", "unpack_layer"),
    ("  of which tar extract", "solver.source.tarsafe", "extract"),
    ("exec op (each RUN, all of it)", "solver.solve.ops_exec", "execute_exec"),
    ("  of which runc run", "solver.executor.runc", "RuncExecutor.run"),
    ("file op (each COPY)", "solver.solve.ops_file", "execute_file"),
    ("snapshot commit", "solver.snapshot.overlay", "OverlaySnapshotter.commit"),
    ("image commit (layer tars, config)", "solver.export", "commit_image"),
]


# --- one phase, in a child ------------------------------------------------------------------

def _decompressed_bytes(blob: Path) -> bytes:
    from solver.source.image import _decompressed
    with open(blob, "rb") as raw:
        return _decompressed(raw, "application/vnd.docker.image.rootfs.diff.tar.gzip", "bench").read()


def run_phase(phase: str, blob: Path, work: Path, registry: str) -> float:
    """Run `phase`, return its wall seconds (set-up excluded); `_mark` notes its CPU start."""
    if phase == "pull":
        from solver.cache.content import ContentStore
        from solver.source.image import ImageSource
        from solver.source.registry import RegistryClient, default_platform
        store = ContentStore(work / "content")
        start = _mark()
        source = ImageSource(RegistryClient())
        source.pull(source.resolve(registry, default_platform()), store)
        return time.monotonic() - start
    if phase in ("decompress", "decompress-stdlib"):
        import gzip
        from solver.source.image import _decompressed
        start = _mark()
        with open(blob, "rb") as raw:
            stream = gzip.GzipFile(fileobj=raw) if phase == "decompress-stdlib" else _decompressed(
                raw, "application/vnd.docker.image.rootfs.diff.tar.gzip", "bench")
            while stream.read(1 << 20):
                pass
        return time.monotonic() - start
    if phase == "hash":
        data = _decompressed_bytes(blob)
        start = _mark()
        hashlib.sha256(data).hexdigest()
        return time.monotonic() - start
    if phase == "unpack":
        from solver.source.tarsafe import ExtractOptions, extract
        data = _decompressed_bytes(blob)
        start = _mark()
        extract(io.BytesIO(data), work / "rootfs", ExtractOptions())
        return time.monotonic() - start
    if phase == "unpack_layer":
        from solver.source.image import unpack_layer
        start = _mark()
        unpack_layer(blob, "application/vnd.docker.image.rootfs.diff.tar.gzip", work / "rootfs")
        return time.monotonic() - start
    raise ValueError(phase)


_cpu_start = [0.0]


def _mark() -> float:
    """The phase starts now: note the process's CPU (all threads); return the wall clock."""
    _cpu_start[0] = time.process_time()
    return time.monotonic()


def _child_main(phase: str, blob: str, registry: str, work: str) -> None:
    """One phase in this process; the parent removes `work` (so its removal is not counted)."""
    wall = run_phase(phase, Path(blob), Path(work), registry)
    print(json.dumps({"wall": wall, "cpu": time.process_time() - _cpu_start[0]}))


# --- the parent -----------------------------------------------------------------------------

def _child(phase: str, blob: Path, registry: str, strace_out: Path | None = None) -> dict:
    work = Path(tempfile.mkdtemp(prefix="llbook-prof-phase-", dir="/var/tmp"))
    cmd = [sys.executable, __file__, "--child", phase, str(blob), registry, str(work)]
    if strace_out is not None:
        cmd = ["strace", "-c", "-f", "-qq", "-o", str(strace_out)] + cmd
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def strace_total(path: Path) -> int:
    for line in reversed(path.read_text().splitlines()):
        words = line.split()
        if words and words[-1] == "total":
            return int(words[3] if len(words) >= 5 else words[2])
    return 0


def strace_top(path: Path, n: int = 6) -> str:
    rows = []
    for line in path.read_text().splitlines():
        words = line.split()
        if len(words) >= 5 and words[0][0].isdigit() and words[-1] != "total":
            rows.append((int(words[3]), words[-1]))
    rows.sort(reverse=True)
    return ", ".join(f"{name} {count}" for count, name in rows[:n])


def phase_table(blob: Path, registry: str, repeat: int, use_strace: bool, work: Path) -> str:
    rows = ["| phase | wall (s) | CPU (s) | syscalls | most frequent |", "| --- | ---: | ---: | ---: | --- |"]
    for phase in PHASES:
        runs = [_child(phase, blob, registry) for _ in range(repeat)]
        syscalls, top = "–", ""
        if use_strace:
            out = work / f"strace-{phase}.txt"
            _child(phase, blob, registry, out)
            syscalls, top = str(strace_total(out)), strace_top(out)
        rows.append(f"| {phase} | {statistics.median(r['wall'] for r in runs):.2f} "
                    f"| {statistics.median(r['cpu'] for r in runs):.2f} | {syscalls} | {top} |")
    return "\n".join(rows)


def _timed(table: dict[str, list[float]], label: str, fn):
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        wall, cpu = time.monotonic(), time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            entry = table.setdefault(label, [0, 0.0, 0.0])
            entry[0] += 1
            entry[1] += time.monotonic() - wall
            entry[2] += time.thread_time() - cpu
    return wrapper


def _build_child_main(ctx: str, cache: str) -> None:
    """One in-process cold build with TIMED's functions wrapped; their totals as JSON."""
    import importlib
    table: dict[str, list[float]] = {}
    for label, module, attr in TIMED:
        owner = importlib.import_module(module)
        *path, name = attr.split(".")
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, name, _timed(table, label, getattr(owner, name)))
    from solver.cli.main import main as cli_main
    start = time.monotonic()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    code = cli_main(["build", "--no-server", "--progress", "quiet", "--cache-dir", cache, ctx])
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    table["whole build"] = [1, time.monotonic() - start,
                            cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime]
    print(json.dumps({"code": code, "table": table}))


def build_profile(registry_ref: str, work: Path, repeat: int, use_strace: bool) -> str:
    """Cold in-process builds of run_all's Debian case with the engine's phases timed."""
    from run_all import CASES, _fresh_context
    case = next(c for c in CASES if c.base == "debian")
    ctx = _fresh_context(case, registry_ref, work, "profile")
    runs = []
    for i in range(repeat):
        out = subprocess.run([sys.executable, __file__, "--build-child", str(ctx), str(work / f"cache-{i}")],
                             capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1])["table"])
    rows = ["| build phase (wrapped function) | calls | wall (s) | its thread's CPU (s) |",
            "| --- | ---: | ---: | ---: |"]
    for label in [t[0] for t in TIMED] + ["whole build"]:
        found = [r[label] for r in runs if label in r]
        if found:
            rows.append(f"| {label} | {found[0][0]} | {statistics.median(f[1] for f in found):.2f} "
                        f"| {statistics.median(f[2] for f in found):.2f} |")
    rows.append("\n(whole build's CPU: the process's own, all threads; runc and the RUN processes not included)")
    if use_strace:
        out = work / "strace-build.txt"
        llbook = str(Path(sys.executable).with_name("llbook"))
        subprocess.run(["strace", "-c", "-f", "-qq", "-o", str(out), llbook, "build", "--no-server",
                        "--progress", "quiet", "--cache-dir", str(work / "cache-strace"), str(ctx)],
                       check=True, capture_output=True)
        rows.append(f"\nsyscalls of the whole cold build (runc and RUNs included): {strace_total(out)} "
                    f"({strace_top(out, 10)})")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-strace", action="store_true")
    parser.add_argument("--child", nargs=4, metavar=("PHASE", "BLOB", "REF", "WORK"), help=argparse.SUPPRESS)
    parser.add_argument("--build-child", nargs=2, metavar=("CTX", "CACHE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.build_child:
        _build_child_main(*args.build_child)
        return 0
    if args.child:
        _child_main(*args.child)
        return 0
    from bench_build import push_busybox_base
    from run_all import push_debian_base
    work = Path(tempfile.mkdtemp(prefix="llbook-prof-", dir="/var/tmp"))
    registry, _ = push_busybox_base(work)
    try:
        ref = push_debian_base(registry.host)
        blob = debian_rootfs_tarball()
        use_strace = not args.no_strace and shutil.which("strace") is not None
        size = blob.stat().st_size
        print(f"\n{time.strftime('%Y-%m-%d', time.gmtime())}; {os.cpu_count()} CPUs; layer {size / 1e6:.0f} MB "
              f"gzip; medians of {args.repeat} runs, each phase in its own process\n")
        print(phase_table(blob, ref, args.repeat, use_strace, work))
        print()
        print(build_profile(ref, work, args.repeat, use_strace))
    finally:
        registry.stop()
        subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
