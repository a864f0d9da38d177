"""CacheStore: the SQLite index, leases, prune, check, locks; with real processes."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from solver.cache.gc import BlobUnitInfo, RecordInfo, SizeError, format_size, parse_size, plan_prune
from solver.cache.locking import CacheSharing, FileLock, LockTimeout, ProcessId, pid_alive
from solver.cache.records import MissingContentError, Record, RecordNotFoundError
from solver.cache.store import CacheStore
from solver.errors import LLBookError

SPAWN = multiprocessing.get_context("spawn")


# --- a small real snapshot directory store used by the tests -------------------------
# Each snapshot is snapshots/<id>/ with a payload file and a MANIFEST holding its sha256;
# it is written under tmp/ and renamed into place, like a snapshotter commit.

def commit_snapshot(cache_dir: Path, payload: bytes) -> str:
    snap_id = uuid.uuid4().hex
    work = cache_dir / "tmp" / f"snap-{os.getpid()}-{snap_id}"
    work.mkdir(parents=True)
    (work / "payload").write_bytes(payload)
    (work / "MANIFEST").write_text(hashlib.sha256(payload).hexdigest())
    for name in ("payload", "MANIFEST"):
        with open(work / name, "rb") as f:
            os.fsync(f.fileno())
    os.rename(work, cache_dir / "snapshots" / snap_id)
    return snap_id


def verify_snapshot_in(cache_dir: Path):
    def verify(snap_id: str) -> bool:
        d = cache_dir / "snapshots" / snap_id
        try:
            payload = (d / "payload").read_bytes()
            return hashlib.sha256(payload).hexdigest() == (d / "MANIFEST").read_text()
        except FileNotFoundError:
            return False
    return verify


def remove_snapshot_in(cache_dir: Path):
    def remove(snap_id: str) -> None:
        d = cache_dir / "snapshots" / snap_id
        if d.exists():
            trash = cache_dir / "tmp" / f"trash-{os.getpid()}-{uuid.uuid4().hex}"
            os.rename(d, trash)
            shutil.rmtree(trash)
    return remove


def list_snapshots_in(cache_dir: Path):
    def list_ids() -> list[str]:
        return sorted(p.name for p in (cache_dir / "snapshots").iterdir())
    return list_ids


def rec(key: str, snapshot: str | None = None, size: int = 0, last_used: float = 0.0, **kw) -> Record:
    return Record(cache_key=key, vertex_digest="sha256:" + hashlib.sha256(key.encode()).hexdigest(),
                  op_kind=kw.pop("op_kind", "exec"), name=kw.pop("name", f"RUN {key}"),
                  snapshot=snapshot, size=size, last_used=last_used, **kw)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def store(cache_dir: Path) -> Iterator[CacheStore]:
    s = CacheStore(cache_dir)
    yield s
    s.close()


# --- records and places ----------------------------------------------------------------

def test_layout_and_wal(store: CacheStore, cache_dir: Path) -> None:
    for name in ["index.db", "blobs/sha256", "snapshots", "tmp", "cachemounts", "locks"]:
        assert (cache_dir / name).exists()
    conn = sqlite3.connect(cache_dir / "index.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_put_lookup_roundtrip(store: CacheStore, cache_dir: Path) -> None:
    snap = commit_snapshot(cache_dir, b"rootfs")
    blob = store.content.write_bytes(b"config")
    record = rec("k1", snap, size=6, duration=1.5, key_inputs={"op": "sha256:aa", "inputs": [["k0", ""]]},
                 extra={"config": {"Env": ["A=1"]}}, parents=("p1",), blobs=(blob,), output_index=0)
    store.put(record)
    found = store.lookup("k1")
    assert found is not None
    assert (found.snapshot, found.size, found.duration, found.parents, found.blobs) == (snap, 6, 1.5, ("p1",), (blob,))
    assert found.key_inputs == {"op": "sha256:aa", "inputs": [["k0", ""]]}
    assert found.extra == {"config": {"Env": ["A=1"]}}
    assert store.lookup("missing") is None
    assert store.blob(blob).referenced_by == ("k1",)
    assert [r.cache_key for r in store.records_for_vertex(record.vertex_digest)] == ["k1"]


def test_lookup_touches_last_used_but_get_does_not(store: CacheStore) -> None:
    store.put(rec("k", last_used=100.0))
    assert store.get("k").last_used == 100.0
    before = time.time()
    assert store.lookup("k").last_used >= before
    assert store.get("k").last_used >= before


def test_put_replaces_same_key(store: CacheStore) -> None:
    store.put(rec("k", "s1", size=1))
    store.put(rec("k", "s2", size=2))
    assert [(r.snapshot, r.size) for r in store.records()] == [("s2", 2)]


def test_put_refuses_blob_not_committed(store: CacheStore) -> None:
    missing = "sha256:" + "ab" * 32
    with pytest.raises(MissingContentError) as info:
        store.put(rec("k", blobs=(missing,)))
    assert isinstance(info.value, LLBookError)
    assert store.get("k") is None
    with pytest.raises(MissingContentError):
        store.put(rec("k", blobs=("not-a-digest",)))


def test_index_persists_across_instances(cache_dir: Path) -> None:
    with CacheStore(cache_dir) as a:
        a.put(rec("k", None, extra={"config": {"Cmd": ["sh"]}}), place="cell1/stage0/step1")
    with CacheStore(cache_dir) as b:
        assert b.lookup("k").extra == {"config": {"Cmd": ["sh"]}}
        assert b.last_at_place("cell1/stage0/step1").cache_key == "k"


def test_places_track_latest_key_and_survive_prune(store: CacheStore) -> None:
    store.put(rec("old", key_inputs={"cmd": "echo 1"}), place="s/0")
    store.put(rec("new", key_inputs={"cmd": "echo 2"}))
    assert store.last_at_place("s/0").key_inputs == {"cmd": "echo 1"}
    store.set_place("s/0", "new")
    assert store.last_at_place("s/0").cache_key == "new"
    assert store.last_at_place("nowhere") is None
    with pytest.raises(RecordNotFoundError):
        store.set_place("s/1", "unknown")
    store.prune(all=True, remove_snapshot=lambda s: None)
    assert store.get("new") is None
    gone = store.last_at_place("s/0")  # still answers "why rebuilt" from the copy
    assert gone is not None and gone.key_inputs == {"cmd": "echo 2"}
    assert store.places() == {"s/0": "new"}


def test_add_blob_and_media_type(store: CacheStore) -> None:
    digest = store.content.write_bytes(b"layer bytes")
    entry = store.add_blob(digest, "application/vnd.oci.image.layer.v1.tar")
    assert (entry.size, entry.media_type, entry.referenced_by) == (11, "application/vnd.oci.image.layer.v1.tar", ())
    with pytest.raises(MissingContentError):
        store.add_blob("sha256:" + "00" * 32)


# --- du and prune ----------------------------------------------------------------------

def test_du_reports_records_blobs_shared_and_in_use(store: CacheStore, cache_dir: Path) -> None:
    blob = store.content.write_bytes(b"x" * 10)
    store.put(rec("a", "snapA", size=100, blobs=(blob,)))
    store.put(rec("b", "snapA", size=100, blobs=(blob,)))  # same result under two keys
    store.put(rec("c", "snapC", size=7))
    with store.lease() as lease:
        store.lookup("c", lease=lease)
        usage = {(e.kind, e.key): e for e in store.du()}
    assert usage[("record", "a")].shared and usage[("record", "b")].shared
    assert not usage[("record", "c")].shared and usage[("record", "c")].in_use
    assert usage[("blob", blob)].shared and usage[("blob", blob)].size == 10
    assert store.total_size() == 100 + 7 + 10
    assert not any(e.in_use for e in store.du())


def test_prune_lru_until_keep_storage(store: CacheStore, cache_dir: Path) -> None:
    removed_snaps: list[str] = []
    for i, t in enumerate([10.0, 30.0, 20.0, 40.0]):
        store.put(rec(f"k{i}", f"s{i}", size=1000, last_used=t))
    report = store.prune("2.5kB", remove_snapshot=removed_snaps.append)
    assert [e.key for e in report.removed] == ["k0", "k2"]  # least recently used first
    assert removed_snaps == ["s0", "s2"]
    assert (report.total_before, report.total_after, report.reclaimed) == (4000, 2000, 2000)
    assert sorted(r.cache_key for r in store.records()) == ["k1", "k3"]
    # already under the limit: nothing more
    assert store.prune(2000, remove_snapshot=removed_snaps.append).removed == []


def test_prune_keep_duration(store: CacheStore) -> None:
    now = time.time()
    store.put(rec("old", "s-old", size=1, last_used=now - 3600))
    store.put(rec("fresh", "s-new", size=1, last_used=now - 10))
    report = store.prune(keep_duration=600, remove_snapshot=lambda s: None, now=now)
    assert [e.key for e in report.removed] == ["old"]
    assert store.get("fresh") is not None


def test_prune_never_removes_leased(store: CacheStore) -> None:
    store.put(rec("held", "s1", size=5, last_used=1.0))
    store.put(rec("free", "s2", size=5, last_used=2.0))
    store.put(rec("snap-held", "s3", size=5, last_used=1.0))
    lease = store.lease("test build")
    store.lookup("held", lease=lease)
    lease.add_snapshot("s3")
    report = store.prune(all=True, remove_snapshot=lambda s: None)
    assert [e.key for e in report.removed] == ["free"]
    assert report.kept_in_use == 2
    lease.release()
    assert sorted(e.key for e in store.prune(all=True, remove_snapshot=lambda s: None).removed) == ["held", "snap-held"]


def _leave_stale_lease(cache_dir: str) -> int:
    store = CacheStore(Path(cache_dir))
    lease = store.lease("dies without releasing")
    store.lookup("k", lease=lease)
    return os.getpid()


def test_stale_lease_of_dead_process_is_ignored(store: CacheStore, cache_dir: Path) -> None:
    store.put(rec("k", "s", size=1))
    with SPAWN.Pool(1) as pool:
        dead_pid = pool.apply(_leave_stale_lease, (str(cache_dir),))
    deadline = time.time() + 10
    while pid_alive(dead_pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not pid_alive(dead_pid)
    assert not any(e.in_use for e in store.du())  # a dead owner's lease holds nothing
    report = store.prune(all=True, remove_snapshot=lambda s: None)
    assert [e.key for e in report.removed] == ["k"]
    assert report.stale_leases_removed == 1


def test_prune_shared_snapshot_removed_once_and_blobs_cascade(store: CacheStore) -> None:
    calls: list[str] = []
    blob = store.content.write_bytes(b"layer")
    store.put(rec("a", "S", size=50, blobs=(blob,), last_used=1.0))
    store.put(rec("b", "S", size=50, last_used=2.0))
    report = store.prune(all=True, remove_snapshot=calls.append)
    assert calls == ["S"]
    assert sorted(e.key for e in report.removed) == sorted(["a", "b", blob])
    assert not store.content.has(blob)
    assert report.reclaimed == 55


def test_prune_keeps_parents_of_remaining_records(store: CacheStore) -> None:
    calls: list[str] = []
    store.put(rec("base", "S0", size=100, last_used=1.0))
    store.put(rec("child", "S1", size=10, last_used=5.0, parents=("S0",)))
    assert [e.key for e in store.prune(105, remove_snapshot=lambda s: None).removed] == ["child"]
    store.put(rec("child", "S1", size=10, last_used=5.0, parents=("S0",)))
    report = store.prune(50, remove_snapshot=calls.append)
    # base is older but the child's snapshot needs it: the child goes first, then base
    assert [e.key for e in report.removed] == ["child", "base"]
    assert calls == ["S1", "S0"]
    store.put(rec("base", "S0", size=100, last_used=1.0))
    store.put(rec("child", "S1", size=10, last_used=5.0, parents=("S0",)))
    with store.lease() as lease:
        store.lookup("child", lease=lease)
        report = store.prune(all=True, remove_snapshot=calls.append)
        assert report.removed == []  # leased child keeps its parent alive


def test_prune_failed_removal_is_retried(store: CacheStore, cache_dir: Path) -> None:
    snap = commit_snapshot(cache_dir, b"data")
    store.put(rec("k", snap, size=4))

    def failing(snap_id: str) -> None:
        raise OSError("device busy")

    report = store.prune(all=True, remove_snapshot=failing)
    assert report.errors and "device busy" in report.errors[0]
    assert store.get("k") is None  # unindexed first
    assert (cache_dir / "snapshots" / snap).exists()
    store.prune(all=True, remove_snapshot=remove_snapshot_in(cache_dir))
    assert not (cache_dir / "snapshots" / snap).exists()


def test_pending_removal_not_done_if_snapshot_reused(store: CacheStore, cache_dir: Path) -> None:
    snap = commit_snapshot(cache_dir, b"data")
    store.put(rec("k", snap, size=4))
    store.prune(all=True, remove_snapshot=lambda s: (_ for _ in ()).throw(OSError("later")))
    store.put(rec("k2", snap, size=4))  # the same snapshot indexed again before the retry
    report = store.check(verify_snapshot=verify_snapshot_in(cache_dir), remove_snapshot=remove_snapshot_in(cache_dir))
    assert report.ok
    assert (cache_dir / "snapshots" / snap).exists()


# --- check -----------------------------------------------------------------------------

def test_check_clean_store_is_ok(store: CacheStore, cache_dir: Path) -> None:
    snap = commit_snapshot(cache_dir, b"fs")
    store.put(rec("k", snap, blobs=(store.content.write_bytes(b"b"),)))
    report = store.check(verify_snapshot=verify_snapshot_in(cache_dir))
    assert report.ok and report.records_checked == 1 and report.blobs_checked == 1
    assert store.get("k") is not None


def test_check_finds_and_removes_corrupt_blob(store: CacheStore, cache_dir: Path) -> None:
    blob = store.content.write_bytes(b"good bytes")
    store.put(rec("uses-blob", None, blobs=(blob,)))
    path = store.content.path(blob)
    os.chmod(path, 0o644)
    path.write_bytes(b"bit rot!!!")
    report = store.check(verify_snapshot=verify_snapshot_in(cache_dir))
    assert not report.ok
    assert report.corrupt_blobs == [blob] and report.broken_records == ["uses-blob"]
    assert store.get("uses-blob") is None and store.blob(blob) is None and not store.content.has(blob)
    assert store.check(verify_snapshot=verify_snapshot_in(cache_dir)).ok


def test_check_finds_missing_blob_and_broken_snapshot(store: CacheStore, cache_dir: Path) -> None:
    blob = store.content.write_bytes(b"b")
    store.put(rec("blobbed", None, blobs=(blob,)))
    good = commit_snapshot(cache_dir, b"ok")
    bad = commit_snapshot(cache_dir, b"will be damaged")
    store.put(rec("good", good))
    store.put(rec("bad", bad))
    store.put(rec("gone", "never-existed"))
    store.content.delete(blob)
    (cache_dir / "snapshots" / bad / "payload").write_bytes(b"damaged")
    report = store.check(verify_snapshot=verify_snapshot_in(cache_dir),
                         remove_snapshot=remove_snapshot_in(cache_dir), repair=False)
    assert report.missing_blobs == [blob]
    assert sorted(report.broken_records) == ["bad", "blobbed", "gone"]
    assert store.get("bad") is not None  # report only
    report = store.check(verify_snapshot=verify_snapshot_in(cache_dir), remove_snapshot=remove_snapshot_in(cache_dir))
    assert sorted(report.broken_snapshots) == sorted([bad, "never-existed"])
    assert [r.cache_key for r in store.records()] == ["good"]
    assert not (cache_dir / "snapshots" / bad).exists()
    assert store.check(verify_snapshot=verify_snapshot_in(cache_dir)).ok


def _start_blob_write_and_die(cache_dir: str) -> int:
    store = CacheStore(Path(cache_dir))
    w = store.content.writer()
    w.write(b"half a layer")
    os._exit(0)  # no cleanup: the tmp file stays


def test_check_removes_orphans(store: CacheStore, cache_dir: Path) -> None:
    proc = SPAWN.Process(target=_start_blob_write_and_die, args=(str(cache_dir),))
    proc.start()
    proc.join(30)
    assert len(list(store.content.tmp_files())) == 1
    orphan_blob = store.content.write_bytes(b"written but never indexed")
    leased_blob = store.content.write_bytes(b"being pulled right now")
    orphan_snap = commit_snapshot(cache_dir, b"committed, never indexed")
    used_snap = commit_snapshot(cache_dir, b"indexed")
    store.put(rec("k", used_snap))
    with store.lease() as lease:
        lease.add_blob(leased_blob)
        with store.content.writer() as live:  # our own in-flight write must survive
            live.write(b"in flight")
            report = store.check(verify_snapshot=verify_snapshot_in(cache_dir),
                                 remove_snapshot=remove_snapshot_in(cache_dir),
                                 list_snapshots=list_snapshots_in(cache_dir), orphan_grace=0)
            assert live.tmp_path.exists()
    assert report.ok
    assert len(report.orphan_tmp_removed) == 1
    assert report.orphan_blobs_removed == [orphan_blob]
    assert report.orphan_snapshots_removed == [orphan_snap]
    assert store.content.has(leased_blob)
    assert list_snapshots_in(cache_dir)() == [used_snap]


def test_check_orphan_grace_protects_recent_blobs(store: CacheStore, cache_dir: Path) -> None:
    fresh = store.content.write_bytes(b"just written")
    report = store.check(verify_snapshot=verify_snapshot_in(cache_dir))
    assert report.orphan_blobs_removed == [] and store.content.has(fresh)


# --- sizes and the pure prune policy ---------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("10GB", 10 * 10**9), ("512MB", 512 * 10**6), ("1.5GiB", int(1.5 * 2**30)), ("100", 100),
    ("2kB", 2000), ("3KiB", 3072), ("512m", 512 * 2**20), ("1g", 2**30), (" 7 MiB ", 7 * 2**20),
    ("0", 0), (4096, 4096), ("0.5TB", 5 * 10**11), ("12B", 12),
])
def test_parse_size(text, expected) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "GB", "10XB", "-1GB", "1.2.3MB", "ten", -5])
def test_parse_size_rejects(bad) -> None:
    with pytest.raises(SizeError):
        parse_size(bad)


def test_format_size() -> None:
    assert format_size(0) == "0B"
    assert format_size(1536) == "1.5KiB"
    assert format_size(10 * 2**20) == "10MiB"
    assert format_size(3 * 2**40) == "3TiB"


def test_plan_prune_units_and_order() -> None:
    records = [RecordInfo("a", "S", 10, 5.0), RecordInfo("b", "S", 10, 1.0),
               RecordInfo("m", None, 0, 0.5), RecordInfo("c", "T", 20, 2.0, blobs=("sha256:x",))]
    blobs = [BlobUnitInfo("sha256:x", 7, 9.0), BlobUnitInfo("sha256:y", 3, 0.1)]
    plan = plan_prune(records, blobs, keep_storage=15, now=100.0)
    assert plan.total_before == 10 + 0 + 20 + 7 + 3
    # y (0.1), m (0.5), T (2.0) frees x, then S (last used 5.0) -> 0; stop at <= 15
    assert plan.blobs[0] == "sha256:y"
    assert plan.records[:2] == ["m", "c"]
    assert plan.snapshots[0] == "T"
    assert plan.total_after <= 15
    none = plan_prune(records, blobs, keep_storage=1000, now=100.0)
    assert none.records == [] and none.blobs == [] and none.reclaimed == 0


def test_plan_prune_in_use_and_parents() -> None:
    records = [RecordInfo("base", "B", 100, 1.0), RecordInfo("leaf", "L", 1, 2.0, parents=("B",), in_use=True)]
    plan = plan_prune(records, [], now=10.0)
    assert plan.records == [] and plan.total_after == 101


# --- locks -----------------------------------------------------------------------------

def test_file_lock_conflicts_in_process_and_times_out(tmp_path: Path) -> None:
    a = FileLock(tmp_path / "x.lock")
    b = FileLock(tmp_path / "x.lock")
    assert a.acquire()
    assert not b.acquire(blocking=False)
    with pytest.raises(LockTimeout):
        b.acquire(timeout=0.2)
    a.release()
    assert b.acquire(blocking=False)
    b.release()
    s1, s2 = FileLock(tmp_path / "y.lock", shared=True), FileLock(tmp_path / "y.lock", shared=True)
    assert s1.acquire(blocking=False) and s2.acquire(blocking=False)
    assert not FileLock(tmp_path / "y.lock").acquire(blocking=False)
    s1.release()
    s2.release()


def _hold_lock(path: str, seconds: float, started, releasing=None) -> None:
    lock = FileLock(Path(path))
    lock.acquire()
    started.set()
    time.sleep(seconds)
    if releasing is not None:
        releasing.set()
    lock.release(unlink=True)


def test_lock_waiter_survives_holder_unlinking_file(tmp_path: Path) -> None:
    path = tmp_path / "k.lock"
    started, releasing = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=_hold_lock, args=(str(path), 0.5, started, releasing))
    holder.start()
    assert started.wait(30)
    waiter = FileLock(path)
    assert waiter.acquire(timeout=30)
    assert releasing.is_set()  # the waiter got the lock only after the holder let it go
    assert path.exists()  # re-created: a third party would now conflict with us
    assert not FileLock(path).acquire(blocking=False)
    waiter.release()
    holder.join(10)


def test_lock_released_when_holder_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "k.lock"
    started = SPAWN.Event()
    holder = SPAWN.Process(target=_hold_lock, args=(str(path), 600, started))
    holder.start()
    assert started.wait(30)
    assert not FileLock(path).acquire(blocking=False)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    assert FileLock(path).acquire(timeout=10)


def _build_once(cache_dir: str, key: str, log: str) -> str:
    store = CacheStore(Path(cache_dir))
    with store.lease() as lease, store.building(key, lease=lease) as found:
        if found is not None:
            return "cached"
        with open(log, "a") as f:
            f.write(f"{os.getpid()} built\n")
        time.sleep(0.3)  # slow build: the others must wait, not build too
        snap = commit_snapshot(Path(cache_dir), key.encode())
        store.put(rec(key, snap, size=3), lease=lease)
    return "built"


def test_same_vertex_built_once_across_processes(cache_dir: Path, tmp_path: Path) -> None:
    CacheStore(cache_dir).close()
    log = tmp_path / "builds.log"
    with SPAWN.Pool(4) as pool:
        results = pool.starmap(_build_once, [(str(cache_dir), "shared-key", str(log))] * 4)
    assert sorted(results) == ["built", "cached", "cached", "cached"]
    assert len(log.read_text().splitlines()) == 1
    assert [p.name for p in (cache_dir / "locks").iterdir() if p.name.startswith("key-")] == []


def _use_mount(cache_dir: str, mount_id: str, sharing: int, hold: float, out) -> None:
    store = CacheStore(Path(cache_dir))
    with store.open_cache_mount(mount_id, sharing, timeout=30) as handle:
        t = time.monotonic()
        (handle.dir / f"{os.getpid()}").write_text("x")
        out.put((handle.instance_name, t))
        time.sleep(hold)
        out.put(("end", time.monotonic()))


def test_cache_mount_sharing_modes(cache_dir: Path) -> None:
    store = CacheStore(cache_dir)
    # PRIVATE: a busy instance makes the next user take another directory
    first = store.open_cache_mount("go-build", CacheSharing.PRIVATE)
    out = SPAWN.Queue()
    p = SPAWN.Process(target=_use_mount, args=(str(cache_dir), "go-build", int(CacheSharing.PRIVATE), 0, out))
    p.start()
    name, _ = out.get(timeout=30)
    assert out.get(timeout=30)[0] == "end"
    p.join(30)
    assert (first.instance_name, name) == ("go-build", "go-build#1")
    assert store.cache_mounts()["go-build"] != store.cache_mounts()["go-build#1"]
    first.release()
    # LOCKED: the second user waits until the first one is done
    held = store.open_cache_mount("apt", CacheSharing.LOCKED)
    p = SPAWN.Process(target=_use_mount, args=(str(cache_dir), "apt", int(CacheSharing.LOCKED), 0, out))
    p.start()
    time.sleep(0.5)
    assert out.empty()
    released_at = time.monotonic()
    held.release()
    name, t = out.get(timeout=30)
    assert name == "apt" and t >= released_at
    assert out.get(timeout=30)[0] == "end"
    p.join(30)
    # SHARED: both at once, same directory
    shared = store.open_cache_mount("pip", CacheSharing.SHARED)
    (shared.dir / "parent").write_text("x")
    p = SPAWN.Process(target=_use_mount, args=(str(cache_dir), "pip", int(CacheSharing.SHARED), 0, out))
    p.start()
    name, _ = out.get(timeout=10)
    assert name == "pip"
    p.join(30)
    assert len(list(shared.dir.iterdir())) == 2  # the parent's file and the child's, one directory
    shared.release()


def test_prune_all_removes_unheld_cache_mounts(store: CacheStore) -> None:
    kept = store.open_cache_mount("held")
    free = store.open_cache_mount("free")
    (free.dir / "f").write_bytes(b"1234")
    free.release()
    usage = {e.key: e for e in store.du() if e.kind == "cachemount"}
    assert usage["free"].size == 4 and usage["held"].in_use and not usage["free"].in_use
    report = store.prune(all=True, remove_snapshot=lambda s: None)
    assert [e.key for e in report.removed if e.kind == "cachemount"] == ["free"]
    assert set(store.cache_mounts()) == {"held"} and kept.dir.exists()
    assert not store.prune(remove_snapshot=lambda s: None).removed  # without all: mounts stay
    kept.release()


def test_process_identity() -> None:
    me = ProcessId.current()
    assert me.alive()
    assert not ProcessId(me.pid, "1").alive() or me.start == "1"
    assert not pid_alive(0)


# --- concurrency: N processes, one cache dir -------------------------------------------

def _concurrent_writer(cache_dir: str, worker: int, count: int) -> list[str]:
    store = CacheStore(Path(cache_dir))
    keys = []
    for i in range(count):
        payload = f"worker {worker} item {i}".encode() * 50
        blob = store.content.write_bytes(payload)
        common = store.content.write_bytes(b"shared base layer")  # same digest from everyone
        snap = commit_snapshot(Path(cache_dir), payload)
        key = f"w{worker}-{i}"
        store.put(rec(key, snap, size=len(payload), blobs=(blob, common)), place=f"worker{worker}/step")
        assert store.lookup(key) is not None
        if i % 5 == 0:
            store.du()
        keys.append(key)
    store.close()
    return keys


@pytest.mark.slow
def test_many_processes_share_one_cache_dir(cache_dir: Path) -> None:
    workers, count = 6, 25
    with SPAWN.Pool(workers) as pool:
        results = pool.starmap(_concurrent_writer, [(str(cache_dir), w, count) for w in range(workers)])
    store = CacheStore(cache_dir)
    expected = {k for keys in results for k in keys}
    assert len(expected) == workers * count
    assert {r.cache_key for r in store.records()} == expected
    assert store.integrity_check() == ["ok"]
    common = "sha256:" + hashlib.sha256(b"shared base layer").hexdigest()
    assert len(store.blob(common).referenced_by) == workers * count
    assert len(store.places()) == workers
    report = store.check(verify_snapshot=verify_snapshot_in(cache_dir), orphan_grace=0)
    assert report.ok and report.records_checked == workers * count
    assert report.orphan_blobs_removed == [] and report.orphan_tmp_removed == []


# --- crash safety: kill -9 at random moments -------------------------------------------

CRASH_WRITER = textwrap.dedent("""
    import hashlib, os, random, sys, uuid
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from solver.cache.records import Record
    from solver.cache.store import CacheStore

    cache_dir = Path(sys.argv[1])
    store = CacheStore(cache_dir)

    def commit_snapshot(payload, snap_id):
        work = cache_dir / "tmp" / f"snap-{os.getpid()}-{snap_id}"
        work.mkdir(parents=True)
        (work / "payload").write_bytes(payload)
        (work / "MANIFEST").write_text(hashlib.sha256(payload).hexdigest())
        for name in ("payload", "MANIFEST"):
            with open(work / name, "rb") as f:
                os.fsync(f.fileno())
        os.rename(work, cache_dir / "snapshots" / snap_id)
        return snap_id

    def remove_snapshot(snap_id):
        d = cache_dir / "snapshots" / snap_id
        if d.exists():
            trash = cache_dir / "tmp" / f"trash-{os.getpid()}-{uuid.uuid4().hex}"
            os.rename(d, trash)
            for p in trash.iterdir():
                p.unlink()
            trash.rmdir()

    print("ready", flush=True)
    i = 0
    while True:
        i += 1
        payload = os.urandom(random.randint(1, 200_000))
        with store.content.writer() as w:
            for start in range(0, len(payload), 8192):
                w.write(payload[start:start + 8192])
            blob = w.commit()
        lease = store.lease("crash writer")  # protects the snapshot until it is indexed
        snap = uuid.uuid4().hex
        lease.add_snapshot(snap)
        commit_snapshot(payload, snap)
        key = f"{os.getpid()}-{i}"
        store.put(Record(key, "sha256:" + "0" * 64, "exec", f"RUN {i}", snapshot=snap,
                         size=len(payload), blobs=(blob,)), place=f"place-{i % 7}")
        lease.release()
        if i % 4 == 0:
            store.prune(2_000_000, remove_snapshot=remove_snapshot)
        if i % 9 == 0:
            store.delete(key)
