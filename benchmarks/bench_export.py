"""llbook's exporters vs `docker save`: time and peak memory, on the same Dockerfile, in one run.

    .venv/bin/python benchmarks/bench_export.py [--size 400] [--files 5000] [--repeat 3] [--skip-docker]

Setup (all local, no internet), as in `bench_build.py`: a `docker-registry` on 127.0.0.1
holding a busybox image made from the machine's static busybox, and dockerd (the one that
answers, else started here with `--iptables=false --bridge=none`; builds use
`--network=host`). One Dockerfile is built by both tools:

    FROM 127.0.0.1:PORT/library/busybox
    RUN head -c SIZE /dev/urandom > /big             # one large incompressible file
    RUN ... FILES small files under /many ...          # many small files
    CMD ["sh"]

Then each export runs in its own process, whose peak RSS is read from `wait4()`:
- llbook: `llbook build --output ...` on the warm cache (nothing is rebuilt; the process
  is the CLI, instrumented only to time `solver.export.export` and to read its own peak
  RSS just before the export starts, which is the build/solve part's share);
  - "layers compressed": the layer blob memo (`<cache>/exports/`) is removed first, so the
    layers are tarred and compressed again, as on the first export of a build;
  - "blobs reused": the memo of a previous export with the same compression is there, so
    only the archive is written;
- docker: `docker save -o FILE` of the image built by `docker build`. The work happens in
  dockerd, so dockerd's resident-set growth is sampled from /proc (20 Hz) during the save;
  the docker CLI process's own peak RSS is reported too.

Each export is repeated (`--repeat`, tools alternating) and the median time and the highest
peak RSS are reported. Prints a Markdown table. The issue's claim "a 1 GB image exports with a peak RSS well
under 200 MB" is checked with `--size 1024`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from fixtures import dockerd as dockerd_fixture  # noqa: E402
from fixtures.dockerd import DockerDaemon, ensure_dockerd  # noqa: E402
from bench_build import push_busybox_base  # noqa: E402

IMAGE = "llbook-bench-export:latest"

DOCKERFILE = """\
FROM {base}
RUN head -c {size_bytes} /dev/urandom > /big
RUN mkdir -p /many && for d in $(seq 1 {dirs}); do mkdir /many/d$d; \\
    for i in $(seq 1 {per_dir}); do echo "file $d/$i" > /many/d$d/f$i; done; done
