"""Content-addressed blob store: ``<root>/blobs/sha256/<hex>``.

Writes stream into a temporary file (hashing as they go), are verified against the
expected digest, fsynced and renamed atomically into place. A blob path therefore
either does not exist or holds exactly the bytes its name promises. Two writers of the
same digest are harmless: both renames put identical bytes at the same name.

``root`` is the directory that contains ``blobs/`` (the cache directory, or an OCI
image layout directory). In-flight writes go to ``tmp_dir`` (default ``<root>/tmp``),
which must be on the same filesystem as ``root``. Temporary names carry the writer's
pid (``ingest-<pid>-<random>``) so that an integrity check can tell a crashed writer's
leftovers from a live write.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from solver.errors import LLBookError

ALGORITHM = "sha256"
TMP_PREFIX = "ingest-"
_HEX_RE = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1024 * 1024


class ContentError(LLBookError):
    """Base class of content store errors."""


class InvalidDigestError(ContentError, ValueError):
    """A string that is not a ``sha256:<64 lowercase hex>`` digest."""

    def __init__(self, digest: str) -> None:
        self.digest = digest
        super().__init__(f"invalid digest {digest!r}: expected 'sha256:' followed by 64 hex digits")


class DigestMismatchError(ContentError):
    """Written bytes do not hash to the digest the caller expected; nothing was stored."""

    def __init__(self, expected: str, actual: str, size: int | None = None) -> None:
        self.expected = expected
        self.actual = actual
        self.size = size
        super().__init__(f"digest mismatch: expected {expected}, got {actual}")


class SizeMismatchError(ContentError):
    """Written byte count differs from the size the caller expected; nothing was stored."""

    def __init__(self, expected: int, actual: int) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"size mismatch: expected {expected} bytes, got {actual}")


class StoreFullError(ContentError):
    """The store's filesystem is full (ENOSPC, EDQUOT): not transient, so never retried."""

    def __init__(self, root: Path, what: str, needed: int | None, cause: BaseException) -> None:
        self.root = root
        try:
            free: int | None = shutil.disk_usage(root).free
        except OSError:
            free = None
        need = f"{needed:,} bytes" if needed is not None else "more space"
        have = f", {free:,} bytes free there" if free is not None else ""
        super().__init__(f"no space left in the cache dir {root}: {what} needs {need}{have} "
                         f"({getattr(cause, 'strerror', None) or cause}); free space (llbook prune) or use another --cache-dir")


def _full(error: OSError) -> bool:
    return error.errno in (errno.ENOSPC, errno.EDQUOT)


class BlobNotFoundError(ContentError, KeyError):
    """No blob with this digest in the store."""

    def __init__(self, digest: str) -> None:
        self.digest = digest
        super().__init__(f"blob not found: {digest}")

    def __str__(self) -> str:  # KeyError would quote the message
        return f"blob not found: {self.digest}"


def parse_digest(digest: str) -> str:
    """Validate ``sha256:<hex>`` and return the hex part."""
    algorithm, sep, hexpart = digest.partition(":")
    if sep != ":" or algorithm != ALGORITHM or not _HEX_RE.match(hexpart):
        raise InvalidDigestError(digest)
    return hexpart


def is_digest(digest: str) -> bool:
    try:
        parse_digest(digest)
    except InvalidDigestError:
        return False
    return True


def digest_bytes(data: bytes) -> str:
    return f"{ALGORITHM}:{hashlib.sha256(data).hexdigest()}"


def digest_file(path: Path) -> tuple[str, int]:
    """Digest and size of a file, read in chunks."""
    hasher = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    return f"{ALGORITHM}:{hasher.hexdigest()}", size


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class BlobInfo:
    digest: str
    size: int
    path: Path