""")


def _assert_index_consistent(cache_dir: Path) -> None:
    """No row references a missing blob or snapshot (checked without repairing anything)."""
    conn = sqlite3.connect(cache_dir / "index.db", timeout=30)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for (snap,) in conn.execute("SELECT snapshot FROM records WHERE snapshot IS NOT NULL"):
        assert verify_snapshot_in(cache_dir)(snap), f"record points at missing/broken snapshot {snap}"
    for (digest,) in conn.execute("SELECT digest FROM blobs"):
        path = cache_dir / "blobs" / "sha256" / digest.split(":")[1]
        assert path.exists(), f"blob row without file {digest}"
        assert "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest() == digest
    conn.close()


@pytest.mark.slow
def test_kill_9_at_random_moments_never_corrupts(cache_dir: Path) -> None:
    CacheStore(cache_dir).close()
    repo_root = str(Path(__file__).resolve().parents[1])
    rng = random.Random(1234)
    for _round in range(10):
        proc = subprocess.Popen([sys.executable, "-c", CRASH_WRITER, str(cache_dir), repo_root],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready", proc.stderr.read().decode()
        time.sleep(rng.uniform(0.05, 0.6))
        proc.kill()  # SIGKILL
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
        _assert_index_consistent(cache_dir)
    store = CacheStore(cache_dir)
    assert len(store.records()) > 0
    report = store.check(verify_snapshot=verify_snapshot_in(cache_dir), remove_snapshot=remove_snapshot_in(cache_dir),
                         list_snapshots=list_snapshots_in(cache_dir), orphan_grace=0)
    assert report.ok, report
    assert [p for p in (cache_dir / "tmp").iterdir()] == []
    indexed = {r.snapshot for r in store.records()}
    assert set(list_snapshots_in(cache_dir)()) == indexed  # orphans from killed writers removed
    assert {b.digest for b in store.blobs()} == {i.digest for i in store.content.walk()}
    # a following write succeeds, and a second check finds nothing to do
    snap = commit_snapshot(cache_dir, b"after the crashes")
    store.put(rec("after", snap, blobs=(store.content.write_bytes(b"after"),)))
    assert store.lookup("after") is not None
    again = store.check(verify_snapshot=verify_snapshot_in(cache_dir), remove_snapshot=remove_snapshot_in(cache_dir),
                        list_snapshots=list_snapshots_in(cache_dir), orphan_grace=0)
    assert again.ok and not (again.orphan_blobs_removed or again.orphan_snapshots_removed or again.orphan_tmp_removed)
    _assert_index_consistent(cache_dir)


def test_delete_queues_unused_snapshot_for_removal(store: CacheStore, cache_dir: Path) -> None:
    only = commit_snapshot(cache_dir, b"only user")
    shared = commit_snapshot(cache_dir, b"two users")
    store.put(rec("a", only))
    store.put(rec("b", shared))
    store.put(rec("c", shared))
    assert store.delete("a") and store.delete("b")
    assert not store.delete("a")
    removed: list[str] = []

    def remove(snap_id: str) -> None:
        removed.append(snap_id)
        remove_snapshot_in(cache_dir)(snap_id)

    report = store.prune(keep_storage="1TB", remove_snapshot=remove)
    assert report.removed == [] and removed == [only]  # "c" still uses the shared snapshot
    assert list_snapshots_in(cache_dir)() == [shared]


def _put_same_blob_repeatedly(cache_dir: str, rounds: int) -> int:
    store = CacheStore(Path(cache_dir))
    failures = 0
    for i in range(rounds):
        digest = store.content.write_bytes(b"popular base layer")
        try:
            store.put(rec(f"{os.getpid()}-{i}", None, blobs=(digest,)))
        except MissingContentError:
            failures += 1  # pruned between write and put: reported, never indexed dangling
    return failures


@pytest.mark.slow
def test_prune_racing_puts_of_same_blob_never_dangle(cache_dir: Path) -> None:
    store = CacheStore(cache_dir)
    with SPAWN.Pool(3) as pool:
        pending = pool.starmap_async(_put_same_blob_repeatedly, [(str(cache_dir), 150)] * 3)
        while not pending.ready():
            store.prune(all=True, remove_snapshot=lambda s: None)
        pending.get(60)
    _assert_index_consistent(cache_dir)
    for r in store.records():
        for digest in r.blobs:
            assert store.content.verify(digest)


def test_one_store_shared_by_threads(store: CacheStore) -> None:
    import threading
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(30):
                blob = store.content.write_bytes(f"{t}/{i}".encode())
                with store.lease() as lease, store.building(f"t{t}-{i % 10}", lease=lease) as found:
                    if found is None:
                        store.put(rec(f"t{t}-{i % 10}", None, blobs=(blob,)), place=f"thread{t}", lease=lease)
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert errors == []
    assert len(store.records()) == 60 and len(store.places()) == 6
    assert store.integrity_check() == ["ok"]


# --- property: the prune plan keeps every invariant ------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def gc_inputs(draw):
    n = draw(st.integers(0, 12))
    snaps = [f"S{i}" for i in range(draw(st.integers(1, 6)))]
    digests = [f"sha256:{i:064x}" for i in range(draw(st.integers(0, 5)))]
    records = []
    for i in range(n):
        snap = draw(st.sampled_from(snaps + [None]))
        parents = tuple(draw(st.lists(st.sampled_from(snaps), max_size=2)))
        records.append(RecordInfo(f"k{i}", snap, draw(st.integers(0, 1000)), draw(st.floats(0, 100)),
                                  parents, tuple(draw(st.lists(st.sampled_from(digests), max_size=2))) if digests else (),
                                  draw(st.booleans())))
    blobs = [BlobUnitInfo(d, draw(st.integers(0, 500)), draw(st.floats(0, 100)), draw(st.booleans()))
             for d in digests]
    keep = draw(st.one_of(st.none(), st.integers(0, 5000)))
    return records, blobs, keep


@settings(max_examples=150, deadline=None)
@given(gc_inputs())
def test_plan_prune_invariants(inputs) -> None:
    records, blobs, keep = inputs
    plan = plan_prune(records, blobs, keep_storage=keep, now=1000.0)
    removed_keys, removed_blobs = set(plan.records), set(plan.blobs)
    remaining = [r for r in records if r.cache_key not in removed_keys]
    in_use_snaps = {r.snapshot for r in records if r.in_use and r.snapshot}
    for r in records:
        if r.cache_key in removed_keys:
            assert not r.in_use and r.snapshot not in in_use_snaps
    # a snapshot unit is removed whole, and only when no remaining record needs it
    still_needed = {r.snapshot for r in remaining} | {p for r in remaining for p in r.parents}
    assert not set(plan.snapshots) & still_needed
    assert set(plan.snapshots) == {r.snapshot for r in records if r.cache_key in removed_keys and r.snapshot}
    referenced = {d for r in remaining for d in r.blobs}
    for b in blobs:
        if b.digest in removed_blobs:
            assert not b.in_use and b.digest not in referenced
    assert plan.total_before - plan.reclaimed == plan.total_after
    if keep is None:
        # everything removable went: what remains is in use or needed by something that is
        assert all(b.in_use or b.digest in referenced for b in blobs if b.digest not in removed_blobs)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_check_never_deletes_through_a_mount(store: CacheStore, cache_dir: Path, tmp_path: Path) -> None:
    leftover = cache_dir / "tmp" / f"view-{_dead_pid()}-{uuid.uuid4().hex}"
    inner = leftover / "rootfs"
    inner.mkdir(parents=True)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep").write_text("host data")
    if subprocess.run(["mount", "--bind", str(precious), str(inner)], capture_output=True).returncode != 0:
        pytest.skip("cannot bind-mount here (needs root)")
    try:
        report = store.check(verify_snapshot=verify_snapshot_in(cache_dir))
        assert report.ok and report.orphan_tmp_removed == []
        assert report.skipped and "still mounted" in report.skipped[0]
        assert (precious / "keep").read_text() == "host data"
    finally:
        subprocess.run(["umount", str(inner)], check=True)
    report = store.check(verify_snapshot=verify_snapshot_in(cache_dir))
    assert report.orphan_tmp_removed == [leftover.name] and not leftover.exists()
    assert (precious / "keep").exists()
