"""Blob pull: a blob streamed into a fresh writer per attempt, verified by digest and size, a broken transfer retried."""

from __future__ import annotations

import hashlib
import http.client
import time
import urllib.parse
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

from solver.source.reference import Reference, parse as parse_reference
from solver.source.registry.auth import pull_scope
from solver.source.registry.base import RegistryBase
from solver.source.registry.descriptor import Descriptor
from solver.source.registry.errors import BlobDigestMismatchError, ManifestError, TransferInterruptedError
from solver.source.registry.transport import Endpoint, Response, check_status, reason

MAX_CONFIG_SIZE = 16 * 1024 * 1024
ProgressFn = Callable[[int], None]  # new bytes; a negative count rewinds a failed attempt


class BlobWriterLike(Protocol):
    """What `download_blob` writes into; `solver.cache.content.BlobWriter` is one."""

    def write(self, data: bytes) -> object: ...

    def commit(self) -> str: ...


class _Counted:
    """Forwards byte counts to a progress callback and can take them back."""

    def __init__(self, progress: ProgressFn | None) -> None:
        self.progress = progress
        self.total = 0

    def __call__(self, n: int) -> None:
        self.total += n
        if self.progress is not None:
            self.progress(n)

    def rewind(self) -> None:
        if self.progress is not None and self.total:
            self.progress(-self.total)
        self.total = 0


def _repo_of(url: str, endpoint: Endpoint) -> str:
    path = urllib.parse.urlsplit(url).path
    rest = path[len(urllib.parse.urlsplit(endpoint.base_url).path):]
    return rest.rsplit("/blobs/", 1)[0].rsplit("/manifests/", 1)[0]


class BlobPuller(RegistryBase):
    """The blob GETs of the pull side."""

    def read_blob(self, ref: Reference, desc: Descriptor, max_size: int = MAX_CONFIG_SIZE,
                  endpoints: list[Endpoint] | None = None) -> bytes:
        """A small blob (e.g. an image config) in memory, verified against `desc`."""
        if desc.size > max_size:
            raise ManifestError(f"blob {desc.digest} of {ref} is {desc.size} bytes, more than {max_size}")
        parts: list[bytes] = []

        class _Mem:
            def write(self, data: bytes) -> int:
                parts.append(data)
                return len(data)

            def commit(self) -> str:
                return desc.digest

        def open_writer() -> AbstractContextManager[BlobWriterLike]:
            parts.clear()
            return nullcontext(_Mem())

        self.download_blob(ref, desc, open_writer, endpoints=endpoints)
        return b"".join(parts)

    def download_blob(self, ref: Reference, desc: Descriptor,
                      open_writer: Callable[[], AbstractContextManager[BlobWriterLike]],
                      endpoints: list[Endpoint] | None = None,
                      progress: ProgressFn | None = None) -> str:
        """Stream blob `desc` of `ref` into a fresh writer, verify it, then `commit()`.

        Each attempt (per endpoint, per retry) opens a new writer, so a half-written or
        tampered download is never committed. Returns the committed digest.
        """
        ref = parse_reference(ref) if isinstance(ref, str) else ref

        def from_endpoint(endpoint: Endpoint) -> str:
            return self._download_from(endpoint, ref, desc, open_writer, progress)

        return self._try_endpoints(endpoints or self.endpoints(ref), f"blob {desc.digest} of {ref}",
                                   from_endpoint)

    def _download_from(self, endpoint: Endpoint, ref: Reference, desc: Descriptor,
                       open_writer: Callable[[], AbstractContextManager[BlobWriterLike]],
                       progress: ProgressFn | None) -> str:
        what = f"blob {desc.digest} of {ref.string}"
        url = endpoint.url(ref.path, "blobs", desc.digest)
        for attempt in range(self.retry.attempts):
            try:
                return self._download_once(endpoint, url, desc, open_writer, progress, what)
            except TransferInterruptedError:
                if attempt + 1 >= self.retry.attempts:
                    raise
                time.sleep(self.retry.delay(attempt))
        raise AssertionError("unreachable")

    def _download_once(self, endpoint: Endpoint, url: str, desc: Descriptor,
                       open_writer: Callable[[], AbstractContextManager[BlobWriterLike]],
                       progress: ProgressFn | None, what: str) -> str:
        with self.request(endpoint, "GET", url, scopes=[pull_scope(_repo_of(url, endpoint))],
                          what=what) as response:
            check_status(response, endpoint, what, ok=(200,))
            counted = _Counted(progress)
            try:
                with open_writer() as writer:
                    _stream_verified(response, desc, writer, counted, f"{what} from {endpoint}")
                    return writer.commit()
            except BaseException:
                counted.rewind()
                raise


def _stream_verified(response: Response, desc: Descriptor, writer: BlobWriterLike,
                     counted: _Counted, what: str) -> str:
    """Copy the body into `writer` while hashing; raise unless it is exactly `desc`."""
    hasher = hashlib.sha256()
    size = 0
    chunks = response.iter_chunks()
    while True:
        try:
            chunk = next(chunks, None)
        except (OSError, http.client.HTTPException) as exc:  # only the network's errors are retried
            raise TransferInterruptedError(f"{what}: download broke off after {size} bytes: "
                                           f"{reason(exc)}") from exc
        if chunk is None:
            break
        size += len(chunk)
        if size > desc.size:
            raise BlobDigestMismatchError(
                f"{what}: more than the {desc.size} bytes the descriptor promises; "
                f"refused, nothing stored", blob=desc.digest, actual="", size=size)
        hasher.update(chunk)
        writer.write(chunk)  # a full disk (StoreFullError, ENOSPC) fails at once, never retried
        counted(len(chunk))
    declared = response.headers.get("Content-Length")
    if size < desc.size and (declared is None or declared == str(desc.size)):
        # http.client returns a short read, not an error, when the peer closes early
        raise TransferInterruptedError(f"{what}: download broke off after {size} of {desc.size} bytes")
    actual = "sha256:" + hasher.hexdigest()
    if actual != desc.digest or size != desc.size:
        raise BlobDigestMismatchError(
            f"{what}: got {size} bytes with digest {actual}, expected {desc.size} bytes with "
            f"digest {desc.digest}; refused, nothing stored", blob=desc.digest, actual=actual, size=size)
    return actual
