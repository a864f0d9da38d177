"""Container images from registries: resolve a reference, pull its blobs, unpack layers.

    source = ImageSource(RegistryClient(load_registry_config()))
    image = source.resolve("busybox", Platform.parse("linux/amd64"))
    source.pull(image, content_store, progress=print)        # layers in parallel, verified
    source.resolve(image.pinned, content_store=content_store)  # pinned + pulled: no network
    for layer, diff_id in zip(image.layers, image.diff_ids):
        unpack_layer(content_store.path(layer.digest), layer.media_type, rootfs,
                     expected_diff_id=diff_id)

`unpack_layer` decompresses (gzip, zstd or none, sniffed from the bytes when the media
type is vague), hashes the uncompressed stream (the diff_id) and extracts it with
`tarsafe` in one streaming pass. Decompression and hashing run on a thread of their own,
a few MiB ahead of the extraction (both release the GIL); gzip uses ISA-L's igzip when the
`isal` package is installed (about 2.5x zlib's speed here), else the standard library.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import queue
import threading
import zlib
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

import zstandard

from solver.errors import LLBookError
from solver.source.reference import Reference, parse as parse_reference
from solver.source.registry import (INDEX_TYPES, MANIFEST_TYPES, MEDIA_TYPE_DOCKER_MANIFEST, Descriptor,
                                    Endpoint, ManifestError, Platform, RegistryClient, choose_manifest,
                                    default_platform, manifest_media_type, sha256_digest)
from solver.source.tarsafe import ExtractOptions, ExtractStats, WhiteoutMode, extract

__all__ = ["ImageSource", "ResolvedImage", "PullProgress", "UnpackResult", "DiffIDMismatchError",
           "LayerFormatError", "unpack_layer", "unpack_image", "resolved_from_documents",
           "Descriptor", "Platform", "WhiteoutMode"]

try:  # C-speed gzip (ISA-L); the standard library's zlib otherwise
    from isal import igzip as _igzip
    from isal.isal_zlib import error as _IsalError
except ImportError:  # pragma: no cover - isal is a declared dependency
    _igzip = None

    class _IsalError(Exception):  # type: ignore[no-redef]
        """Stands in for isal's error class when isal is missing."""

_CHUNK = 1024 * 1024
_PREFETCH_CHUNKS = 8  # decompressed MiB the decompressing thread may run ahead
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class DiffIDMismatchError(LLBookError):
    """An unpacked layer whose uncompressed digest is not the config's diff_id."""

    def __init__(self, blob: str, expected: str, actual: str) -> None:
        self.blob, self.expected, self.actual = blob, expected, actual
        super().__init__(f"layer {blob}: uncompressed digest {actual} does not match the image "
                         f"config's diff_id {expected}; the unpacked directory must be discarded")


class LayerFormatError(LLBookError):
    """A layer media type or compression we cannot unpack."""


class ContentStoreLike(Protocol):
    """What `ImageSource.pull` needs of `solver.cache.content.ContentStore`."""

    def path(self, digest: str) -> Path: ...

    def has(self, digest: str) -> bool: ...

    def writer(self, expected_digest: str | None = None, expected_size: int | None = None): ...

    def write_bytes(self, data: bytes, expected_digest: str | None = None) -> str: ...


@dataclass(frozen=True)
class ResolvedImage:
    """One platform's image: manifest, config and layer descriptors, all digest-verified."""

    name: str  # normalised reference, e.g. docker.io/library/busybox:latest
    manifest_digest: str
    manifest: dict
    config: dict
    config_digest: str
    layers: list[Descriptor]
    manifest_bytes: bytes = b""
    config_bytes: bytes = b""
    media_type: str = MEDIA_TYPE_DOCKER_MANIFEST
    platform: Platform = field(default_factory=default_platform)
    index_digest: str | None = None  # set when chosen from an index / manifest list
    index_bytes: bytes = field(default=b"", repr=False)  # that index, kept for offline resolution

    @property
    def diff_ids(self) -> list[str]:
        rootfs = self.config.get("rootfs") or {}
        return list(rootfs.get("diff_ids") or [])

    @property
    def config_descriptor(self) -> Descriptor:
        return Descriptor.from_dict(self.manifest["config"], f"manifest {self.manifest_digest}")

    @property
    def pinned(self) -> str:
        """`name@digest` of the manifest (the index digest when one was resolved)."""
        ref = parse_reference(self.name, default_tag=False)
        return ref.with_digest(self.index_digest or self.manifest_digest).string

    @property
    def image_config(self) -> dict:
        """The runtime part of the config (`Env`, `Cmd`, `WorkingDir`, ...)."""
        return dict(self.config.get("config") or {})


