"""Issue 14's targets table from one run: llbook (resident server) beside docker build, wall and CPU.

    .venv/bin/python benchmarks/run_all.py [--repeat 3] [--only NAME] [--no-syscalls] [--no-cell]

Setup (all local): a loopback `docker-registry` holding busybox (the machine's static
busybox) and a minimal Debian (debootstrap from the archive named in apt's sources, cached
as a tarball under /var/tmp/llbook-bench), a dockerd of the bench's own
(`--iptables=false --bridge=none`, own data-root, exec-root and socket) for
`docker build --network=host`, and an llbook server of the bench's own (LLBOOK_SERVER_DIR).

Cases: a 10-RUN busybox chain; Debian with a 3,000-file RUN and a 2,000-file COPY; three
parallel busybox stages copied into a fourth. Per repetition and case the tools alternate
(order flipped each repetition); each does cold (empty cache: a new --cache-dir; docker:
build cache pruned, base image removed), warm (unchanged) and edit-last (the last RUN
changed). Medians are reported.

CPU time: llbook = client process + the server (utime+stime of the server and of the
children it reaped: runc, the RUN processes); docker = CLI + dockerd, containerd, shims
and runc (the daemons' process trees from /proc/<pid>/stat, children reaped included).
Syscalls: one extra build per cell, the client under `strace -c -f` and another strace
attached to the server / daemons (strace slows what it traces, so these builds are not timed).
The cell row comes from benchmarks/bench_notebook.py.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from bench_build import LAST_MARK, many_files, push_busybox_base  # noqa: E402
from debian_rootfs import debian_rootfs_tarball  # noqa: E402
from fixtures.imagebuild import Blob, Layer, build_image, push_image  # noqa: E402
from solver.source.reference import parse as parse_reference  # noqa: E402
from solver.source.registry import RegistryClient, default_platform  # noqa: E402
from solver.source.registry.descriptor import MEDIA_TYPE_DOCKER_LAYER_GZIP  # noqa: E402

SCENARIOS = ("warm", "edit-last", "cold")
TARGETS = {"cli": {"warm": 0.5, "edit-last": 0.7, "cold": 0.9},
           "cell": {"warm": 0.2, "edit-last": 0.5, "cold": 0.8}}
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Case:
    name: str
    base: str  # "busybox" or "debian"
    dockerfile: str  # {BASE} is replaced by the base image reference
    files: Callable[[Path], None] = lambda ctx: None


def _chain() -> str:
    runs = "".join(f"RUN echo step{i} > /step{i}\n" for i in range(1, 10))
    return "FROM {BASE}\n" + runs + f"RUN echo last-0 > /last.txt {LAST_MARK}\n"


CASES = [
    Case("busybox-10-run", "busybox", _chain()),
    Case("debian-3000-run-2000-copy", "debian",
         "FROM {BASE}\n"
         "RUN mkdir /gen && cd /gen && for d in $(seq 30); do mkdir $d; "
         "for f in $(seq 100); do echo $d/$f > $d/$f; done; done\n"
         "COPY src/ /src/\n"
         f"RUN echo last-0 > /last.txt {LAST_MARK}\n", many_files),
    Case("three-parallel-stages", "busybox",
         "".join(f"FROM {{BASE}} AS s{i}\nRUN mkdir /out && for f in $(seq 200); do echo {i}$f > /out/$f; done\n"
                 for i in range(3))
         + "FROM {BASE}\n"
         + "".join(f"COPY --from=s{i} /out /s{i}\n" for i in range(3))
         + f"RUN echo last-0 > /last.txt {LAST_MARK}\n"),
]


# --- CPU accounting -------------------------------------------------------------------------

def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()
    except OSError:
        return None


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def _cmdline_has(pid: int, marker: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return marker.encode() in f.read()
    except OSError:
        return False


def process_tree_cpu(roots: list[int], marker: str | None = None) -> float:
    """CPU seconds of `roots`, their live descendants and the children they reaped; with
    `marker`, also every process whose command line holds it (shims reparented to init)."""
    children = _children_map()
    seen: set[int] = set()
    todo = list(roots)
    if marker:
        todo += [int(p) for p in os.listdir("/proc") if p.isdigit() and _cmdline_has(int(p), marker)]
    total = 0
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        fields = _stat_fields(pid)
        if fields is None:
            continue
        # after ")": state ppid ... utime(12) stime(13) cutime(14) cstime(15), 0-based from state
        total += sum(int(fields[i]) for i in (11, 12, 13, 14))
        todo += children.get(pid, [])
    return total / CLK_TCK


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Sample:
    wall: float
    cpu: float


def _run_timed(cmd: list[str], env: dict[str, str], daemon_cpu: Callable[[], float]) -> Sample:
    before_daemon, before_child = daemon_cpu(), _children_cpu()
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    cpu = (_children_cpu() - before_child) + (daemon_cpu() - before_daemon)
    return Sample(wall, cpu)


def strace_syscalls(pids: list[int], command: list[str], env: dict[str, str], out: Path) -> int:
    """Total syscalls made by `command` and by `pids` (and the children of either) while it runs."""
    if not pids:
        raise RuntimeError("no daemon process to trace")
    tracer = subprocess.Popen(["strace", "-c", "-f", "-qq", "-o", str(out)]
                              + [a for p in pids for a in ("-p", str(p))], stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # attached
    try:
        subprocess.run(["strace", "-c", "-f", "-qq", "-o", f"{out}.client", *command], env=env,
                       capture_output=True, check=True)
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=120)
    return _strace_total(out) + _strace_total(Path(f"{out}.client"))


def _strace_total(out: Path) -> int:
    for line in reversed(out.read_text().splitlines()):
        words = line.split()
        if len(words) >= 4 and words[-1] == "total":
            return int(words[3] if len(words) >= 5 else words[2])
    return 0


# --- the tools --------------------------------------------------------------------------------

class ServerRestarted(RuntimeError):
    """The llbook server was replaced during a timed build (its CPU and wall are not comparable)."""


class LlbookTool:
    name = "llbook"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.server_dir = workdir / "llbook-server"
        self.server_dir.mkdir(mode=0o700)
        self.env = dict(os.environ, LLBOOK_SERVER_DIR=str(self.server_dir), LLBOOK_SERVER="1")
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)  # as users run it: with .pyc files
        self.cache = workdir / "llbook-cache-0"
        self.resets = 0
        self.binary = str(Path(sys.executable).with_name("llbook"))

    def server_pid(self) -> int | None:
        out = subprocess.run([self.binary, "server", "status"], env=self.env, capture_output=True, text=True)
        words = out.stdout.split()
        return int(words[1]) if out.returncode == 0 and words[:1] == ["pid"] else None

    def pids(self) -> list[int]:
        pid = self.server_pid()
        return [pid] if pid else []

    def daemon_cpu(self) -> float:
        return process_tree_cpu(self.pids())

    def reset(self, base: str) -> None:
        shutil.rmtree(self.cache, ignore_errors=True)
        self.resets += 1
        self.cache = self.workdir / f"llbook-cache-{self.resets}"

    def command(self, ctx: Path) -> list[str]:
        return [self.binary, "build", "--progress", "quiet", "--cache-dir", str(self.cache), str(ctx)]

    def build(self, ctx: Path) -> Sample:
        before = self.server_pid()
        sample = _run_timed(self.command(ctx), self.env, self.daemon_cpu)
        if before is None or self.server_pid() != before:
            raise ServerRestarted(f"llbook's server was {before}, is {self.server_pid()}")
        return sample

    def refresh(self, ctx: Path) -> None:
        """An untimed build, so that a server whose code changed on disk (another commit in
        this tree) is replaced before the timed ones."""
        _run_timed(self.command(ctx), self.env, lambda: 0.0)

    def stop(self) -> None:
        subprocess.run([self.binary, "server", "stop"], env=self.env, capture_output=True)


class DockerTool:
    name = "docker"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir / "dockerd"
        self.workdir.mkdir()
        self.socket = self.workdir / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.env = dict(os.environ, DOCKER_BUILDKIT="1", DOCKER_HOST=self.host,
                        DOCKER_CONFIG=str(self.workdir / "client"))
        log = open(self.workdir / "dockerd.log", "wb")
        self.process = subprocess.Popen(
            ["dockerd", "--iptables=false", "--bridge=none", "-H", self.host,
             "--data-root", str(self.workdir / "data"), "--exec-root", str(self.workdir / "exec"),
             "--pidfile", str(self.workdir / "dockerd.pid")],
            stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 60
        while subprocess.run(["/usr/bin/docker", "info"], env=self.env, capture_output=True).returncode:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start; see {self.workdir / 'dockerd.log'}")
            time.sleep(0.5)

    def pids(self) -> list[int]:
        children = _children_map()
        tree, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo += children.get(pid, [])
        shims = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in tree
                 and _cmdline_has(int(p), str(self.workdir))]
        return tree + shims

    def daemon_cpu(self) -> float:
        return process_tree_cpu([self.process.pid], marker=str(self.workdir))

    def docker(self, *args: str) -> None:
        subprocess.run(["/usr/bin/docker", *args], env=self.env, capture_output=True)

    def reset(self, base: str) -> None:
        # every image goes: an untagged earlier result would keep the base image's layers
        self.docker("builder", "prune", "-af")
        self.docker("image", "prune", "-af")

    def command(self, ctx: Path) -> list[str]:
        return ["/usr/bin/docker", "build", "--network=host", "-q", "-t", "llbook-bench:latest", str(ctx)]

    def build(self, ctx: Path) -> Sample:
        return _run_timed(self.command(ctx), self.env, self.daemon_cpu)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- images ---------------------------------------------------------------------------------

def push_debian_base(registry_host: str) -> str:
    """The cached debootstrap tarball pushed as a one-layer image; its reference."""
    blob = debian_rootfs_tarball().read_bytes()
    diff = hashlib.sha256()
    with gzip.GzipFile(fileobj=__import__("io").BytesIO(blob)) as stream:
        while chunk := stream.read(1 << 20):
            diff.update(chunk)
    layer = Layer(Blob(MEDIA_TYPE_DOCKER_LAYER_GZIP, blob), "sha256:" + diff.hexdigest(), b"")
    image = build_image([layer], default_platform(), oci=False,
                        config={"Cmd": ["bash"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:"
                                                         "/usr/sbin:/usr/bin:/sbin:/bin"]})
    ref = f"{registry_host}/library/debian:bench"
    push_image(RegistryClient(), parse_reference(ref), image)
    return ref


def _edit_last(ctx: Path, value: str) -> None:
    df = ctx / "Dockerfile"
    lines = [f"RUN echo {value} > /last.txt {LAST_MARK}" if LAST_MARK in line else line
             for line in df.read_text().splitlines()]
    df.write_text("\n".join(lines) + "\n")


# --- the run --------------------------------------------------------------------------------

@dataclass
class Results:
    samples: dict[tuple[str, str, str], list[Sample]] = field(default_factory=dict)
    syscalls: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def add(self, case: str, tool: str, scenario: str, sample: Sample) -> None:
        self.samples.setdefault((case, tool, scenario), []).append(sample)

    def median(self, case: str, tool: str, scenario: str, what: str) -> float | None:
        found = self.samples.get((case, tool, scenario))
        return statistics.median(getattr(s, what) for s in found) if found else None


def _fresh_context(case: Case, base: str, workdir: Path, label: str) -> Path:
    ctx = workdir / f"ctx-{case.name}-{label}"
    shutil.rmtree(ctx, ignore_errors=True)
    ctx.mkdir(parents=True)
    case.files(ctx)
    (ctx / "Dockerfile").write_text(case.dockerfile.replace("{BASE}", base))
    return ctx


def run_case(case: Case, tool, base: str, workdir: Path, label: str, results: Results, warmup: Path) -> None:
    for attempt in range(3):
        try:
            if hasattr(tool, "refresh"):
                tool.refresh(warmup)
            ctx = _fresh_context(case, base, workdir, f"{tool.name}-{label}")
            tool.reset(base)
            cold = tool.build(ctx)
            warm = tool.build(ctx)
            _edit_last(ctx, f"edited-{label}-{time.time_ns()}")
            edit = tool.build(ctx)
            break
        except ServerRestarted as exc:
            print(f"  {case.name} {tool.name} {label}: {exc}; again", file=sys.stderr)
    else:
        raise RuntimeError(f"{case.name}: llbook's server kept restarting")
    for scenario, sample in (("cold", cold), ("warm", warm), ("edit-last", edit)):
        results.add(case.name, tool.name, scenario, sample)
    print(f"  {case.name} {tool.name} {label}: " + ", ".join(
        f"{s} {x.wall:.2f}s wall {x.cpu:.2f}s cpu" for s, x in (("cold", cold), ("warm", warm), ("edit-last", edit))),
        file=sys.stderr, flush=True)


def count_syscalls(case: Case, tool, base: str, workdir: Path, results: Results) -> None:
    ctx = _fresh_context(case, base, workdir, f"{tool.name}-strace")
    tool.reset(base)
    for scenario in ("cold", "warm", "edit-last"):
        if scenario == "edit-last":
            _edit_last(ctx, f"edited-strace-{time.time_ns()}")
        out = workdir / f"strace-{case.name}-{tool.name}-{scenario}.txt"
        results.syscalls[(case.name, tool.name, scenario)] = strace_syscalls(
            tool.pids(), tool.command(ctx), tool.env, out)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _fmt(x: float | None, unit: str = "") -> str:
    return "–" if x is None else f"{x:.2f}{unit}"


def detail_table(results: Results, cases: list[Case]) -> str:
    rows = ["| case | scenario | llbook wall (s) | docker wall (s) | wall ratio | llbook CPU (s) "
            "| docker CPU (s) | CPU ratio | llbook syscalls | docker syscalls |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for case in cases:
        for scenario in SCENARIOS:
            lw, dw = (results.median(case.name, t, scenario, "wall") for t in ("llbook", "docker"))
            lc, dc = (results.median(case.name, t, scenario, "cpu") for t in ("llbook", "docker"))
            ls, ds = (results.syscalls.get((case.name, t, scenario)) for t in ("llbook", "docker"))
            rows.append(f"| {case.name} | {scenario} | {_fmt(lw)} | {_fmt(dw)} | {_fmt(_ratio(lw, dw), '×')} "
                        f"| {_fmt(lc)} | {_fmt(dc)} | {_fmt(_ratio(lc, dc), '×')} "
                        f"| {ls if ls is not None else '–'} | {ds if ds is not None else '–'} |")
    return "\n".join(rows)


def _span(ratios: list[float]) -> str:
    if not ratios:
        return "–"
    lo, hi = min(ratios), max(ratios)
    return f"{lo:.2f}×" if abs(hi - lo) < 0.005 else f"{lo:.2f}–{hi:.2f}×"


def cli_cells(results: Results, cases: list[Case], what: str) -> dict[str, list[float]]:
    cells: dict[str, list[float]] = {}
    for scenario in SCENARIOS:
        cells[scenario] = [r for case in cases if (r := _ratio(
            results.median(case.name, "llbook", scenario, what),
            results.median(case.name, "docker", scenario, what))) is not None]
    return cells


def targets_table(results: Results, cases: list[Case], cell_row: dict[str, str] | None) -> str:
    def verdict(path: str, scenario: str, ratios: list[float]) -> str:
        if not ratios:
            return ""
        return " ✓" if max(ratios) <= TARGETS[path][scenario] else " ✗"

    rows = ["| path | warm | edit-last | cold |", "| --- | --- | --- | --- |"]
    target = lambda p: " | ".join(f"≤ {TARGETS[p][s]}×" for s in SCENARIOS)  # noqa: E731
    rows.append(f"| cell (kernel round trip), target | {target('cell')} |")
    if cell_row:
        rows.append("| cell (kernel round trip), measured | "
                    + " | ".join(cell_row.get(s, "–") for s in SCENARIOS) + " |")
    rows.append(f"| CLI with the resident server, target | {target('cli')} |")
    wall, cpu = cli_cells(results, cases, "wall"), cli_cells(results, cases, "cpu")
    rows.append("| CLI with the resident server, wall | "
                + " | ".join(_span(wall[s]) + verdict("cli", s, wall[s]) for s in SCENARIOS) + " |")
    rows.append("| CLI with the resident server, CPU | " + " | ".join(_span(cpu[s]) for s in SCENARIOS) + " |")
    return "\n".join(rows)


def cell_row_from_notebook(repeat: int) -> dict[str, str] | None:
    """The `%%dockerfile` cell's ratios from bench_notebook, when it offers them as a function."""
    try:
        import bench_notebook
    except Exception as exc:  # its optional notebook packages may be missing
        print(f"cell row skipped: bench_notebook does not import ({exc})", file=sys.stderr)
        return None
    fn = getattr(bench_notebook, "targets_row", None)
    if fn is None:
        print("cell row skipped: bench_notebook has no targets_row()", file=sys.stderr)
        return None
    return fn(repeat=repeat)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", action="append", default=[], help="case name (repeatable)")
    parser.add_argument("--no-syscalls", action="store_true", help="skip the strace pass")
    parser.add_argument("--no-cell", action="store_true", help="skip the notebook cell row")
    args = parser.parse_args(argv)
    cases = [c for c in CASES if not args.only or c.name in args.only]
    workdir = Path(tempfile.mkdtemp(prefix="llbook-bench-all-", dir="/var/tmp"))
    registry, busybox = push_busybox_base(workdir)
    tools: list = []
    try:
        bases = {"busybox": busybox}
        if any(c.base == "debian" for c in cases):
            bases["debian"] = push_debian_base(registry.host)
        tools = [LlbookTool(workdir), DockerTool(workdir)]
        warmup = _fresh_context(CASES[0], busybox, workdir, "warmup")
        for tool in tools:  # both daemons up and running before anything is timed
            _run_timed(tool.command(warmup), tool.env, lambda: 0.0)
        results = Results()
        for rep in range(args.repeat):
            for case in cases:
                for tool in (tools if rep % 2 == 0 else tools[::-1]):
                    run_case(case, tool, bases[case.base], workdir, f"#{rep + 1}", results, warmup)
        if not args.no_syscalls and shutil.which("strace"):
            for case in cases:
                for tool in tools:
                    count_syscalls(case, tool, bases[case.base], workdir, results)
        cell_row = None if args.no_cell else cell_row_from_notebook(args.repeat)
        uname = os.uname()
        print(f"\n{time.strftime('%Y-%m-%d', time.gmtime())}; {os.cpu_count()} CPUs, "
              f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
              f"Linux {uname.release}; medians of {args.repeat} interleaved runs; ratios llbook/docker "
              f"(CLI: spread over the {len(cases)} cases).\n")
        print(targets_table(results, cases, cell_row))
        print()
        print(detail_table(results, cases))
    finally:
        for tool in tools:
            tool.stop()
        registry.stop()
        subprocess.run(["rm", "-rf", "--one-file-system", str(workdir)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
