"""Build history (solver.history, `llbook history`): records of real `llbook build` runs in
subprocesses (each a new process: the history survives restarts), inspect's step counts,
logs, diff naming the changed context file and RUN line, rm, export, prune keep-count/age."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from solver.history import HistoryStore, load

pytestmark = pytest.mark.root

if os.geteuid() != 0:
    pytest.skip("llbook build with runc needs root here", allow_module_level=True)

LLBOOK = [sys.executable, "-m", "solver.cli"]
ROOT = Path(__file__).resolve().parents[1]


def _env(registry_config) -> dict[str, str]:
    env = dict(os.environ)
    env.update(registry_config.env)
    env["PYTHONPATH"] = str(ROOT)
    env["LLBOOK_SERVER"] = "0"
    return env


def llbook(registry_config, *words: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*LLBOOK, *words], env=_env(registry_config), capture_output=True, text=True,
                          timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"llbook {' '.join(words)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


DOCKERFILE = ("FROM busybox\n"
              "ARG GREETING=hi\n"
              "RUN echo base > /base\n"
              "COPY app/ /srv/\n"
              "RUN cat /srv/main.txt && echo {last} > /last\n")


@pytest.fixture
def built(registry_config, tmp_path: Path) -> tuple[Path, Path]:
    """Two builds in one cache dir: the second changes app/main.txt, adds app/new.txt and edits the last RUN."""
    ctx, cache = tmp_path / "ctx", tmp_path / "cache"
    write(ctx / "app" / "main.txt", "main v1\n")
    write(ctx / "app" / "other.txt", "other\n")
    write(ctx / "Dockerfile", DOCKERFILE.format(last="one"))
    llbook(registry_config, "build", "--progress", "plain", "--cache-dir", str(cache), str(ctx))
    write(ctx / "app" / "main.txt", "main v2\n")
    write(ctx / "app" / "new.txt", "new\n")
    write(ctx / "Dockerfile", DOCKERFILE.format(last="two"))
    llbook(registry_config, "build", "--progress", "plain", "--cache-dir", str(cache),
           "--build-arg", "GREETING=hello", str(ctx))
    return ctx, cache


def test_ls_inspect_logs_and_diff(registry_config, built: tuple[Path, Path]):
    ctx, cache = built
    records = HistoryStore.of(cache).records()
    assert len(records) == 2
    ls = llbook(registry_config, "history", "ls", "--cache-dir", str(cache)).stdout
    assert records[0].ref in ls and records[1].ref in ls and "completed" in ls
    assert ls.index(records[0].ref) < ls.index(records[1].ref)  # latest first

    inspect = llbook(registry_config, "history", "inspect", "--cache-dir", str(cache), records[0].ref).stdout
    steps = [s for s in records[0].steps if s.kind != "local"]
    cached = sum(1 for s in steps if s.status == "cached")
    assert 0 < cached < len(steps)  # the FROM cached; the RUNs see GREETING=hello, the COPY new files
    assert f"Build Steps:    {cached}/{len(steps)} ({100 * cached // len(steps)}% cached)" in inspect
    assert "docker-image://" in inspect.split("Materials:")[1]
    assert "GREETING=hello" in inspect
    first = llbook(registry_config, "history", "inspect", "--cache-dir", str(cache), "^1").stdout
    assert f"Ref:            {records[1].ref}" in first and "0% cached" in first

    logs = llbook(registry_config, "history", "logs", "--cache-dir", str(cache), records[0].ref).stdout
    assert "main v2" in logs  # the last RUN's output

    diff = llbook(registry_config, "history", "diff", "--cache-dir", str(cache)).stdout
    assert diff == llbook(registry_config, "history", "diff", "--cache-dir", str(cache), "^1", "^0").stdout
    assert diff == llbook(registry_config, "history", "diff", "--cache-dir", str(cache),
                          records[1].ref, records[0].ref).stdout
    assert "+app/new.txt" in diff and "~app/main.txt" in diff and "app/other.txt" not in diff
    assert "command changed: /bin/sh -c cat /srv/main.txt && echo one > /last → " \
           "/bin/sh -c cat /srv/main.txt && echo two > /last" in diff
    assert "args changed: +GREETING=hello" in diff
    assert "env changed: GREETING: hi → hello" in diff  # build args reach every RUN's env, as in BuildKit
    assert "step [1/4]" not in diff  # the FROM is unchanged: unchanged steps are not listed
    assert load(cache, "^0").result_digest == records[0].result_digest
    assert records[0].result_digest.startswith("sha256:")


def test_rm_export_and_prune(registry_config, built: tuple[Path, Path], tmp_path: Path):
    ctx, cache = built
    store = HistoryStore.of(cache)
    newest, oldest = store.records()
    out = tmp_path / "rec.json"
    llbook(registry_config, "history", "export", "--cache-dir", str(cache), newest.ref, "-o", str(out))
    assert json.loads(out.read_text())["ref"] == newest.ref
    tar_path = tmp_path / "rec.tar"
    llbook(registry_config, "history", "export", "--cache-dir", str(cache), "^0", "-o", str(tar_path))
    with tarfile.open(tar_path) as tar:
        names = tar.getnames()
        assert f"{newest.ref}/record.json" in names
        assert b"main v2" in tar.extractfile(f"{newest.ref}/logs.txt").read()

    # keep-count: of three records, --keep-history 2 removes the oldest
    llbook(registry_config, "build", "--progress", "quiet", "--cache-dir", str(cache), str(ctx))
    assert len(store.records()) == 3
    pruned = llbook(registry_config, "prune", "--cache-dir", str(cache), "--keep-storage", "100GB",
                    "--keep-history", "2").stdout
    assert f"removed build record {oldest.ref}" in pruned
    assert [r.ref for r in store.records()][1] == newest.ref and len(store.records()) == 2
    # keep-age: records older than the given age go (their times are set back by a day)
    for record in store.records()[1:]:
        record.started -= 86400
        record.completed -= 86400
        store.save(record)
    llbook(registry_config, "prune", "--cache-dir", str(cache), "--keep-storage", "100GB",
           "--keep-history-age", "12h")
    assert [r.ref for r in store.records()] != [] and newest.ref not in [r.ref for r in store.records()]
    assert len(store.records()) == 1

    left = store.records()[0].ref
    assert llbook(registry_config, "history", "rm", "--cache-dir", str(cache), left).stdout.strip() == f"removed {left}"
    assert store.records() == []
    bad = llbook(registry_config, "history", "inspect", "--cache-dir", str(cache), left, check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("llbook: error: no build record")
    assert "Traceback" not in bad.stderr


def test_failed_build_is_recorded_without_secrets(registry_config, tmp_path: Path):
    ctx, cache = tmp_path / "ctx", tmp_path / "cache"
    secret = write(tmp_path / "token", "s3cr3t-value\n")
    write(ctx / "Dockerfile", "FROM busybox\nRUN --mount=type=secret,id=tok test -s /run/secrets/tok && "
                              "echo about to fail && exit 3\n")
    proc = llbook(registry_config, "build", "--progress", "plain", "--cache-dir", str(cache),
                  "--secret", f"id=tok,src={secret}", str(ctx), check=False)
    assert proc.returncode == 1
    record = load(cache)
    assert record.status == "failed" and "exit code: 3" in (record.error or "")
    assert [s.status for s in record.steps if s.name.startswith("[2/2]")] == ["failed"]
    assert record.secrets == ["tok"]
    raw = (cache / "history" / f"{record.ref}.json").read_text() + HistoryStore.of(cache).logs(record.ref).decode()
    assert "about to fail" in raw and "s3cr3t-value" not in raw and str(secret) not in raw


def test_store_refs_and_atomic_files(tmp_path: Path):
    from solver.history import BuildRecord, HistoryError
    store = HistoryStore.of(tmp_path)
    for i in range(3):
        store.save(BuildRecord(f"ref{i}abc", "dockerfile", "ctx", started=1000.0 + i, completed=1001.0 + i))
    assert store.resolve("^0").ref == "ref2abc" and store.resolve("^2").ref == "ref0abc"
    assert store.resolve("ref1").ref == "ref1abc"
    with pytest.raises(HistoryError, match="names 3 records"):
        store.resolve("ref")
    with pytest.raises(HistoryError, match="there are 3 build records"):
        store.resolve("^3")
    assert sorted(p.name for p in store.root.iterdir()) == ["ref0abc.json", "ref1abc.json", "ref2abc.json"]
    (store.root / "broken.json").write_text("{not json")
    assert len(store.records()) == 3
    removed = store.prune(keep_count=10, keep_age=3600, now=1002.5 + 3600)
    assert [r.ref for r in removed] == ["ref1abc", "ref0abc"]


def test_the_gc_after_each_build_reads_records_only_when_it_may_remove_one(tmp_path: Path):
    from solver.history import BuildRecord
    store = HistoryStore.of(tmp_path)
    now = time.time()
    for i in range(3):  # built a day ago, files written just now
        store.save(BuildRecord(f"gc{i}", "notebook", "cell 1", started=now - 86400 + i, completed=now - 86400 + i))
    assert store.collect(keep_count=3, keep_age=3600) == []  # the listing: 3 files, all recent
    assert [r.ref for r in store.collect(keep_count=2, keep_age=7 * 86400)] == ["gc0"]  # one too many
    os.utime(store.root / "gc1.json", (now - 7200, now - 7200))  # a file as old as its record
    assert [r.ref for r in store.collect(keep_count=2, keep_age=3600)] == ["gc2", "gc1"]  # then every old one goes
    assert store.records() == []