@dataclass(frozen=True)
class PullProgress:
    """A pull progress event (called from worker threads)."""

    digest: str
    total: int
    done: int
    status: str  # "exists", "downloading", "done"


@dataclass(frozen=True)
class UnpackResult:
    diff_id: str
    uncompressed_size: int
    stats: ExtractStats


def _json_object(data: bytes, what: str) -> dict:
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise ManifestError(f"{what} is not valid JSON") from exc
    if not isinstance(document, dict):
        raise ManifestError(f"{what} is not a JSON object")
    return document


def resolved_from_documents(name: str, manifest_bytes: bytes, config_bytes: bytes,
                            index_digest: str | None = None, media_type: str = "",
                            index_bytes: bytes = b"") -> ResolvedImage:
    """Check a manifest and its config against each other and build a ResolvedImage."""
    manifest_digest = sha256_digest(manifest_bytes)
    what = f"manifest {manifest_digest} of {name}"
    manifest = _json_object(manifest_bytes, what)
    media_type = media_type or manifest_media_type(manifest)
    if media_type not in MANIFEST_TYPES:
        raise ManifestError(f"{what}: media type {media_type!r} is not an image manifest")
    if not isinstance(manifest.get("config"), dict) or not isinstance(manifest.get("layers"), list):
        raise ManifestError(f"{what}: needs a 'config' descriptor and a 'layers' list")
    config_desc = Descriptor.from_dict(manifest["config"], what)
    if sha256_digest(config_bytes) != config_desc.digest:
        raise ManifestError(f"{what}: config bytes do not match {config_desc.digest}")
    layers = [Descriptor.from_dict(layer, f"{what} layer {i}") for i, layer in enumerate(manifest["layers"])]
    config = _json_object(config_bytes, f"config {config_desc.digest} of {name}")
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    if len(diff_ids) != len(layers):
        raise ManifestError(f"{what}: {len(layers)} layers but the config lists {len(diff_ids)} diff_ids")
    platform = config_platform(config)
    return ResolvedImage(name=name, manifest_digest=manifest_digest, manifest=manifest, config=config,
                         config_digest=config_desc.digest, layers=layers, manifest_bytes=manifest_bytes,
                         config_bytes=config_bytes, media_type=media_type, platform=platform,
                         index_digest=index_digest, index_bytes=index_bytes)


class ImageSource:
    """Resolves references against registries and pulls their blobs into a content store."""

    def __init__(self, client: RegistryClient | None = None, max_workers: int = 4) -> None:
        self.client = client if client is not None else RegistryClient()
        self.max_workers = max_workers

    def resolve(self, ref: str | Reference, platform: Platform | None = None,
                content_store: ContentStoreLike | None = None) -> ResolvedImage:
        """Fetch the manifest (choosing `platform` from an index) and the config.

        With `content_store`, a digest-pinned reference whose index/manifest and config
        were pulled before resolves from the store without any network access.
        """
        reference = parse_reference(ref) if isinstance(ref, str) else ref
        want = platform or default_platform()
        if content_store is not None and reference.digest:
            local = resolve_from_store(reference, want, content_store)
            if local is not None:
                return local
        top = self.client.get_manifest(reference)
        endpoints = self._endpoints_from(top.endpoint, reference)
        index_digest = None
        manifest = top
        if top.media_type in INDEX_TYPES:
            chosen = choose_manifest(top.json(), want, f"index {top.digest} of {reference.familiar}")
            manifest = self.client.get_manifest_by_digest(reference, chosen.digest, endpoints=endpoints)
            index_digest = top.digest
            if manifest.media_type in INDEX_TYPES:
                raise ManifestError(f"index {top.digest} of {reference.familiar}: nested index "
                                    f"{chosen.digest} for {want} is not supported")
        document = manifest.json()
        if not isinstance(document.get("config"), dict):
            raise ManifestError(f"manifest {manifest.digest} of {reference.familiar} has no config descriptor")
        config_desc = Descriptor.from_dict(document["config"], f"manifest {manifest.digest}")
        config_bytes = self.client.read_blob(reference, config_desc, endpoints=endpoints)
        return resolved_from_documents(reference.string, manifest.data, config_bytes,
                                       index_digest=index_digest, media_type=manifest.media_type,
                                       index_bytes=top.data if index_digest else b"")

    def _endpoints_from(self, first: Endpoint, ref: Reference) -> list[Endpoint]:
        """The endpoint that answered first, then the others in their usual order."""
        return [first] + [e for e in self.client.endpoints(ref) if e != first]

    def pull(self, resolved: ResolvedImage, content_store: ContentStoreLike,
             progress: Callable[[PullProgress], None] | None = None) -> list[Path]:
        """Store manifest, config and every layer (in parallel, verified); return layer paths."""
        ref = parse_reference(resolved.name)
        if resolved.index_digest and resolved.index_bytes and not content_store.has(resolved.index_digest):
            content_store.write_bytes(resolved.index_bytes, resolved.index_digest)
        if not content_store.has(resolved.manifest_digest):
            content_store.write_bytes(resolved.manifest_bytes, resolved.manifest_digest)
        if not content_store.has(resolved.config_digest):
            content_store.write_bytes(resolved.config_bytes, resolved.config_digest)
        unique: dict[str, Descriptor] = {}
        for layer in resolved.layers:
            unique.setdefault(layer.digest, layer)
        missing = [d for d in unique.values() if not content_store.has(d.digest)]
        for desc in unique.values():
            if desc not in missing and progress is not None:
                progress(PullProgress(desc.digest, desc.size, desc.size, "exists"))
        if missing:
            self._download_all(ref, missing, content_store, progress)
        return [content_store.path(layer.digest) for layer in resolved.layers]

    def _download_all(self, ref: Reference, descs: list[Descriptor], store: ContentStoreLike,
                      progress: Callable[[PullProgress], None] | None) -> None:
        endpoints = self.client.endpoints(ref)
        with ThreadPoolExecutor(max_workers=max(1, self.max_workers), thread_name_prefix="llbook-pull") as pool:
            futures: list[Future[str]] = [
                pool.submit(self._download_one, ref, desc, store, endpoints, progress) for desc in descs]
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for future in pending:
                future.cancel()
            for future in futures:
                if future in done and future.exception() is not None:
                    raise future.exception()  # type: ignore[misc]
            for future in futures:
                future.result()

    def _download_one(self, ref: Reference, desc: Descriptor, store: ContentStoreLike,
                      endpoints: list[Endpoint], progress: Callable[[PullProgress], None] | None) -> str:
        tracker = _ByteCounter(desc, progress)
        digest = self.client.download_blob(
            ref, desc, lambda: store.writer(desc.digest, desc.size), endpoints=endpoints, progress=tracker)
        if progress is not None:
            progress(PullProgress(desc.digest, desc.size, desc.size, "done"))
        return digest


