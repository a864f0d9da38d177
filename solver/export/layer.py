"""Layer blobs: an overlay-form diff directory → a sorted OCI layer tar, compressed.

The uncompressed digest (diff_id) and the blob digest are computed in one streaming
pass: tar bytes flow through a hashing writer into the compressor, whose output flows
into the content store's writer (which hashes what it stores). Nothing is held in memory
beyond a few compression blocks.

gzip is written as pigz does it: the tar stream is cut into fixed 1 MiB blocks, each
deflated (level 6, BuildKit's default) on a worker thread with the previous block's last
32 KiB as its dictionary and ended by a sync flush, so the blocks concatenate into one
deflate stream. The bytes depend only on the input and the block size, never on the
number of threads, so exports stay reproducible; zlib releases the GIL while deflating,
so blocks compress in parallel on all cores. Blocks that samples show to be
incompressible (random or already-compressed data) are stored instead of deflated.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tarfile
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import zstandard

from solver.cache.content import ContentStore
from solver.snapshot.diff import walk_oci
from solver.export.tarentry import tar_info

GZIP = "gzip"
ZSTD = "zstd"
UNCOMPRESSED = "uncompressed"
COMPRESSIONS = (GZIP, ZSTD, UNCOMPRESSED)

OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"

GZIP_LEVEL = 6  # BuildKit's (Go's gzip.DefaultCompression); 9 is up to 10x slower for ~1% less
GZIP_BLOCK = 1 << 20  # input bytes per independently deflated block; part of the output format
_WINDOW = 32 * 1024
_PROBES, _PROBE, _STORE_ABOVE = 4, 16 * 1024, 0.995  # incompressible-block probe: 4 x 16 KiB samples
COPY_BUFFER = 1 << 20  # tar stream and file copy buffers (tarfile's defaults are 10 and 16 KiB)

# Changes whenever the bytes of a compressed layer for the same input change, so that
# memoised blobs of an older format are not mixed with fresh ones.
BLOB_FORMAT = f"gzip-{GZIP_LEVEL}-pblock{GZIP_BLOCK}-store{_STORE_ABOVE}"


class _Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


@dataclass(frozen=True)
class LayerBlob:
    """A layer as it sits in the content store."""

    digest: str  # of the compressed blob
    size: int
    diff_id: str  # of the uncompressed tar
    compression: str

    def media_type(self, oci: bool = True) -> str:
        return layer_media_type(self.compression, oci)


def layer_media_type(compression: str, oci: bool = True) -> str:
    """The manifest media type of a layer with this compression."""
    if oci:
        suffix = {GZIP: "+gzip", ZSTD: "+zstd", UNCOMPRESSED: ""}[compression]
        return OCI_LAYER + suffix
    if compression == ZSTD:
        return OCI_LAYER + "+zstd"  # Docker's schema2 has no zstd type; docker uses the OCI one
    return DOCKER_LAYER_GZIP if compression == GZIP else DOCKER_LAYER


def compression_of(media_type: str) -> str:
    """The compression named by a layer media type."""
    if media_type.endswith("+zstd") or media_type.endswith(".zstd"):
        return ZSTD
    if media_type.endswith("gzip"):
        return GZIP
    return UNCOMPRESSED


class HashingWriter:
    """Counts and hashes bytes on their way to ``target``."""

    def __init__(self, target: _Writable) -> None:
        self.target = target
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        self.target.write(data)
        return len(data)

    def flush(self) -> None:
        pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def write_layer_tar(diff_dir: str | Path, out: BinaryIO | HashingWriter, *, epoch: int | None = None) -> None:
    """Write ``diff_dir`` (overlay form) as an OCI layer tar: whiteouts as ``.wh.`` files,
    opaque directories with ``.wh..wh..opq``, entries sorted, owners and modes kept,
    mtimes clamped to ``epoch`` when given."""
    links: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=COPY_BUFFER,  # type: ignore[arg-type]
                      copybufsize=COPY_BUFFER) as tar:
        for entry in walk_oci(diff_dir):
            if entry.kind != "entry":
                tar.addfile(_marker_info(entry.name, epoch))
                continue
            assert entry.host_path is not None and entry.st is not None
            info = tar_info(entry.name, entry.host_path, entry.st, epoch, links)
            if info.type == tarfile.REGTYPE:
                with open(entry.host_path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)


def _marker_info(name: str, epoch: int | None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    info.mtime = 0 if epoch is None else epoch
    return info


def _incompressible(block: bytes) -> bool:
    """True when samples spread over ``block`` do not shrink at level 1: random or
    already-compressed data, which zlib would end up storing anyway, at ~40 MB/s."""
    if len(block) < _PROBES * _PROBE:
        return False
    step = (len(block) - _PROBE) // (_PROBES - 1)
    for i in range(_PROBES):
        sample = block[i * step:i * step + _PROBE]
        if len(zlib.compress(sample, 1)) < _PROBE * _STORE_ABOVE:
            return False
    return True


def _deflate_block(block: bytes, dictionary: bytes, level: int, last: bool) -> bytes:
    """One block of a parallel gzip: raw deflate primed with the previous input's window,
    ending byte-aligned (sync flush) unless it is the last. A block whose samples do not
    compress is stored (level 0), as fast encoders skip incompressible input; the choice
    depends on the block's bytes only, so the output stays reproducible."""
    if _incompressible(block):
        level = 0
    if dictionary:
        c = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, zdict=dictionary)
    else:
        c = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY)
    return c.compress(block) + c.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


