"""A ``%%dockerfile`` cell timed as the kernel's whole round trip, beside docker build (issue 14).

    .venv/bin/python benchmarks/bench_notebook.py [--repeat 5] [--warm 10] [--profile]

Setup (all local): a loopback `docker-registry` holding busybox (the machine's static
busybox), a real IPython kernel started by jupyter_client with ``%load_ext kernel_ext``
(so the widgets take the rich path, as in JupyterLab), and a dockerd of the bench's own
for `docker build --network=host` of the same Dockerfile.

A cell's time is what a front end waits for: from sending the execute_request until the
kernel's execute_reply and its iopub ``idle`` have both arrived, every display, update and
widget comm message of the cell read on the way. CPU is the kernel's process tree (the
kernel, the RUN processes it reaped); for docker, the CLI plus dockerd, containerd, shims
and runc.

Per repetition (the two tools alternate, order flipped each time): cold (llbook: a new
session on an empty cache dir in the running kernel; docker: build cache and images
pruned), warm (re-run unchanged; ``--warm`` times, plus the same with ``-q``) and
edit-last (the last RUN changed). Medians are printed as a Markdown table with the
targets (warm ≤ 15 ms and ≤ 0.2×, edit-last ≤ 0.5×, cold ≤ 0.8×); ``targets_row`` gives
``run_all.py`` the ratios.
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from bench_build import push_busybox_base  # noqa: E402
from run_all import DockerTool, Sample, process_tree_cpu  # noqa: E402

SCENARIOS = ("warm", "edit-last", "cold")
TARGETS = {"warm": 0.2, "edit-last": 0.5, "cold": 0.8}
WARM_TARGET_MS = 15.0
LAST_MARK = "# last"

TEN_INSTRUCTIONS = """FROM {BASE}
ARG VERSION=1.0
ENV APP_HOME=/opt/app
WORKDIR /opt/app
LABEL org.example.bench=notebook
ENV PATH=/opt/app/bin:$PATH
RUN echo "version $VERSION" > /opt/app/version
RUN mkdir -p /opt/app/data && echo data > /opt/app/data/d
RUN mkdir -p bin && printf '#!/bin/sh\\necho hi\\n' > bin/hi && chmod +x bin/hi
RUN echo {LAST} > /last.txt
"""

KERNEL_SETUP = """
import kernel_ext, pathlib
_llbook_state = kernel_ext._registry[id(get_ipython())]
def _llbook_fresh(cache_dir):
    _llbook_state.session.close()
    _llbook_state.session = kernel_ext._new_session()
    _llbook_state.session.cache_dir = pathlib.Path(cache_dir)
    _llbook_state.views = None
