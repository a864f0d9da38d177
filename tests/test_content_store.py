"""ContentStore: content-addressed blobs with verified, atomic writes."""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
from pathlib import Path

import pytest

from solver.cache.content import (
    BlobNotFoundError,
    ContentStore,
    DigestMismatchError,
    InvalidDigestError,
    SizeMismatchError,
    digest_bytes,
    tmp_owner_pid,
)
from solver.cache.paths import CachePaths, default_cache_dir, resolve_cache_dir
from solver.errors import LLBookError


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "cache")


def test_write_commit_read_roundtrip(store: ContentStore) -> None:
    data = b"hello world\n" * 1000
    with store.writer() as w:
        w.write(data[:100])
        w.write(data[100:])
        assert w.size == len(data)
        digest = w.commit()
    assert digest == sha(data)
    assert store.has(digest)
    assert store.read(digest) == data
    assert store.path(digest) == store.root / "blobs" / "sha256" / digest.split(":")[1]
    assert store.size(digest) == len(data)
    assert store.verify(digest)
    assert list(store.tmp_files()) == []


def test_expected_digest_mismatch_stores_nothing(store: ContentStore) -> None:
    wrong = sha(b"something else")
    with pytest.raises(DigestMismatchError) as info:
        with store.writer(wrong) as w:
            w.write(b"actual bytes")
            w.commit()
    assert info.value.expected == wrong
    assert info.value.actual == sha(b"actual bytes")
    assert isinstance(info.value, LLBookError)
    assert not store.has(wrong)
    assert not store.has(sha(b"actual bytes"))
    assert list(store.tmp_files()) == []
    assert list(store.walk()) == []


def test_expected_digest_match(store: ContentStore) -> None:
    data = b"abc"
    assert store.write_bytes(data, sha(data)) == sha(data)


def test_size_mismatch(store: ContentStore) -> None:
    with pytest.raises(SizeMismatchError):
        with store.writer(expected_size=10) as w:
            w.write(b"short")
            w.commit()
    assert list(store.tmp_files()) == []


def test_exception_inside_block_removes_tmp(store: ContentStore) -> None:
    with pytest.raises(RuntimeError):
        with store.writer() as w:
            w.write(b"partial")
            assert w.tmp_path.exists()
            raise RuntimeError("network went away")
    assert list(store.tmp_files()) == []
    assert list(store.walk()) == []


def test_leaving_block_without_commit_stores_nothing(store: ContentStore) -> None:
    with store.writer() as w:
        w.write(b"never committed")
    assert list(store.walk()) == []
    assert list(store.tmp_files()) == []


def test_write_after_commit_fails(store: ContentStore) -> None:
    with store.writer() as w:
        w.write(b"x")
        w.commit()
        with pytest.raises(LLBookError):
            w.write(b"y")


def test_invalid_digests_rejected(store: ContentStore) -> None:
    for bad in ["", "sha256:", "md5:" + "0" * 32, "sha256:" + "A" * 64, "sha256:../../etc/passwd",
                "sha256:" + "0" * 63]:
        with pytest.raises(InvalidDigestError):
            store.path(bad)
    with pytest.raises(InvalidDigestError):
        store.writer("sha256:nothex")


def test_missing_blob(store: ContentStore) -> None:
    missing = sha(b"missing")
    assert not store.has(missing)
    assert not store.verify(missing)
    with pytest.raises(BlobNotFoundError):
        store.read(missing)
    with pytest.raises(BlobNotFoundError):
        store.size(missing)
    assert store.delete(missing) is False


def test_ingest_file_and_stream(store: ContentStore, tmp_path: Path) -> None:
    src = tmp_path / "layer.tar"
    data = os.urandom(3 * 1024 * 1024 + 17)
    src.write_bytes(data)
    digest = store.ingest_file(src)
    assert digest == sha(data)
    assert src.exists()
    assert store.read(digest) == data
    # already present with expected digest: no rewrite needed
    assert store.ingest_file(src, digest) == digest
    with pytest.raises(DigestMismatchError):
        store.ingest_file(src, sha(b"other"))
    assert store.ingest_stream(io.BytesIO(b"stream"), sha(b"stream"), 6) == sha(b"stream")