def _read_stored(store: ContentStoreLike, digest: str) -> bytes | None:
    if not store.has(digest):
        return None
    data = store.path(digest).read_bytes()
    return data if sha256_digest(data) == digest else None


def resolve_from_store(ref: Reference, platform: Platform, store: ContentStoreLike) -> ResolvedImage | None:
    """Resolve a digest-pinned `ref` from documents a previous pull stored; None if any is missing."""
    assert ref.digest is not None
    top = _read_stored(store, ref.digest)
    if top is None:
        return None
    document = _json_object(top, f"stored manifest {ref.digest}")
    media_type = manifest_media_type(document)
    index_digest, index_bytes, manifest_bytes = None, b"", top
    if media_type in INDEX_TYPES:
        chosen = choose_manifest(document, platform, f"stored index {ref.digest} of {ref.familiar}")
        stored = _read_stored(store, chosen.digest)
        if stored is None:
            return None
        index_digest, index_bytes, manifest_bytes = ref.digest, top, stored
        media_type = manifest_media_type(_json_object(stored, f"stored manifest {chosen.digest}"))
    config_desc = _json_object(manifest_bytes, f"stored manifest of {ref.familiar}").get("config")
    if not isinstance(config_desc, dict):
        return None
    config_bytes = _read_stored(store, Descriptor.from_dict(config_desc).digest)
    if config_bytes is None:
        return None
    return resolved_from_documents(ref.string, manifest_bytes, config_bytes, index_digest=index_digest,
                                   media_type=media_type, index_bytes=index_bytes)


class _ByteCounter:
    def __init__(self, desc: Descriptor, progress: Callable[[PullProgress], None] | None) -> None:
        self.desc = desc
        self.progress = progress
        self.done = 0
        self.lock = threading.Lock()

    def __call__(self, n: int) -> None:
        with self.lock:
            self.done += n
            done = self.done
        if self.progress is not None:
            self.progress(PullProgress(self.desc.digest, self.desc.size, done, "downloading"))