CMD ["sh"]
"""

# Runs in the exporting process: the real CLI, with `solver.export.export` timed.
CHILD = textwrap.dedent("""\
    import json, resource, sys, time
    import solver.export as exporters
    from solver.cli.main import main
    stats_path, argv = sys.argv[1], sys.argv[2:]
    stats = {}
    original = exporters.export
    def timed(*args, **kwargs):
        stats["rss_before_export_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.monotonic()
        try:
            return original(*args, **kwargs)
        finally:
            stats["export_s"] = stats.get("export_s", 0.0) + time.monotonic() - start
    exporters.export = timed
    code = main(argv)
    stats["rss_peak_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open(stats_path, "w") as f:
        json.dump(stats, f)
    sys.exit(code)
""")


@dataclass
class Measured:
    seconds: float
    maxrss_kb: int  # of the process (and its waited-for children), from wait4
    stdout: str


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run ``cmd``; its wall time and its own peak RSS (``wait4``, so per process, unlike
    ``RUSAGE_CHILDREN``, which is the maximum over all children so far)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stdout[-2000:]}\n{stderr[-4000:]}")
    return Measured(elapsed, usage.ru_maxrss, stdout)


def _rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _dockerd_pid(daemon: DockerDaemon) -> int | None:
    if daemon.process is not None:
        return daemon.process.pid
    found = subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True).stdout.split()
    return int(found[0]) if len(found) == 1 else None


class RssSampler:
    """The highest VmRSS of a process while the block runs (sampled, so a lower bound)."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval = pid, interval
        self.before = _rss_kb(pid) or 0
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = _rss_kb(self.pid)
            if rss is not None:
                self.peak = max(self.peak, rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Row:
    what: str
    seconds: float
    peak_mb: float | None
    note: str
    size_mb: float | None = None


class Llbook:
    def __init__(self, workdir: Path) -> None:
        self.cache = workdir / "llbook-cache"
        self.out = workdir / "out"
        self.out.mkdir(exist_ok=True)
        self.env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.child = workdir / "export_child.py"
        self.child.write_text(CHILD)

    def cli(self, ctx: Path, *extra: str) -> list[str]:
        return ["build", "--progress", "quiet", "--cache-dir", str(self.cache), *extra, str(ctx)]

    def build(self, ctx: Path) -> float:
        return run_measured([sys.executable, "-m", "solver.cli", *self.cli(ctx)], env=self.env).seconds

    def export(self, ctx: Path, output: str, what: str, *, reuse_blobs: bool) -> Row:
        if not reuse_blobs:
            shutil.rmtree(self.cache / "exports", ignore_errors=True)  # the layer blob memo
        stats_path = self.out / "stats.json"
        measured = run_measured([sys.executable, str(self.child), str(stats_path),
                                 *self.cli(ctx, "--output", output)], env=self.env)
        stats = json.loads(stats_path.read_text())
        dest = Path(output.split("dest=", 1)[1].split(",", 1)[0])
        size = dest.stat().st_size / 2**20
        before = stats["rss_before_export_kb"] / 1024
        note = (f"whole `llbook build --output` {measured.seconds:.1f} s; "
                f"peak RSS before the export began {before:.0f} MB")
        row = Row(what, stats["export_s"], measured.maxrss_kb / 1024, note, size)
        dest.unlink()
        return row


class Docker:
    def __init__(self, daemon: DockerDaemon, workdir: Path) -> None:
        self.daemon = daemon
        self.out = workdir / "out"
        self.env = dict(os.environ, DOCKER_BUILDKIT="1")

    def build(self, ctx: Path, base: str) -> float:
        self.daemon.docker("image", "rm", "-f", IMAGE, base, check=False)
        return run_measured([self.daemon.client, "build", "--network=host", "-q", "-t", IMAGE, str(ctx)],
                            env=self.env).seconds

    def save(self) -> Row:
        dest = self.out / "docker-save.tar"
        pid = _dockerd_pid(self.daemon)
        sampler = RssSampler(pid) if pid else None
        if sampler:
            with sampler:
                measured = run_measured([self.daemon.client, "save", "-o", str(dest), IMAGE])
            growth = f"dockerd RSS {sampler.before / 1024:.0f} → {sampler.peak / 1024:.0f} MB " \
                     f"(+{(sampler.peak - sampler.before) / 1024:.0f} MB, sampled at 20 Hz)"
        else:
            measured = run_measured([self.daemon.client, "save", "-o", str(dest), IMAGE])
            growth = "dockerd's RSS not readable here: not comparable"
        size = dest.stat().st_size / 2**20
        dest.unlink()
        return Row("docker save (uncompressed layers; work done in dockerd)", measured.seconds,
                   measured.maxrss_kb / 1024, f"peak RSS is the docker CLI's; {growth}", size)

    def cleanup(self, base: str) -> None:
        self.daemon.docker("image", "rm", "-f", IMAGE, base, check=False)


def _summary(found: list[Row]) -> Row:
    """Median time, highest peak RSS; the notes of the median run."""
    ordered = sorted(found, key=lambda r: r.seconds)
    median = ordered[len(ordered) // 2]
    peak = max((r.peak_mb for r in found if r.peak_mb is not None), default=None)
    return Row(median.what, statistics.median(r.seconds for r in found), peak, median.note, median.size_mb)


def table(rows: list[Row]) -> str:
    lines = ["| export | time (s) | peak RSS (MB) | output (MB) | notes |",
             "| --- | ---: | ---: | ---: | --- |"]
    for r in rows:
        peak = f"{r.peak_mb:.0f}" if r.peak_mb is not None else "–"
        size = f"{r.size_mb:.0f}" if r.size_mb is not None else "–"
        lines.append(f"| {r.what} | {r.seconds:.2f} | {peak} | {size} | {r.note} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=400, help="MB of random data in the big layer")
    parser.add_argument("--files", type=int, default=5000, help="small files in the second layer")
    parser.add_argument("--repeat", type=int, default=3, help="runs per export; medians reported")
    parser.add_argument("--skip-docker", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    dirs = max(1, args.files // 250)
    workdir = Path(tempfile.mkdtemp(prefix="llbook-bench-export-"))
    server, base = push_busybox_base(workdir)
    daemon = docker = None
    rows: list[Row] = []
    try:
        ctx = workdir / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(DOCKERFILE.format(base=base, size_bytes=args.size * 2**20, dirs=dirs,
                                                          per_dir=args.files // dirs))
        llbook = Llbook(workdir)
        print(f"llbook build: {llbook.build(ctx):.1f} s", file=sys.stderr)
        if not args.skip_docker:
            daemon = ensure_dockerd(workdir)
            if daemon is None:
                print(f"docker skipped: {dockerd_fixture.unavailable_reason}", file=sys.stderr)
            else:
                docker = Docker(daemon, workdir)
                print(f"docker build: {docker.build(ctx, base):.1f} s", file=sys.stderr)
        out = llbook.out
        plan = [
            (f"type=docker,dest={out}/llbook-docker.tar,name={IMAGE}",
             "llbook docker archive, gzip (layers compressed)", False),
            (f"type=oci,dest={out}/llbook-oci.tar,name={IMAGE}",
             "llbook OCI tar, gzip (layers compressed)", False),
            (f"type=oci,dest={out}/llbook-oci.tar,name={IMAGE}",
             "llbook OCI tar, gzip (blobs reused)", True),
            (f"type=docker,dest={out}/llbook-docker.tar,name={IMAGE}",
             "llbook docker archive, gzip (blobs reused)", True),
            (f"type=docker,dest={out}/llbook-docker-raw.tar,name={IMAGE},compression=uncompressed",
             "llbook docker archive, uncompressed (layers tarred)", False),
        ]
        runs: dict[str, list[Row]] = {}
        for rep in range(args.repeat):  # tools alternate, so a change in machine load hits both
            for output, what, reuse in plan:
                runs.setdefault(what, []).append(llbook.export(ctx, output, what, reuse_blobs=reuse))
                print(f"  #{rep + 1} {what}: {runs[what][-1].seconds:.2f} s, "
                      f"{runs[what][-1].peak_mb:.0f} MB", file=sys.stderr)
            if docker is not None:
                row = docker.save()
                runs.setdefault(row.what, []).append(row)
                print(f"  #{rep + 1} docker save: {row.seconds:.2f} s", file=sys.stderr)
        rows = [_summary(found) for found in runs.values()]
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        print(f"\nImage: busybox + {args.size} MB of /dev/urandom + {args.files} small files; "
              f"{os.cpu_count()} CPUs; Python {sys.version.split()[0]}; median of {args.repeat} runs, "
              f"highest peak RSS; load average at the end {load}.\n")
        print(table(rows))
        llbook_peak = max(r.peak_mb or 0 for r in rows if r.what.startswith("llbook"))
        print(f"\nHighest llbook peak RSS: {llbook_peak:.0f} MB (whole process: CLI, solver and export).")
    finally:
        if docker is not None:
            docker.cleanup(base)
        if daemon is not None:
            daemon.stop()
        server.stop()
        if args.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
