"""Manifest and index resolution: GET by tag or digest (verified, mirrors first), and a platform's manifest of an index."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from solver.llb.platform import Platform
from solver.source.reference import Reference, parse as parse_reference
from solver.source.registry.auth import pull_scope
from solver.source.registry.base import RegistryBase
from solver.source.registry.descriptor import (ACCEPT_MANIFESTS, INDEX_TYPES, MANIFEST_TYPES,
                                               MEDIA_TYPE_DOCKER_SCHEMA1, MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED, SHA256_RE,
                                               Descriptor, manifest_media_type, sha256_digest)
from solver.source.registry.errors import ManifestError, PlatformNotFoundError
from solver.source.registry.transport import Endpoint, check_status

MAX_MANIFEST_SIZE = 4 * 1024 * 1024


@dataclass(frozen=True)
class ManifestResponse:
    ref: Reference
    data: bytes
    media_type: str
    digest: str
    endpoint: Endpoint

    def json(self) -> dict:
        try:
            document = json.loads(self.data)
        except ValueError as exc:
            raise ManifestError(f"manifest {self.digest} of {self.ref} from {self.endpoint} is not JSON") from exc
        if not isinstance(document, dict):
            raise ManifestError(f"manifest {self.digest} of {self.ref} from {self.endpoint} is not a JSON object")
        return document


def _is_attestation(desc: Descriptor) -> bool:
    return (desc.annotations.get("vnd.docker.reference.type") == "attestation-manifest"
            or (desc.platform is not None and desc.platform.os == "unknown"))


def choose_manifest(index: Mapping[str, object], platform: Platform, where: str = "index") -> Descriptor:
    """Pick the manifest for `platform` from an OCI index or Docker manifest list.

    Exact variant match first, then a normalised match (arm64 "" == "v8"), then, when the
    caller asked for no variant, the first manifest of that os/architecture.
    """
    raw = index.get("manifests")
    if not isinstance(raw, list):
        raise ManifestError(f"{where}: index has no 'manifests' list")
    descs = [Descriptor.from_dict(m, where) for m in raw if isinstance(m, dict)]
    candidates = [d for d in descs if d.platform is not None and not _is_attestation(d)]
    exact = [d for d in candidates if d.platform == platform or (
        d.platform.os == platform.os and d.platform.architecture == platform.architecture
        and d.platform.variant == platform.variant)]
    normalised = [d for d in candidates if d.platform.matches(platform)]
    loose = [d for d in candidates if not platform.variant and d.platform.os == platform.os
             and d.platform.architecture == platform.architecture]
    for group in (exact, normalised, loose):
        if group:
            return group[0]
    available = ", ".join(str(d.platform) for d in candidates) or "none"
    raise PlatformNotFoundError(f"{where}: no manifest for platform {platform} (available: {available})")


class ManifestPuller(RegistryBase):
    """The manifest GETs of the pull side."""

    def get_manifest(self, ref: Reference | str, accept: str = ACCEPT_MANIFESTS,
                     endpoints: list[Endpoint] | None = None) -> ManifestResponse:
        """GET the manifest (or index) of `ref` by digest or tag, verified."""
        ref = parse_reference(ref) if isinstance(ref, str) else ref
        return self._try_endpoints(endpoints or self.endpoints(ref), f"manifest {ref}",
                                   lambda e: self._get_manifest_from(e, ref, ref.object, accept))

    def get_manifest_by_digest(self, ref: Reference, digest: str,
                               endpoints: list[Endpoint] | None = None) -> ManifestResponse:
        target = ref.with_digest(digest)
        return self._try_endpoints(endpoints or self.endpoints(ref), f"manifest {target}",
                                   lambda e: self._get_manifest_from(e, target, digest, ACCEPT_MANIFESTS))

    def _get_manifest_from(self, endpoint: Endpoint, ref: Reference, obj: str, accept: str) -> ManifestResponse:
        what = f"manifest {ref.familiar if not endpoint.mirror else ref.string}"
        url = endpoint.url(ref.path, "manifests", obj)
        with self.request(endpoint, "GET", url, scopes=[pull_scope(ref.path)],
                          headers={"Accept": accept}, what=what) as response:
            check_status(response, endpoint, what, ok=(200,))
            data = response.read(MAX_MANIFEST_SIZE)
            content_type = response.headers.get("Content-Type", "")
            header_digest = response.headers.get("Docker-Content-Digest", "")
        digest = sha256_digest(data)
        if SHA256_RE.match(obj) and digest != obj:
            raise ManifestError(f"{what} from {endpoint}: content has digest {digest}, expected {obj}")
        if SHA256_RE.match(header_digest or "") and header_digest != digest:
            raise ManifestError(f"{what} from {endpoint}: Docker-Content-Digest {header_digest} "
                                f"does not match the content ({digest})")
        try:
            document = json.loads(data)
        except ValueError as exc:
            raise ManifestError(f"{what} from {endpoint} is not JSON") from exc
        media_type = manifest_media_type(document if isinstance(document, dict) else {}, content_type)
        if media_type in (MEDIA_TYPE_DOCKER_SCHEMA1, MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED) or (
                isinstance(document, dict) and document.get("schemaVersion") == 1):
            raise ManifestError(f"{what} from {endpoint} is a Docker schema 1 manifest, which is not supported")
        if media_type not in MANIFEST_TYPES + INDEX_TYPES:
            raise ManifestError(f"{what} from {endpoint} has unsupported media type {media_type!r}")
        return ManifestResponse(ref=ref, data=data, media_type=media_type, digest=digest, endpoint=endpoint)