"""


@dataclass
class RoundTrip:
    wall: float
    cpu: float
    messages: Counter = field(default_factory=Counter)
    status: str = "ok"
    text: str = ""


class BenchKernel:
    """A python3 kernel driven as a front end drives it."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        from jupyter_client.manager import KernelManager
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(env=env, cwd=str(cwd))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.pid = self.km.provisioner.process.pid

    def cpu(self) -> float:
        return process_tree_cpu([self.pid])

    def execute(self, code: str, cell_id: str | None = None, timeout: float = 300) -> RoundTrip:
        content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                   "allow_stdin": False, "stop_on_error": True}
        msg = self.kc.session.msg("execute_request", content)
        if cell_id is not None:
            msg["metadata"]["cellId"] = cell_id
        msg_id = msg["header"]["msg_id"]
        cpu0 = self.cpu()
        start = time.perf_counter()
        self.kc.shell_channel.send(msg)
        trip = RoundTrip(0.0, 0.0)
        replied = idle = False
        deadline = time.monotonic() + timeout
        while not (replied and idle):
            if time.monotonic() > deadline:
                raise TimeoutError(f"cell did not finish in {timeout} s")
            if not replied:
                try:
                    reply = self.kc.get_shell_msg(timeout=0 if not idle else 1)
                    if reply["parent_header"].get("msg_id") == msg_id:
                        replied = True
                        trip.status = reply["content"]["status"]
                except queue.Empty:
                    pass
            if idle:
                continue
            try:
                out = self.kc.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            if out["parent_header"].get("msg_id") != msg_id:
                continue
            kind = out["msg_type"]
            trip.messages[kind] += 1
            if kind == "status" and out["content"]["execution_state"] == "idle":
                idle = True
            elif kind == "stream":
                trip.text += out["content"]["text"]
            elif kind in ("display_data", "update_display_data", "execute_result"):
                trip.text += out["content"]["data"].get("text/plain", "") + "\n"
            elif kind == "error":
                trip.text += "\n".join(out["content"]["traceback"])
        trip.wall = time.perf_counter() - start
        trip.cpu = self.cpu() - cpu0
        if trip.status != "ok":
            raise RuntimeError(f"cell failed:\n{trip.text[-3000:]}")
        return trip

    def shutdown(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


class CellTool:
    """llbook: the Dockerfile as one ``%%dockerfile`` cell of a running kernel."""

    name = "llbook"

    def __init__(self, kernel: BenchKernel, workdir: Path) -> None:
        self.kernel, self.workdir, self.resets = kernel, workdir, 0
        kernel.execute("%load_ext kernel_ext")
        kernel.execute(KERNEL_SETUP)

    def reset(self) -> None:
        self.resets += 1
        cache = self.workdir / f"cell-cache-{self.resets}"
        self.kernel.execute(f"_llbook_fresh({str(cache)!r})")

    def build(self, text: str, quiet: bool = False) -> RoundTrip:
        head = "%%dockerfile -q\n" if quiet else "%%dockerfile\n"
        return self.kernel.execute(head + text, cell_id="bench-cell")


class DockerBuild:
    """docker build of the same Dockerfile on the bench's own dockerd."""

    name = "docker"

    def __init__(self, workdir: Path) -> None:
        self.tool = DockerTool(workdir)
        self.ctx = workdir / "docker-ctx"
        self.ctx.mkdir()

    def reset(self) -> None:
        self.tool.reset("")

    def build(self, text: str) -> Sample:
        (self.ctx / "Dockerfile").write_text(text)
        return self.tool.build(self.ctx)

    def stop(self) -> None:
        self.tool.stop()


@dataclass
class Results:
    walls: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    cpus: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    messages: dict[str, Counter] = field(default_factory=dict)

    def add(self, tool: str, scenario: str, wall: float, cpu: float) -> None:
        self.walls.setdefault((tool, scenario), []).append(wall)
        self.cpus.setdefault((tool, scenario), []).append(cpu)

    def wall(self, tool: str, scenario: str) -> float | None:
        found = self.walls.get((tool, scenario))
        return statistics.median(found) if found else None

    def cpu(self, tool: str, scenario: str) -> float | None:
        found = self.cpus.get((tool, scenario))
        return statistics.median(found) if found else None


def _dockerfile(base: str, last: str) -> str:
    return TEN_INSTRUCTIONS.replace("{BASE}", base).replace("{LAST}", last)


def run_cell_tool(cell: CellTool, base: str, label: str, warm: int, results: Results) -> None:
    cell.reset()
    first = _dockerfile(base, f"cold-{label}")
    trip = cell.build(first)
    results.add("llbook", "cold", trip.wall, trip.cpu)
    for quiet in (False, True):
        for _ in range(warm):
            trip = cell.build(first, quiet=quiet)
            if not quiet and "cached" not in trip.text:
                raise RuntimeError(f"warm cell not all cached:\n{trip.text}")
            results.add("llbook", "warm -q" if quiet else "warm", trip.wall, trip.cpu)
            results.messages["warm -q" if quiet else "warm"] = trip.messages
    trip = cell.build(_dockerfile(base, f"edit-{label}-{time.time_ns()}"))
    results.add("llbook", "edit-last", trip.wall, trip.cpu)
    results.messages["edit-last"] = trip.messages
    print(f"  llbook {label}: cold {results.walls['llbook', 'cold'][-1]:.3f}s, warm "
          f"{results.walls['llbook', 'warm'][-1] * 1000:.1f}ms, warm -q "
          f"{results.walls['llbook', 'warm -q'][-1] * 1000:.1f}ms, edit-last {trip.wall:.3f}s", file=sys.stderr)


def run_docker_tool(docker: DockerBuild, base: str, label: str, warm: int, results: Results) -> None:
    docker.reset()
    first = _dockerfile(base, f"cold-{label}")
    s = docker.build(first)
    results.add("docker", "cold", s.wall, s.cpu)
    for _ in range(warm):
        s = docker.build(first)
        results.add("docker", "warm", s.wall, s.cpu)
    s = docker.build(_dockerfile(base, f"edit-{label}-{time.time_ns()}"))
    results.add("docker", "edit-last", s.wall, s.cpu)
    print(f"  docker {label}: cold {results.walls['docker', 'cold'][-1]:.3f}s, warm "
          f"{results.walls['docker', 'warm'][-1] * 1000:.1f}ms, edit-last {s.wall:.3f}s", file=sys.stderr)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _ms(x: float | None) -> str:
    return "–" if x is None else f"{x * 1000:.1f}"


def ratio_cells(results: Results) -> dict[str, str]:
    out = {}
    for scenario in SCENARIOS:
        r = _ratio(results.wall("llbook", scenario), results.wall("docker", scenario))
        ok = r is not None and r <= TARGETS[scenario]
        if scenario == "warm":
            ok = ok and (results.wall("llbook", "warm") or 1) * 1000 <= WARM_TARGET_MS
        out[scenario] = "–" if r is None else (f"{r:.2f}× ({_ms(results.wall('llbook', scenario))} ms)"
                                               + (" ✓" if ok else " ✗"))
    return out


def table(results: Results) -> str:
    rows = ["| cell (kernel round trip) | llbook wall (ms) | docker wall (ms) | wall ratio | llbook CPU (ms) "
            "| docker CPU (ms) | CPU ratio | target |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for scenario in ("warm", "warm -q", "edit-last", "cold"):
        docker_scenario = "warm" if scenario == "warm -q" else scenario
        lw, dw = results.wall("llbook", scenario), results.wall("docker", docker_scenario)
        lc, dc = results.cpu("llbook", scenario), results.cpu("docker", docker_scenario)
        target = {"warm": f"≤ {WARM_TARGET_MS:.0f} ms, ≤ 0.2×"}.get(scenario, f"≤ {TARGETS.get(scenario, '')}×"
                                                                    if scenario in TARGETS else "")
        rw, rc = _ratio(lw, dw), _ratio(lc, dc)
        rows.append(f"| {scenario} | {_ms(lw)} | {_ms(dw)} | {'–' if rw is None else f'{rw:.2f}×'} | {_ms(lc)} "
                    f"| {_ms(dc)} | {'–' if rc is None else f'{rc:.2f}×'} | {target} |")
    return "\n".join(rows)


def _kernel_env(workdir: Path, registry_host: str) -> dict[str, str]:
    from fixtures.registry_server import write_llbook_config
    config_dir = workdir / "llbook-config"
    config_dir.mkdir()
    path = write_llbook_config(config_dir / "llbook.toml", {"docker.io": {"mirrors": [registry_host]}})
    (config_dir / "docker").mkdir()
    env = dict(os.environ, LLBOOK_CONFIG=str(path), DOCKER_CONFIG=str(config_dir / "docker"),
               LLBOOK_CACHE_DIR=str(workdir / "cell-cache-0"), PYTHONPATH=str(ROOT))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def profile_warm(cell: CellTool, base: str, repeat: int, quiet: bool = False) -> str:
    """cProfile of ``repeat`` warm re-runs on the kernel's main thread (the display side)."""
    text = _dockerfile(base, "profiled")
    cell.build(text)
    cell.kernel.execute("import cProfile as _cp, pstats as _ps, io as _io\n_llbook_prof = _cp.Profile()")
    cell.kernel.execute("_llbook_prof.enable()")
    for _ in range(repeat):
        cell.build(text, quiet=quiet)
    report = cell.kernel.execute(
        "_llbook_prof.disable()\n_s = _io.StringIO()\n"
        f"_ps.Stats(_llbook_prof, stream=_s).sort_stats('cumtime').print_stats({PROFILE_FILTER!r}, 45)\n"
        "print(_s.getvalue())")
    solve = cell.kernel.execute(PROFILE_SOLVE.format(text=HEAD + text, repeat=repeat)) if not quiet else None
    empty = statistics.median(cell.kernel.execute("pass").wall for _ in range(repeat))
    return (report.text + (f"\n--- session.run_cell (the solve thread), {repeat} runs ---\n" + solve.text
                           if solve else "") + f"\nan empty cell's round trip: {empty * 1000:.1f} ms\n")


HEAD = "%%dockerfile\n"
PROFILE_FILTER = "kernel_ext|solver|graphviz|ipywidgets/widgets/widget.py"
PROFILE_SOLVE = """
import cProfile as _cp, pstats as _ps, io as _io
_p = _cp.Profile()
_sess = _llbook_state.session
for _ in range({repeat}):
    _p.enable()
    _sess.run_cell({text!r}.split("\\n", 1)[1], "bench-cell")
    _p.disable()
_s = _io.StringIO()
_ps.Stats(_p, stream=_s).sort_stats("cumtime").print_stats("kernel_ext|solver", 45)
print(_s.getvalue())
"""


def run(repeat: int, warm: int, profile: bool = False, with_docker: bool = True) -> Results:
    workdir = Path(tempfile.mkdtemp(prefix="llbook-bench-nb-", dir="/var/tmp"))
    server, base = push_busybox_base(workdir)
    kernel = docker = None
    results = Results()
    try:
        kernel = BenchKernel(_kernel_env(workdir, server.host), workdir)
        cell = CellTool(kernel, workdir)
        if profile:
            for quiet in (False, True):
                print(f"--- kernel main thread, {warm} warm re-runs{' -q' if quiet else ''} ---", file=sys.stderr)
                print(profile_warm(cell, base, warm, quiet), file=sys.stderr)
            return results
        docker = DockerBuild(workdir) if with_docker else None
        run_cell_tool(cell, base, "warmup", 1, Results())  # imports, first pull paths
        if docker is not None:
            run_docker_tool(docker, base, "warmup", 1, Results())
        tools = [("llbook", run_cell_tool, cell)] + ([("docker", run_docker_tool, docker)] if docker else [])
        for rep in range(repeat):
            for _, fn, tool in (tools if rep % 2 == 0 else tools[::-1]):
                fn(tool, base, f"#{rep + 1}", warm, results)
    finally:
        if kernel is not None:
            kernel.shutdown()
        if docker is not None:
            docker.stop()
        server.stop()
        subprocess.run(["rm", "-rf", "--one-file-system", str(workdir)], check=False)
    return results


def targets_row(repeat: int = 3) -> dict[str, str]:
    """The cell row of run_all.py's targets table: ratio and llbook's time per scenario."""
    return ratio_cells(run(repeat, 10))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="interleaved repetitions (cold, warm, edit-last)")
    parser.add_argument("--warm", type=int, default=10, help="warm re-runs per repetition")
    parser.add_argument("--profile", action="store_true", help="cProfile warm re-runs in the kernel, to stderr")
    parser.add_argument("--no-docker", action="store_true", help="llbook only")
    args = parser.parse_args(argv)
    results = run(args.repeat, args.warm, args.profile, not args.no_docker)
    if args.profile:
        return 0
    uname = os.uname()
    print(f"\n{time.strftime('%Y-%m-%d', time.gmtime())}; {os.cpu_count()} CPUs, Linux {uname.release}; "
          f"10-instruction cell (4 RUNs); medians of {args.repeat} interleaved repetitions "
          f"({args.warm} warm re-runs each)\n")
    print(table(results))
    for scenario, counts in results.messages.items():
        print(f"\niopub messages of one {scenario} cell: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