class BlobWriter:
    """A streaming write of one blob. Use through ``ContentStore.writer()``."""

    def __init__(self, store: "ContentStore", expected_digest: str | None,
                 expected_size: int | None) -> None:
        if expected_digest is not None:
            parse_digest(expected_digest)
        self._store = store
        self._expected_digest = expected_digest
        self._expected_size = expected_size
        self._hasher = hashlib.sha256()
        self._size = 0
        store.tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", dir=store.tmp_dir)
        self._tmp_path = Path(name)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")
        self._digest: str | None = None

    @property
    def size(self) -> int:
        return self._size

    @property
    def tmp_path(self) -> Path:
        return self._tmp_path

    @property
    def committed(self) -> bool:
        return self._digest is not None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._file is None:
            raise ContentError("write after commit or abort")
        try:
            self._file.write(data)
        except OSError as error:
            if _full(error):
                raise self._full_error(error) from error
            raise
        self._hasher.update(data)
        self._size += len(data)
        return len(data)

    def copy_from(self, source: BinaryIO) -> int:
        """Stream everything from a readable binary file object; returns bytes copied."""
        copied = 0
        while chunk := source.read(_CHUNK):
            copied += self.write(chunk)
        return copied

    def current_digest(self) -> str:
        return f"{ALGORITHM}:{self._hasher.hexdigest()}"

    def commit(self) -> str:
        """Verify, fsync and rename into place. Returns the digest of the written bytes."""
        if self._digest is not None:
            return self._digest
        if self._file is None:
            raise ContentError("commit after abort")
        actual = self.current_digest()
        try:
            self._check_expectations(actual)
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            os.chmod(self._tmp_path, 0o444)
            target = self._store.path(actual)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._tmp_path, target)
            fsync_dir(target.parent)
        except OSError as error:
            self.abort()
            if _full(error):
                raise self._full_error(error) from error
            raise
        except BaseException:
            self.abort()
            raise
        self._digest = actual
        return actual

    def _full_error(self, error: OSError) -> StoreFullError:
        what = f"blob {self._expected_digest}" if self._expected_digest else "a blob"
        return StoreFullError(self._store.root, what, self._expected_size, error)

    def _check_expectations(self, actual: str) -> None:
        if self._expected_size is not None and self._expected_size != self._size:
            raise SizeMismatchError(self._expected_size, self._size)
        if self._expected_digest is not None and self._expected_digest != actual:
            raise DigestMismatchError(self._expected_digest, actual, self._size)

    def abort(self) -> None:
        """Drop the temporary file. Harmless after commit or a previous abort."""
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None
        if self._digest is None:
            try:
                self._tmp_path.unlink()
            except FileNotFoundError:
                pass

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        # Leaving the block without commit (normally or by exception) stores nothing.
        self.abort()


class ContentStore:
    """Blobs by digest under ``<root>/blobs/sha256``."""

    def __init__(self, root: Path | str, tmp_dir: Path | str | None = None) -> None:
        self.root = Path(root)
        self.blobs_dir = self.root / "blobs" / ALGORITHM
        self.tmp_dir = Path(tmp_dir) if tmp_dir is not None else self.root / "tmp"
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.blobs_dir / parse_digest(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise BlobNotFoundError(digest) from None

    def writer(self, expected_digest: str | None = None,
               expected_size: int | None = None) -> BlobWriter:
        """A context manager: ``with store.writer(d) as w: w.write(b); w.commit()``."""
        return BlobWriter(self, expected_digest, expected_size)

    def write_bytes(self, data: bytes, expected_digest: str | None = None) -> str:
        with self.writer(expected_digest, len(data)) as w:
            w.write(data)
            return w.commit()

    def ingest_file(self, path: Path | str, expected_digest: str | None = None) -> str:
        """Copy a file into the store (the source stays where it is)."""
        if expected_digest is not None and self.has(expected_digest):
            return expected_digest
        with open(path, "rb") as source, self.writer(expected_digest) as w:
            w.copy_from(source)
            return w.commit()

    def ingest_stream(self, source: BinaryIO, expected_digest: str | None = None,
                      expected_size: int | None = None) -> str:
        with self.writer(expected_digest, expected_size) as w:
            w.copy_from(source)
            return w.commit()

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise BlobNotFoundError(digest) from None

    def read(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def delete(self, digest: str) -> bool:
        """Remove a blob; False if it was not there."""
        target = self.path(digest)
        try:
            target.unlink()
        except FileNotFoundError:
            return False
        fsync_dir(target.parent)
        return True

    def walk(self) -> Iterator[BlobInfo]:
        """Every blob in the store (names that are not digests are skipped)."""
        try:
            entries = list(os.scandir(self.blobs_dir))
        except FileNotFoundError:
            return
        for entry in sorted(entries, key=lambda e: e.name):
            if not _HEX_RE.match(entry.name):
                continue
            try:
                size = entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:
                continue  # deleted concurrently
            yield BlobInfo(f"{ALGORITHM}:{entry.name}", size, Path(entry.path))

    def verify(self, digest: str) -> bool:
        """True when the blob exists and its bytes hash to its name."""
        try:
            actual, _ = digest_file(self.path(digest))
        except FileNotFoundError:
            return False
        return actual == digest

    def copy_to(self, digest: str, destination: Path | str) -> None:
        """Copy a blob's bytes to a file outside the store."""
        with self.open(digest) as source, open(destination, "wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)

    def tmp_files(self) -> Iterator[Path]:
        """In-flight (or orphaned) writes of this store."""
        try:
            entries = list(os.scandir(self.tmp_dir))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.name.startswith(TMP_PREFIX):
                yield Path(entry.path)


def tmp_owner_pid(path: Path) -> int | None:
    """The pid encoded in a temporary file name ``ingest-<pid>-...``, if any."""
    name = path.name
    if not name.startswith(TMP_PREFIX):
        return None
    pid_text = name[len(TMP_PREFIX):].split("-", 1)[0]
    return int(pid_text) if pid_text.isdigit() else None
