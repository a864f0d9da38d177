"""Helpers of the adversarial suite: `llbook` in a subprocess, `llbook check --no-repair`,
tree snapshots of sentinel directories, leftover counts, and the tally the README's
reliability figures are read from (printed at the end of the run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

LLBOOK = [sys.executable, "-m", "solver.cli"]
ROOT = Path(__file__).resolve().parents[2]
CORRUPT_LABELS = ("corrupt blob:", "missing blob:", "broken record:", "broken snapshot:")


@dataclass
class Tally:
    """Counts per area: what was tried and what was measured, summed over the run."""

    areas: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))

    def add(self, area: str, **counts: int) -> None:
        for key, value in counts.items():
            self.areas[area][key] += int(value)

    def total(self, key: str) -> int:
        return sum(counts.get(key, 0) for counts in self.areas.values())

    def lines(self) -> list[str]:
        out = [f"{area}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
               for area, counts in sorted(self.areas.items())]
        keys = ("hostile_inputs", "writes_outside", "corrupt_entries", "orphans", "secret_hits")
        out.append("TOTAL: " + ", ".join(f"{k} {self.total(k)}" for k in keys))
        return out


TALLY = Tally()


def report(area: str, tried: str, **measured: int) -> None:
    """Print what a test tried and what it measured, and add the counts to the tally."""
    print(f"[adversarial] {area}: tried {tried}; measured " +
          ", ".join(f"{k}={v}" for k, v in measured.items()))
    TALLY.add(area, **measured)


def env_for(registry_config, tmp: Path | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(registry_config.env)
    env["PYTHONPATH"] = str(ROOT)
    env["LLBOOK_SERVER"] = "0"
    if tmp is not None:
        tmp.mkdir(parents=True, exist_ok=True)
        env["TMPDIR"] = str(tmp)  # bundles of this test's builds land here, and only theirs
    env.update(extra)
    return env


def llbook(env: dict[str, str], *args: str, timeout: float = 120,
           input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*LLBOOK, *args], env=env, capture_output=True, text=True, timeout=timeout,
                          input=input)


def build(env: dict[str, str], context: Path, cache: Path, *extra: str,
          timeout: float = 120) -> tuple[subprocess.CompletedProcess, dict]:
    """`llbook build --progress plain` with a metadata file; returns the process and the metadata."""
    meta = context.parent / f"meta-{time.time_ns()}.json"
    proc = llbook(env, "build", "--progress", "plain", "--cache-dir", str(cache), "--metadata-file", str(meta),
                  *extra, str(context), timeout=timeout)
    data = json.loads(meta.read_text()) if meta.exists() else {}
    return proc, data


def check_cache(env: dict[str, str], cache: Path) -> tuple[int, subprocess.CompletedProcess]:
    """`llbook check --no-repair`: the number of corrupt entries it reports (0 when ok)."""
    proc = llbook(env, "check", "--no-repair", "--cache-dir", str(cache))
    corrupt = sum(1 for line in proc.stdout.splitlines() if line.startswith(CORRUPT_LABELS))
    if proc.returncode != 0 and corrupt == 0:
        corrupt = 1  # not ok, and not by a listed entry: count it, never hide it
    return corrupt, proc


def repair(env: dict[str, str], cache: Path) -> subprocess.CompletedProcess:
    return llbook(env, "check", "--cache-dir", str(cache))


def tree(path: Path) -> dict[str, tuple]:
    """Every entry below ``path`` (never following links): type, mode, size, mtime, content."""
    found: dict[str, tuple] = {}
    for dirpath, dirs, files in os.walk(path, followlinks=False):
        for name in [*dirs, *files]:
            full = Path(dirpath, name)
            st = full.lstat()
            if full.is_symlink():
                content: object = os.readlink(full)
            elif full.is_file():
                content = full.read_bytes()
            else:
                content = None
            found[str(full.relative_to(path))] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_nlink, content)
    return found


def changed_entries(before: dict[str, tuple], after: dict[str, tuple]) -> int:
    """How many entries were added, removed or changed between two `tree` snapshots."""
    return sum(1 for key in before.keys() | after.keys() if before.get(key) != after.get(key))


def mounts_under(root: Path) -> int:
    prefix = str(root).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        return sum(1 for line in f if line.split()[4].startswith(prefix))


def bundles(tmp: Path) -> int:
    return sum(1 for p in os.listdir(tmp) if p.startswith("llbook-bundle-")) if tmp.exists() else 0


def pids_with(text: str) -> list[int]:
    """Processes whose command line contains ``text`` (a unique marker)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                raw = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in raw.replace(b"\0", b" "):
                found.append(int(entry))
    return found


def wait_until(predicate, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def containers_of(owners: list[int]) -> int:
    """runc containers (any installed runtime) of these llbook build pids: ids llbook-<pid>-..."""
    from solver.executor.runc import runtime_commands
    count = 0
    for runc in runtime_commands():
        out = subprocess.run([*runc, "list", "--format", "json"], capture_output=True, text=True, timeout=30)
        ids = [c["id"] for c in json.loads(out.stdout or "null") or []]
        count += sum(1 for i in ids for owner in owners if i.startswith(f"llbook-{owner}-"))
    return count


def host_disk() -> tuple[int, int]:
    """major, minor of the machine's first block device (/proc/partitions)."""
    for line in Path("/proc/partitions").read_text().splitlines()[2:]:
        fields = line.split()
        if len(fields) == 4:
            return int(fields[0]), int(fields[1])
    return 8, 0


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def one_line_error(stderr: str) -> str:
    """The error line(s) of a failed build's stderr (no progress lines)."""
    return "\n".join(line for line in stderr.splitlines()
                     if "error" in line.lower() and not line.startswith("#"))
