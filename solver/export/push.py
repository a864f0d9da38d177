"""Registry push of a committed image: blobs first (skipped when present, cross-repository
mounted when the registry offers it, chunked when large), then the manifest."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from solver.cache.content import ContentStore
from solver.export.image import CommittedImage
from solver.source import reference
from solver.source.registry import Descriptor, RegistryClient

CHUNKED_ABOVE = 64 * 1024 * 1024  # bytes; larger blobs go up in PATCH chunks


@dataclass
class PushReport:
    """What a push did to each blob, and the manifest digest the registry stored."""

    reference: str
    manifest_digest: str = ""
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    mounted: list[str] = field(default_factory=list)


def push_image(client: RegistryClient, store: ContentStore, image: CommittedImage, name: str, *,
               mount_from: dict[str, str] | None = None,
               progress: Callable[[str, int, int], None] | None = None,
               chunked_above: int = CHUNKED_ABOVE) -> PushReport:
    """Push ``image`` as ``name``. ``mount_from`` maps blob digests to repositories on the
    same registry that already hold them (e.g. the base image's), for cross-repo mounts."""
    ref = reference.parse(name)
    report = PushReport(ref.string)
    blobs = [Descriptor(layer.media_type, layer.digest, layer.size) for layer in image.layers]
    blobs.append(image.config)
    total = sum(b.size for b in blobs)
    done = 0
    for desc in blobs:
        outcome = client.push_blob(ref, desc, lambda d=desc.digest: store.open(d),
                                   mount_from=(mount_from or {}).get(desc.digest), chunked_above=chunked_above)
        getattr(report, outcome if outcome != "exists" else "skipped").append(desc.digest)
        done += desc.size
        if progress:
            progress(desc.digest, done, total)
    manifest_bytes = store.read(image.manifest.digest)
    report.manifest_digest = client.put_manifest(ref, manifest_bytes, image.manifest.media_type)
    return report
