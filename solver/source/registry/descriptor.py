"""OCI and Docker media types, content descriptors, and the media type of a manifest document."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from solver.llb.platform import Platform
from solver.source.registry.errors import ManifestError

MEDIA_TYPE_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_TYPE_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_TYPE_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_TYPE_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MEDIA_TYPE_OCI_LAYER_ND_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
MEDIA_TYPE_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_TYPE_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_TYPE_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_TYPE_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
MEDIA_TYPE_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MEDIA_TYPE_DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
MEDIA_TYPE_DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
MEDIA_TYPE_DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

MANIFEST_TYPES = (MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST)
INDEX_TYPES = (MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_DOCKER_LIST)
ACCEPT_MANIFESTS = ", ".join(MANIFEST_TYPES + INDEX_TYPES)
SHA256_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def default_platform() -> Platform:
    """The host's platform (`linux/<arch>`), as `Platform.host()`."""
    return Platform.host()


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None

    @staticmethod
    def from_dict(data: Mapping[str, object], where: str = "descriptor") -> "Descriptor":
        digest, size = data.get("digest"), data.get("size")
        if not isinstance(digest, str) or not SHA256_RE.match(digest):
            raise ManifestError(f"{where}: invalid or missing digest {digest!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError(f"{where}: invalid or missing size {size!r} for {digest}")
        platform = data.get("platform")
        annotations = data.get("annotations") or {}
        urls = data.get("urls") or ()
        return Descriptor(
            media_type=str(data.get("mediaType", "")), digest=digest, size=size,
            urls=tuple(str(u) for u in urls) if isinstance(urls, list) else (),
            annotations={str(k): str(v) for k, v in annotations.items()} if isinstance(annotations, dict) else {},
            platform=Platform.from_dict(platform) if isinstance(platform, dict) else None)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_dict()
        return out


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest_media_type(data: Mapping[str, object], content_type: str = "") -> str:
    """The media type of a manifest document: its `mediaType`, the header, or its shape."""
    declared = data.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    header = content_type.split(";", 1)[0].strip()
    if header in MANIFEST_TYPES + INDEX_TYPES:
        return header
    if "manifests" in data:
        return MEDIA_TYPE_OCI_INDEX
    if "layers" in data or "config" in data:
        return MEDIA_TYPE_OCI_MANIFEST
    return header
