"""llbook build vs docker build (BuildKit), side by side, on the same Dockerfiles.

    .venv/bin/python benchmarks/bench_build.py [--repeat 3] [--only NAME] [--skip-docker]

Setup (all local, no internet): a `docker-registry` on 127.0.0.1 holding a busybox image
made from the machine's static busybox, and dockerd (started here with
`--iptables=false --bridge=none` when none answers; builds use `--network=host`).
Both tools build `FROM 127.0.0.1:PORT/library/busybox` (plain HTTP on loopback).

Scenarios per Dockerfile, each repeated, medians reported:
- cold: empty cache (llbook: a new --cache-dir; docker: build cache pruned and the base
  image removed), so the base image is pulled from the loopback registry;
- warm: the same build again, nothing changed;
- edit-last: the last RUN changed (a new value each repetition).

Prints a Markdown table with the medians and the llbook/docker ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
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
sys.path.insert(0, str(ROOT))

from fixtures.dockerd import DockerDaemon, ensure_dockerd  # noqa: E402
from fixtures import dockerd as dockerd_fixture  # noqa: E402
from fixtures.imagebuild import build_image, layer_from_dir, push_image  # noqa: E402
from fixtures.registry_server import RegistryServer, start_registry  # noqa: E402
from fixtures.rootfs import make_busybox_rootfs  # noqa: E402
from solver.source.reference import parse as parse_reference  # noqa: E402
from solver.source.registry import RegistryClient, default_platform  # noqa: E402

LAST_MARK = "# edit-last"


@dataclass(frozen=True)
class Case:
    name: str
    dockerfile: str  # {BASE} is replaced by the base image reference
    files: Callable[[Path], None] = lambda ctx: None


def _small_files(ctx: Path) -> None:
    (ctx / "app").mkdir(parents=True, exist_ok=True)
    for i in range(20):
        (ctx / "app" / f"module{i}.txt").write_text(f"module {i}\n" * 50)


def many_files(ctx: Path) -> None:
    """2,000 small files in 20 directories under ctx/src."""
    for d in range(20):
        sub = ctx / "src" / f"pkg{d}"
        sub.mkdir(parents=True, exist_ok=True)
        for i in range(100):
            (sub / f"f{i}.txt").write_text(f"{d}/{i}\n" * 20)


CASES = [
    Case("simple", "FROM {BASE}\n"
                   "RUN echo building > /build.txt && mkdir -p /opt/app\n"
                   "COPY app/ /opt/app/\n"
                   "RUN ls /opt/app | wc -l > /opt/count\n"
                   "RUN echo last-0 > /last.txt " + LAST_MARK + "\n", _small_files),
    Case("multistage", "FROM {BASE} AS deps\n"
                       "RUN mkdir /deps && for i in 1 2 3 4 5; do echo dep$i > /deps/$i; done\n"
                       "FROM {BASE} AS tools\n"
                       "RUN mkdir /tools && echo tool > /tools/t\n"
                       "FROM {BASE}\n"
                       "COPY --from=deps /deps /deps\n"
                       "COPY --from=tools /tools /tools\n"
                       "RUN cat /deps/* /tools/t > /all\n"
                       "RUN echo last-0 > /last.txt " + LAST_MARK + "\n"),
    Case("context-2000-files", "FROM {BASE}\n"
                               "WORKDIR /src\n"
                               "COPY src/ /src/\n"
                               "RUN find /src -type f | wc -l > /count\n"
                               "RUN echo last-0 > /last.txt " + LAST_MARK + "\n", many_files),
]


@dataclass
class Timings:
    values: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)

    def add(self, case: str, tool: str, scenario: str, seconds: float) -> None:
        self.values.setdefault((case, tool, scenario), []).append(seconds)

    def median(self, case: str, tool: str, scenario: str) -> float | None:
        found = self.values.get((case, tool, scenario))
        return statistics.median(found) if found else None


def _run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return elapsed


def _edit_last(ctx: Path, value: str) -> None:
    df = ctx / "Dockerfile"
    lines = df.read_text().splitlines()
    lines = [f"RUN echo {value} > /last.txt {LAST_MARK}" if LAST_MARK in line else line for line in lines]
    df.write_text("\n".join(lines) + "\n")


def push_busybox_base(workdir: Path) -> tuple[RegistryServer, str]:
    """A loopback docker-registry holding busybox (from the machine's static busybox); its ref."""
    server = start_registry(workdir / "registry")
    rootfs = make_busybox_rootfs(workdir / "busybox-rootfs")
    image = build_image([layer_from_dir(rootfs)], default_platform(), oci=False)
    ref = f"{server.host}/library/busybox:latest"
    push_image(RegistryClient(), parse_reference(ref), image)
    return server, ref


class Llbook:
    name = "llbook"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.cache = workdir / "llbook-cache"
        self.env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure as users run it: with .pyc files

    def reset(self, base: str) -> None:
        shutil.rmtree(self.cache, ignore_errors=True)

    def build(self, ctx: Path) -> float:
        return _run([sys.executable, "-m", "solver.cli", "build", "--progress", "quiet",
                     "--cache-dir", str(self.cache), str(ctx)], env=self.env)


class Docker:
    name = "docker"

    def __init__(self, daemon: DockerDaemon) -> None:
        self.daemon = daemon
        self.env = dict(os.environ, DOCKER_BUILDKIT="1")

    def reset(self, base: str) -> None:
        self.daemon.docker("builder", "prune", "-af", check=False)
        self.daemon.docker("image", "rm", "-f", base, check=False)
        self.daemon.docker("image", "rm", "-f", "llbook-bench:latest", check=False)

    def build(self, ctx: Path) -> float:
        return _run([self.daemon.client, "build", "--network=host", "-q", "-t", "llbook-bench:latest",
                     str(ctx)], env=self.env)


def bench_case(case: Case, tools: list, base: str, workdir: Path, repeat: int, timings: Timings) -> None:
    # Tools alternate within each repetition, so a change in machine load hits both alike.
    for rep in range(repeat):
        for tool in tools:
            ctx = workdir / f"ctx-{case.name}-{tool.name}-{rep}"
            shutil.rmtree(ctx, ignore_errors=True)
            ctx.mkdir(parents=True)
            case.files(ctx)
            (ctx / "Dockerfile").write_text(case.dockerfile.replace("{BASE}", base))
            tool.reset(base)
            timings.add(case.name, tool.name, "cold", tool.build(ctx))
            timings.add(case.name, tool.name, "warm", tool.build(ctx))
            _edit_last(ctx, f"edited-{rep}-{time.time_ns()}")
            timings.add(case.name, tool.name, "edit-last", tool.build(ctx))
            print(f"  {case.name} {tool.name} #{rep + 1}: " + ", ".join(
                f"{s} {timings.values[(case.name, tool.name, s)][-1]:.2f}s"
                for s in ("cold", "warm", "edit-last")), file=sys.stderr)


def table(timings: Timings, cases: list[Case], with_docker: bool) -> str:
    rows = ["| Dockerfile | scenario | llbook (s) | docker build (s) | llbook/docker |",
            "| --- | --- | ---: | ---: | ---: |"]
    for case in cases:
        for scenario in ("cold", "warm", "edit-last"):
            ours = timings.median(case.name, "llbook", scenario)
            theirs = timings.median(case.name, "docker", scenario) if with_docker else None
            ratio = f"{ours / theirs:.2f}×" if ours and theirs else "–"
            rows.append(f"| {case.name} | {scenario} | {ours:.2f} | "
                        f"{theirs:.2f} | {ratio} |" if theirs else
                        f"| {case.name} | {scenario} | {ours:.2f} | – | – |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", action="append", default=[], help="case name (repeatable)")
    parser.add_argument("--skip-docker", action="store_true")
    args = parser.parse_args(argv)
    cases = [c for c in CASES if not args.only or c.name in args.only]
    workdir = Path(tempfile.mkdtemp(prefix="llbook-bench-"))
    server, base = push_busybox_base(workdir)
    daemon = None
    try:
        tools: list = [Llbook(workdir)]
        if not args.skip_docker:
            daemon = ensure_dockerd(workdir)
            if daemon is None:
                print(f"docker build skipped: {dockerd_fixture.unavailable_reason}", file=sys.stderr)
            else:
                tools.append(Docker(daemon))
        timings = Timings()
        for case in cases:
            bench_case(case, tools, base, workdir, args.repeat, timings)
        print(f"\nMedians of {args.repeat} runs; base image {base} (loopback registry); "
              f"{os.cpu_count()} CPUs.\n")
        print(table(timings, cases, daemon is not None))
    finally:
        if daemon is not None:
            daemon.stop()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
