"""Layer blobs: an overlay-form diff directory → a sorted OCI layer tar, compressed.

The uncompressed digest (diff_id) and the blob digest are computed in one streaming
pass: tar bytes flow through a hashing writer into the compressor, whose output flows
through a second hashing writer into the content store. Nothing is held in memory
beyond a compressor's window.
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
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
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[arg-type]
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


class _Compressor:
    """A writable that compresses into ``target`` with the chosen algorithm."""

    def __init__(self, compression: str, target: HashingWriter) -> None:
        self.target = target
        if compression == GZIP:
            self._stream: BinaryIO | HashingWriter = gzip.GzipFile(
                filename="", mode="wb", fileobj=target, mtime=0)  # type: ignore[arg-type]
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
            self._stream.close()  # type: ignore[union-attr]


def store_layer(diff_dir: str | Path, store: ContentStore, *, compression: str = GZIP,
                epoch: int | None = None) -> LayerBlob:
    """Tar, hash and compress ``diff_dir`` into ``store`` in one streaming pass."""
    return store_stream(lambda sink: write_layer_tar(diff_dir, sink, epoch=epoch), store,
                        compression=compression)


def store_stream(produce: Callable[[HashingWriter], None], store: ContentStore, *,
                 compression: str = GZIP) -> LayerBlob:
    """Store what ``produce`` writes (an uncompressed tar) compressed, with both digests."""
    with store.writer() as blob:
        compressed = HashingWriter(blob)
        compressor = _Compressor(compression, compressed)
        uncompressed = HashingWriter(compressor)
        produce(uncompressed)
        compressor.close()
        digest = blob.commit()
    return LayerBlob(digest, compressed.size, uncompressed.digest, compression)