def test_delete_walk(store: ContentStore) -> None:
    digests = {store.write_bytes(f"blob {i}".encode()) for i in range(5)}
    (store.blobs_dir / "not-a-digest").write_text("ignored")
    walked = {info.digest: info.size for info in store.walk()}
    assert set(walked) == digests
    assert all(size == len(b"blob 0") for size in walked.values())
    victim = sorted(digests)[0]
    assert store.delete(victim) is True
    assert not store.has(victim)
    assert {i.digest for i in store.walk()} == digests - {victim}


def test_verify_detects_corruption(store: ContentStore) -> None:
    digest = store.write_bytes(b"precious")
    path = store.path(digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"tampered")
    assert store.has(digest)
    assert not store.verify(digest)


def test_rewrite_of_existing_digest_is_harmless(store: ContentStore) -> None:
    a = store.write_bytes(b"same")
    b = store.write_bytes(b"same")
    assert a == b and store.read(a) == b"same"


def test_committed_blob_is_read_only(store: ContentStore) -> None:
    digest = store.write_bytes(b"ro")
    assert store.path(digest).stat().st_mode & 0o222 == 0


def test_tmp_names_carry_pid(store: ContentStore) -> None:
    with store.writer() as w:
        assert tmp_owner_pid(w.tmp_path) == os.getpid()
    assert tmp_owner_pid(Path("unrelated")) is None


def test_digest_bytes() -> None:
    assert digest_bytes(b"") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _write_same_blob(root: str, data: bytes, rounds: int) -> str:
    store = ContentStore(Path(root))
    digest = ""
    for _ in range(rounds):
        digest = store.write_bytes(data, sha(data))
    return digest


def test_concurrent_writers_of_same_digest(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    data = os.urandom(256 * 1024)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        results = pool.starmap(_write_same_blob, [(str(root), data, 20)] * 4)
    assert set(results) == {sha(data)}
    store = ContentStore(root)
    assert store.verify(sha(data))
    assert [i.digest for i in store.walk()] == [sha(data)]
    assert list(store.tmp_files()) == []


# --- paths -----------------------------------------------------------------------------

def test_default_cache_dir_xdg(tmp_path: Path) -> None:
    assert default_cache_dir({"XDG_CACHE_HOME": str(tmp_path), "HOME": "/nonexistent"}) == tmp_path / "llbook"
    assert default_cache_dir({"HOME": str(tmp_path)}) == tmp_path / ".cache" / "llbook"
    # relative XDG values are ignored as the XDG spec says
    assert default_cache_dir({"XDG_CACHE_HOME": "rel", "HOME": str(tmp_path)}) == tmp_path / ".cache" / "llbook"


def test_resolve_cache_dir_precedence(tmp_path: Path) -> None:
    env = {"LLBOOK_CACHE_DIR": str(tmp_path / "env"), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    assert resolve_cache_dir(tmp_path / "flag", env) == tmp_path / "flag"
    assert resolve_cache_dir(None, env) == tmp_path / "env"
    assert resolve_cache_dir("", env) == tmp_path / "env"
    assert resolve_cache_dir(None, {"XDG_CACHE_HOME": str(tmp_path / "xdg")}) == tmp_path / "xdg" / "llbook"


def test_cache_paths_layout(tmp_path: Path) -> None:
    paths = CachePaths(tmp_path / "c").ensure()
    for name in ["blobs/sha256", "snapshots", "tmp", "cachemounts", "locks"]:
        assert (tmp_path / "c" / name).is_dir()
    assert paths.index_db == tmp_path / "c" / "index.db"
