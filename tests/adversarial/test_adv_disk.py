"""A full disk: the cache dir on a small tmpfs (`mount -t tmpfs -o size=...`), nearly filled by
a file beside it. A RUN that overflows it, a RUN that fills it to the last byte and then
leaves llbook to commit, index and export on a full disk, and `llbook check` on a full disk;
then the filler is removed and the next small build must succeed. Measured: builds tried,
failures that were not one clear error line, tracebacks, corrupt entries."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from adv_helpers import build, check_cache, report, write

pytestmark = pytest.mark.root


def errors_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(("error:", "llbook: error:"))]


def fill(fs: Path, leave: int) -> Path:
    """A file in ``fs`` that leaves about ``leave`` bytes free."""
    filler = fs / "filler"
    free = shutil.disk_usage(fs).free
    with open(filler, "wb") as f:
        f.truncate(0)
        chunk = b"\0" * (1 << 20)
        remaining = max(free - leave, 0)
        while remaining > 0:
            f.write(chunk[:remaining])
            remaining -= min(remaining, len(chunk))
    return filler


def test_full_disk_gives_a_clear_error_and_the_next_build_succeeds(adv, small_tmpfs) -> None:
    fs = small_tmpfs("40m")
    cache = fs / "cache"
    warm, _ = build(adv.env, write(adv.base / "warm" / "Dockerfile", "FROM busybox\nRUN echo warm > /w\n").parent,
                    cache)
    assert warm.returncode == 0, warm.stderr
    filler = fill(fs, 4 << 20)
    attempts = {
        "overflow": "FROM busybox\nRUN dd if=/dev/zero of=/big bs=1M count=16\n",
        "fill-then-commit": "FROM busybox\nRUN (dd if=/dev/zero of=/big bs=64k || true) && echo filled\n"
                            "RUN echo after > /after\n",
        "fill-then-export": "FROM busybox\nRUN (dd if=/dev/zero of=/big2 bs=64k || true) && echo filled2\n",
    }
    outcomes = {}
    for name, text in attempts.items():
        ctx = write(adv.base / name / "Dockerfile", text).parent
        extra = ("--output", f"type=oci,dest={fs / 'out.tar'}") if name == "fill-then-export" else ()
        proc, _ = build(adv.env, ctx, cache, *extra)
        errors = errors_of(proc.stderr)
        outcomes[name] = (proc.returncode, errors, proc.stderr)
        print(f"  {name}: exit {proc.returncode} {errors[-1][-220:] if errors else ''}")
    full_corrupt, full_check = check_cache(adv.env, cache)  # check itself on a full disk
    os.unlink(filler)
    for leftover in (fs / "out.tar",):
        if leftover.exists():
            leftover.unlink()
    after, _ = build(adv.env, write(adv.base / "after" / "Dockerfile", "FROM busybox\nRUN echo small > /s\n").parent,
                     cache)
    corrupt, check = check_cache(adv.env, cache)
    unclear = [n for n, (code, errors, err) in outcomes.items()
               if "Traceback" in err or (code != 0 and len(errors) != 1)]
    report("full disk", f"{len(attempts)} builds on a 40 MiB tmpfs left with 4 MiB free, check on the full disk, "
                        "then one after freeing",
           hostile_inputs=len(attempts), unclear_failures=len(unclear),
           corrupt_entries=corrupt + full_corrupt, next_build_ok=int(after.returncode == 0))
    assert not unclear, {n: outcomes[n][2][-3000:] for n in unclear}
    assert outcomes["overflow"][0] == 1 and "No space left on device" in outcomes["overflow"][2]
    for name in ("fill-then-commit", "fill-then-export"):  # llbook's own writes hit the full disk
        code, errors, stderr = outcomes[name]
        assert code == 0 or ("no space left in the cache dir" in errors[0] and str(cache) in errors[0]), stderr
    assert "Traceback" not in full_check.stdout + full_check.stderr, full_check.stderr
    assert after.returncode == 0, after.stderr
    assert corrupt == 0 and full_corrupt == 0, (check.stdout, full_check.stdout)