class _HashingReader:
    """A read-only stream over `inner` that hashes (and counts) everything in it.

    A thread reads `inner` (decompressing it) and hashes it, up to `_PREFETCH_CHUNKS`
    chunks ahead of the reader; an error there is raised by the `read` that reaches it.
    `close()` stops the thread; call it before closing `inner`.
    """

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.hasher = hashlib.sha256()
        self.size = 0
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(_PREFETCH_CHUNKS)
        self._stop = threading.Event()
        self._buffer = memoryview(b"")
        self._ended = False
        self._thread = threading.Thread(target=self._produce, name="llbook-decompress", daemon=True)
        self._thread.start()

    def _put(self, item: bytes | BaseException) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            while not self._stop.is_set():
                data = self.inner.read(_CHUNK)
                if data:
                    self.hasher.update(data)
                    self.size += len(data)
                if not self._put(data) or not data:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
            self._put(exc)

    def read(self, n: int = -1) -> bytes:
        parts: list[bytes] = []
        want = n if n >= 0 else None
        while want is None or want > 0:
            if not self._buffer:
                if self._ended:
                    break
                item = self._queue.get()
                if isinstance(item, BaseException):
                    self._ended = True
                    raise item
                if not item:
                    self._ended = True
                    break
                self._buffer = memoryview(item)
            take = self._buffer if want is None else self._buffer[:want]
            parts.append(bytes(take))
            self._buffer = self._buffer[len(take):]
            if want is not None:
                want -= len(take)
        return b"".join(parts)

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def digest(self) -> str:
        return "sha256:" + self.hasher.hexdigest()


def layer_compression(media_type: str) -> str | None:
    """"gzip", "zstd", "none", or None when the media type does not say."""
    if "+encrypted" in media_type:
        raise LayerFormatError(f"encrypted layers ({media_type}) are not supported")
    if media_type.endswith(("+gzip", ".tar.gzip", ".tar.gz")):
        return "gzip"
    if media_type.endswith(("+zstd", ".tar.zstd")):
        return "zstd"
    if media_type.endswith((".tar", "layer.v1.tar", ".diff.tar")):
        return "none"
    return None


def _decompressed(raw: BinaryIO, media_type: str, blob: str) -> BinaryIO:
    declared = layer_compression(media_type)  # refuses encrypted layers up front
    head = raw.read(4)
    raw.seek(0)
    if head.startswith(_GZIP_MAGIC):
        if _igzip is not None:
            return _igzip.IGzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if head.startswith(_ZSTD_MAGIC):
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)  # type: ignore[return-value]
    if declared in ("gzip", "zstd"):
        raise LayerFormatError(f"layer {blob}: media type {media_type} says {declared}, "
                               f"but the blob does not start with {declared} magic bytes")
    return raw


def unpack_layer(blob_path: Path | str, media_type: str, dest_dir: Path | str,
                 mode: WhiteoutMode | str = WhiteoutMode.APPLY, expected_diff_id: str | None = None,
                 options: ExtractOptions | None = None) -> UnpackResult:
    """Decompress, hash and extract one layer blob into `dest_dir` in one streaming pass.

    `mode` is the whiteout handling (`apply` for a flattened rootfs, `overlay` for an
    overlay layer dir). With `expected_diff_id`, a mismatch raises `DiffIDMismatchError`
    after extraction; the caller must then discard `dest_dir`.
    """
    path = Path(blob_path)
    blob = f"sha256:{path.name}" if len(path.name) == 64 else str(path)
    base = options or ExtractOptions()
    opts = ExtractOptions(whiteouts=WhiteoutMode(mode), same_owner=base.same_owner,
                          allow_devices=base.allow_devices, xattrs=base.xattrs,
                          overlay_xattr_prefix=base.overlay_xattr_prefix, owner_access=base.owner_access)
    with open(path, "rb") as raw:
        stream = _decompressed(raw, media_type, blob)
        try:
            reader = _HashingReader(stream)
            try:
                stats = extract(reader, dest_dir, opts)  # type: ignore[arg-type]
                reader.drain()
            except (OSError, EOFError, zlib.error, zstandard.ZstdError, _IsalError) as exc:
                if isinstance(exc, OSError) and exc.errno is not None:
                    raise
                raise LayerFormatError(f"layer {blob}: corrupt compressed stream: {exc}") from exc
            finally:
                reader.close()
        finally:
            if stream is not raw:
                stream.close()
    if expected_diff_id is not None and reader.digest != expected_diff_id:
        raise DiffIDMismatchError(blob, expected_diff_id, reader.digest)
    return UnpackResult(diff_id=reader.digest, uncompressed_size=reader.size, stats=stats)


def unpack_image(resolved: ResolvedImage, content_store: ContentStoreLike, dest_dir: Path | str,
                 mode: WhiteoutMode | str = WhiteoutMode.APPLY,
                 options: ExtractOptions | None = None) -> list[UnpackResult]:
    """Unpack all layers of a pulled image, in order, into one directory (flattened)."""
    results = []
    for layer, diff_id in zip(resolved.layers, resolved.diff_ids):
        results.append(unpack_layer(content_store.path(layer.digest), layer.media_type, dest_dir, mode,
                                    expected_diff_id=diff_id, options=options))
    return results


def config_platform(config: Mapping[str, object]) -> Platform:
    return Platform(os=str(config.get("os", "linux")), architecture=str(config.get("architecture", "")),
                    variant=str(config.get("variant", "") or ""))