class ParallelGzipWriter:
    """A gzip member written as pigz writes one: fixed-size blocks deflated on threads.

    At most ``2 * workers`` blocks are in flight, so memory stays at a few MiB."""

    def __init__(self, target: _Writable, *, level: int = GZIP_LEVEL, block_size: int = GZIP_BLOCK,
                 workers: int | None = None) -> None:
        self.target = target
        self.level = level
        self.block_size = block_size
        self.workers = workers or min(8, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="gzip")
        self._inflight: deque[Future[bytes]] = deque()
        self._pending = bytearray()
        self._window = b""
        self._crc = 0
        self._size = 0
        self._closed = False
        # gzip header: no name, mtime 0, XFL 0, OS unknown (255) -- as Go's gzip writes it
        target.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")

    def write(self, data: bytes) -> int:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self._pending += data
        if len(self._pending) >= self.block_size:
            view = memoryview(self._pending)
            cut = len(view) - len(view) % self.block_size
            for start in range(0, cut, self.block_size):
                self._submit(view[start:start + self.block_size].tobytes(), last=False)
            view.release()
            del self._pending[:cut]
        return len(data)

    def _submit(self, block: bytes, *, last: bool) -> None:
        dictionary = self._window
        self._window = (dictionary + block)[-_WINDOW:] if len(block) < _WINDOW else block[-_WINDOW:]
        self._inflight.append(self._pool.submit(_deflate_block, block, dictionary, self.level, last))
        while len(self._inflight) > 2 * self.workers:
            self.target.write(self._inflight.popleft().result())

    def flush(self) -> None:
        pass

    def close(self) -> None:
        """Deflate what is left, write the trailer (CRC-32 and size mod 2^32)."""
        if self._closed:
            return
        try:
            self._submit(bytes(self._pending), last=True)
            self._pending.clear()
            while self._inflight:
                self.target.write(self._inflight.popleft().result())
            self.target.write(struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Stop the workers (also after a failure half-way)."""
        self._closed = True
        for future in self._inflight:
            future.cancel()
        self._inflight.clear()
        self._pool.shutdown(wait=True)


class _Compressor:
    """A writable that compresses into ``target`` with the chosen algorithm."""

    def __init__(self, compression: str, target: _Writable) -> None:
        self.target = target
        self._gzip: ParallelGzipWriter | None = None
        if compression == GZIP:
            self._gzip = ParallelGzipWriter(target)
            self._stream: _Writable = self._gzip
        elif compression == ZSTD:
            self._stream = zstandard.ZstdCompressor().stream_writer(target, closefd=False)  # type: ignore[arg-type]
        elif compression == UNCOMPRESSED:
            self._stream = target
        else:
            raise ValueError(f"unknown compression {compression!r}: use one of {', '.join(COMPRESSIONS)}")
        self._own = compression != UNCOMPRESSED

    def write(self, data: bytes) -> int:
        self._stream.write(data)
        return len(data)

    def close(self) -> None:
        if self._own:
            self._stream.close()  # type: ignore[attr-defined]

    def abort(self) -> None:
        if self._gzip is not None:
            self._gzip.shutdown()


def store_layer(diff_dir: str | Path, store: ContentStore, *, compression: str = GZIP,
                epoch: int | None = None) -> LayerBlob:
    """Tar, hash and compress ``diff_dir`` into ``store`` in one streaming pass."""
    return store_stream(lambda sink: write_layer_tar(diff_dir, sink, epoch=epoch), store,
                        compression=compression)


def store_stream(produce: Callable[[HashingWriter], None], store: ContentStore, *,
                 compression: str = GZIP) -> LayerBlob:
    """Store what ``produce`` writes (an uncompressed tar) compressed, with both digests."""
    with store.writer() as blob:
        if compression == UNCOMPRESSED:  # the blob is the tar: the store's hash is the diff_id
            produce(blob)  # type: ignore[arg-type]
            digest = blob.commit()
            return LayerBlob(digest, blob.size, digest, compression)
        compressor = _Compressor(compression, blob)
        try:
            uncompressed = HashingWriter(compressor)
            produce(uncompressed)
            compressor.close()
        finally:
            compressor.abort()
        digest = blob.commit()  # the writer hashed the compressed bytes on their way
        size = blob.size
    return LayerBlob(digest, size, uncompressed.digest, compression)
