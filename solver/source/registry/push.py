"""Push primitives, one request of the distribution spec each: HEAD, mount, monolithic and chunked upload, manifest PUT and HEAD."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import BinaryIO

from solver.source.reference import Reference
from solver.source.registry.auth import pull_scope, push_scope
from solver.source.registry.base import RegistryBase
from solver.source.registry.blobs import ProgressFn
from solver.source.registry.descriptor import ACCEPT_MANIFESTS, SHA256_RE, Descriptor, sha256_digest
from solver.source.registry.errors import ManifestError, RegistryError
from solver.source.registry.transport import CHUNK_SIZE, Endpoint, Response, check_status


@dataclass
class UploadSession:
    """An upload in progress; `location` moves on with every PATCH."""

    ref: Reference
    endpoint: Endpoint
    location: str
    offset: int = 0


class Pusher(RegistryBase):
    """The push side, used by the registry exporter."""

    def blob_exists(self, ref: Reference, digest: str) -> bool:
        """HEAD /v2/<name>/blobs/<digest>."""
        endpoint = self.endpoints(ref, push=True)[0]
        what = f"blob {digest} in {ref.name}"
        with self.request(endpoint, "HEAD", endpoint.url(ref.path, "blobs", digest),
                          scopes=[push_scope(ref.path)], what=what) as response:
            if response.status == 404:
                return False
            check_status(response, endpoint, what, ok=(200,))
            return True

    def start_upload(self, ref: Reference) -> UploadSession:
        """POST /v2/<name>/blobs/uploads/ → a session at the returned Location."""
        endpoint = self.endpoints(ref, push=True)[0]
        what = f"upload to {ref.name}"
        with self.request(endpoint, "POST", endpoint.url(ref.path, "blobs", "uploads/"),
                          scopes=[push_scope(ref.path)], headers={"Content-Length": "0"}, body=b"",
                          what=what) as response:
            check_status(response, endpoint, what, ok=(202,))
            return UploadSession(ref, endpoint, _location(response, endpoint, what))

    def mount_blob(self, ref: Reference, digest: str, from_repository: str) -> UploadSession | None:
        """POST ?mount=<digest>&from=<repo>: None if mounted (201), else the upload session (202)."""
        endpoint = self.endpoints(ref, push=True)[0]
        what = f"mount of {digest} from {from_repository} into {ref.name}"
        query = urllib.parse.urlencode({"mount": digest, "from": from_repository})
        url = endpoint.url(ref.path, "blobs", "uploads/") + "?" + query
        with self.request(endpoint, "POST", url, scopes=[push_scope(ref.path), pull_scope(from_repository)],
                          headers={"Content-Length": "0"}, body=b"", what=what) as response:
            if response.status == 201:
                return None
            check_status(response, endpoint, what, ok=(202,))
            return UploadSession(ref, endpoint, _location(response, endpoint, what))

    def upload_monolithic(self, session: UploadSession, digest: str, size: int,
                          body: bytes | Callable[[], BinaryIO]) -> str:
        """PUT <location>?digest=<digest> with the whole blob; returns the stored digest."""
        what = f"upload of blob {digest} to {session.ref.name}"
        url = _with_query(session.location, {"digest": digest})
        with self.request(session.endpoint, "PUT", url, scopes=[push_scope(session.ref.path)],
                          headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                          body=body, what=what) as response:
            check_status(response, session.endpoint, what, ok=(201, 204))
            return _stored_digest(response, digest, session.endpoint, what)

    def upload_chunked(self, session: UploadSession, digest: str, source: BinaryIO,
                       chunk_size: int = 8 * CHUNK_SIZE, progress: ProgressFn | None = None) -> str:
        """PATCH the blob in chunks (Content-Range), then PUT ?digest= to close the upload."""
        what = f"chunked upload of blob {digest} to {session.ref.name}"
        scopes = [push_scope(session.ref.path)]
        while chunk := source.read(chunk_size):
            end = session.offset + len(chunk) - 1
            with self.request(session.endpoint, "PATCH", session.location, scopes=scopes, retry=False,
                              headers={"Content-Type": "application/octet-stream",
                                       "Content-Range": f"{session.offset}-{end}",
                                       "Content-Length": str(len(chunk))},
                              body=chunk, what=what) as response:
                check_status(response, session.endpoint, what, ok=(202,))
                session.location = _location(response, session.endpoint, what)
            session.offset = end + 1
            if progress is not None:
                progress(len(chunk))
        url = _with_query(session.location, {"digest": digest})
        with self.request(session.endpoint, "PUT", url, scopes=scopes, headers={"Content-Length": "0"},
                          body=b"", what=what) as response:
            check_status(response, session.endpoint, what, ok=(201, 204))
            return _stored_digest(response, digest, session.endpoint, what)

    def push_blob(self, ref: Reference, desc: Descriptor, body: bytes | Callable[[], BinaryIO],
                  mount_from: str | None = None, chunked_above: int | None = None) -> str:
        """Make `desc` exist in `ref`'s repository: skip if present, mount if possible, else upload
        (in PATCH chunks when `body` opens a stream and the blob is larger than `chunked_above`)."""
        if self.blob_exists(ref, desc.digest):
            return "exists"
        session: UploadSession | None
        if mount_from and mount_from != ref.path:
            session = self.mount_blob(ref, desc.digest, mount_from)
            if session is None:
                return "mounted"
        else:
            session = self.start_upload(ref)
        if callable(body) and chunked_above is not None and desc.size > chunked_above:
            with body() as stream:
                self.upload_chunked(session, desc.digest, stream)
        else:
            self.upload_monolithic(session, desc.digest, desc.size, body)
        return "uploaded"

    def put_manifest(self, ref: Reference, data: bytes, media_type: str) -> str:
        """PUT /v2/<name>/manifests/<tag or digest>; returns the manifest digest."""
        endpoint = self.endpoints(ref, push=True)[0]
        digest = sha256_digest(data)
        what = f"manifest {digest} for {ref.string}"
        with self.request(endpoint, "PUT", endpoint.url(ref.path, "manifests", ref.object),
                          scopes=[push_scope(ref.path)],
                          headers={"Content-Type": media_type, "Content-Length": str(len(data))},
                          body=data, what=what) as response:
            check_status(response, endpoint, what, ok=(201, 202, 204))
            return _stored_digest(response, digest, endpoint, what)

    def head_manifest(self, ref: Reference) -> Descriptor | None:
        """HEAD /v2/<name>/manifests/<tag or digest>; None when absent."""
        endpoint = self.endpoints(ref, push=True)[0]
        what = f"manifest {ref.string}"
        with self.request(endpoint, "HEAD", endpoint.url(ref.path, "manifests", ref.object),
                          scopes=[pull_scope(ref.path)], headers={"Accept": ACCEPT_MANIFESTS},
                          what=what) as response:
            if response.status == 404:
                return None
            check_status(response, endpoint, what, ok=(200,))
            digest = response.headers.get("Docker-Content-Digest", "")
            if not SHA256_RE.match(digest):
                raise ManifestError(f"{what}: {endpoint} sent no Docker-Content-Digest on HEAD")
            return Descriptor(media_type=response.headers.get("Content-Type", "").split(";")[0],
                              digest=digest, size=int(response.headers.get("Content-Length", "0") or 0))


def _location(response: Response, endpoint: Endpoint, what: str) -> str:
    location = response.headers.get("Location")
    if not location:
        raise RegistryError(f"{what}: {endpoint} sent no Location header")
    return urllib.parse.urljoin(f"{endpoint.scheme}://{endpoint.host}/", location)


def _stored_digest(response: Response, expected: str, endpoint: Endpoint, what: str) -> str:
    returned = response.headers.get("Docker-Content-Digest", "") or expected
    if returned != expected:
        raise RegistryError(f"{what}: {endpoint} stored digest {returned}, expected {expected}")
    return returned


def _with_query(url: str, params: Mapping[str, str]) -> str:
    sep = "&" if urllib.parse.urlsplit(url).query else "?"
    return url + sep + urllib.parse.urlencode(params)
