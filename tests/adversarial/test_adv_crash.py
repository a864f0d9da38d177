"""Crash loops and concurrency in one cache dir: `kill -9` of `llbook build` in 5 rounds
during `RUN sleep` (and 2 more at an arbitrary early moment), then `llbook check`; three
builds at once in one cache dir, with a `llbook prune --all` beside them. Measured:
processes, mounts, bundle directories and runc containers left (orphans), corrupt entries
in `llbook check --no-repair`, builds that failed."""

from __future__ import annotations

import random
import signal
import subprocess
from pathlib import Path

import pytest

from adv_helpers import (LLBOOK, bundles, build, check_cache, containers_of, mounts_under, pids_with, repair,
                         report, wait_until, write)
from helpers_rootfs import unique_number

pytestmark = pytest.mark.root
GONE = 5.0  # the executor's promise: a dead build's RUN is gone within 5 s


def _start(adv, ctx: Path) -> subprocess.Popen:
    return subprocess.Popen([*LLBOOK, "build", "--progress", "plain", "--cache-dir", str(adv.cache), str(ctx)],
                            env=adv.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _leftovers(adv, markers: list[str], owners: list[int]) -> dict[str, int]:
    return {"processes": sum(len(pids_with(f"sleep {m}")) for m in markers), "mounts": mounts_under(adv.cache),
            "bundles": bundles(adv.tmp), "containers": containers_of(owners)}


def test_kill_9_loop_then_check_leaves_nothing(adv) -> None:
    markers, owners = [], []
    rng = random.Random(9)
    rounds = 7
    for round_ in range(rounds):
        marker = unique_number()
        markers.append(marker)
        ctx = write(adv.base / f"ctx{round_}" / "Dockerfile",
                    f"FROM busybox\nRUN echo round {round_} > /r\nRUN sleep {marker}\n").parent
        proc = _start(adv, ctx)
        owners.append(proc.pid)
        if round_ < 5:  # during the RUN
            assert wait_until(lambda: bool(pids_with(f"sleep {marker}")), 60), "the RUN did not start"
        else:  # somewhere earlier: start-up, frontend, pull, first RUN
            wait_until(lambda: proc.poll() is not None, rng.uniform(0.2, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    wait_until(lambda: _leftovers(adv, markers, owners)["processes"] == 0, GONE)
    before_check = _leftovers(adv, markers, owners)
    repaired = repair(adv.env, adv.cache)
    after_check = _leftovers(adv, markers, owners)
    corrupt, check = check_cache(adv.env, adv.cache)
    again, _ = build(adv.env, write(adv.base / "after" / "Dockerfile", "FROM busybox\nRUN echo after > /a\n").parent,
                     adv.cache)
    print(f"  before llbook check: {before_check}; after: {after_check}")
    report("kill -9 loop", f"{rounds} rounds of kill -9 of llbook build (5 during RUN sleep)",
           kills=rounds, orphans=sum(after_check.values()), processes_before_check=before_check["processes"],
           corrupt_entries=corrupt, next_build_ok=int(again.returncode == 0))
    assert before_check["processes"] == 0 and before_check["containers"] == 0, before_check
    assert after_check == {"processes": 0, "mounts": 0, "bundles": 0, "containers": 0}, (after_check, repaired.stdout)
    assert corrupt == 0, check.stdout
    assert again.returncode == 0, again.stderr


def test_three_builds_at_once_in_one_cache_dir(adv) -> None:
    shared = "RUN echo shared > /shared && sleep 1\n"
    procs, contexts = [], []
    for i in range(3):
        ctx = write(adv.base / f"ctx{i}" / "Dockerfile", f"FROM busybox\n{shared}RUN echo {i} > /mine\n"
                                                          f"COPY Dockerfile /df{i}\n").parent
        contexts.append(ctx)
    rounds = []
    for round_ in range(2):
        procs = [subprocess.Popen([*LLBOOK, "build", "--progress", "plain", "--cache-dir", str(adv.cache),
                                   *(["--no-cache"] if round_ else []), str(ctx)],
                                  env=adv.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for ctx in contexts]
        pruner = None
        if round_:  # a prune beside the builds: it must not take what they use
            pruner = subprocess.run([*LLBOOK, "prune", "--all", "--cache-dir", str(adv.cache)], env=adv.env,
                                    capture_output=True, text=True, timeout=120)
        results = [(p.wait(120), p.stderr.read()) for p in procs]
        rounds.append((results, pruner))
        for code, err in results:
            print(f"  round {round_}: exit {code} {err.strip().splitlines()[-1][-200:] if err.strip() else ''}")
    corrupt, check = check_cache(adv.env, adv.cache)
    leftovers = {"mounts": mounts_under(adv.cache), "bundles": bundles(adv.tmp)}
    failed = sum(1 for results, _ in rounds for code, _ in results if code != 0)
    report("concurrent builds", "2 rounds of 3 builds at once in one cache dir (the second with --no-cache "
                                "and a prune --all beside them)",
           builds=6, builds_failed=failed, corrupt_entries=corrupt, orphans=sum(leftovers.values()))
    for results, pruner in rounds:
        for code, err in results:
            assert code == 0, err[-3000:]
        assert pruner is None or pruner.returncode == 0, pruner.stderr
    assert corrupt == 0, check.stdout
    assert leftovers == {"mounts": 0, "bundles": 0}
