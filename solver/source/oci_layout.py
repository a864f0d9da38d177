"""An OCI image layout directory as an image source (`--build-context name=oci-layout://PATH[:TAG]`).

A layout is `oci-layout` (`{"imageLayoutVersion": "1.0.0"}`), `index.json` and
`blobs/sha256/<hex>`. A tag is the `org.opencontainers.image.ref.name` annotation of a
top-level descriptor in index.json (a full reference there, as some tools write, matches
by its tag too; `io.containerd.image.name` is the fallback). A tagged entry may itself be
an index, from which the platform is chosen.

    layout = OCILayout(Path("out"))
    image = layout.resolve("v1", Platform.parse("linux/arm64"))
    layout.import_blobs(image, content_store)      # verified copies into the store
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from solver.errors import LLBookError
from solver.source.image import ContentStoreLike, ResolvedImage, resolved_from_documents
from solver.source.registry import (INDEX_TYPES, MANIFEST_TYPES, Descriptor, Platform, choose_manifest,
                                    default_platform, manifest_media_type)

SCHEME = "oci-layout://"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
DEFAULT_TAG = "latest"
_SHA256_RE = re.compile(r"^sha256:([0-9a-f]{64})$")
_MAX_DOCUMENT = 16 * 1024 * 1024
_CHUNK = 1024 * 1024


class OCILayoutError(LLBookError):
    """A layout directory that is missing, malformed, or lacks the asked-for image."""


@dataclass(frozen=True)
class OCILayoutRef:
    path: Path
    tag: str | None = None
    digest: str | None = None


def parse_layout_ref(text: str) -> OCILayoutRef:
    """`oci-layout://PATH[:TAG][@sha256:...]` (the scheme is optional)."""
    rest = text[len(SCHEME):] if text.startswith(SCHEME) else text
    digest = None
    if "@" in rest:
        rest, digest = rest.rsplit("@", 1)
        if not _SHA256_RE.match(digest):
            raise OCILayoutError(f"{text}: invalid digest {digest!r}")
    tag = None
    colon = rest.rfind(":")
    if colon > rest.rfind("/") and colon > 0:
        rest, tag = rest[:colon], rest[colon + 1:]
    if not rest:
        raise OCILayoutError(f"{text}: no layout path")
    return OCILayoutRef(Path(rest), tag or None, digest)


def _tag_of(annotation: str) -> str:
    """`docker.io/library/x:v1` → `v1`; a bare tag stays as it is."""
    if "/" in annotation or "@" in annotation:
        name = annotation.split("@", 1)[0]
        colon = name.rfind(":")
        return name[colon + 1:] if colon > name.rfind("/") else ""
    return annotation


class OCILayout:
    """Read-only access to one OCI image layout directory."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        marker = self.root / "oci-layout"
        if not marker.is_file():
            raise OCILayoutError(f"{self.root} is not an OCI image layout (no oci-layout file)")
        try:
            version = json.loads(marker.read_text()).get("imageLayoutVersion")
        except (ValueError, AttributeError) as exc:
            raise OCILayoutError(f"{marker}: invalid JSON") from exc
        if not isinstance(version, str) or not version.startswith("1."):
            raise OCILayoutError(f"{marker}: unsupported imageLayoutVersion {version!r}")

    def index(self) -> dict:
        path = self.root / "index.json"
        try:
            document = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise OCILayoutError(f"{self.root}: no index.json") from None
        except ValueError as exc:
            raise OCILayoutError(f"{path}: invalid JSON") from exc
        if not isinstance(document, dict) or not isinstance(document.get("manifests"), list):
            raise OCILayoutError(f"{path}: no 'manifests' list")
        return document

    def descriptors(self) -> list[Descriptor]:
        return [Descriptor.from_dict(m, f"{self.root}/index.json") for m in self.index()["manifests"]
                if isinstance(m, dict)]

    def tags(self) -> list[str]:
        out = []
        for desc in self.descriptors():
            name = desc.annotations.get(ANNOTATION_REF_NAME) or desc.annotations.get(ANNOTATION_CONTAINERD_NAME, "")
            if name and _tag_of(name):
                out.append(_tag_of(name))
        return out

    def blob_path(self, digest: str) -> Path:
        match = _SHA256_RE.match(digest)
        if not match:
            raise OCILayoutError(f"{self.root}: invalid blob digest {digest!r}")
        return self.root / "blobs" / "sha256" / match.group(1)

    def read_blob(self, desc: Descriptor, max_size: int = _MAX_DOCUMENT) -> bytes:
        """A small blob (manifest, index, config), checked against its descriptor."""
        if desc.size > max_size:
            raise OCILayoutError(f"{self.root}: blob {desc.digest} is {desc.size} bytes, more than {max_size}")
        path = self.blob_path(desc.digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise OCILayoutError(f"{self.root}: blob {desc.digest} is missing") from None
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if actual != desc.digest or len(data) != desc.size:
            raise OCILayoutError(f"{self.root}: blob {desc.digest} has digest {actual} and {len(data)} bytes "
                                 f"(expected {desc.size}); the layout is corrupt")
        return data

    def find(self, tag: str | None = None, digest: str | None = None) -> Descriptor:
        """The top-level descriptor for `tag` or `digest` (or the only one)."""
        descs = self.descriptors()
        if digest is not None:
            for desc in descs:
                if desc.digest == digest:
                    return desc
            raise OCILayoutError(f"{self.root}: no manifest {digest} in index.json")
        if tag is None and len(descs) == 1:
            return descs[0]
        wanted = tag or DEFAULT_TAG
        for key in (ANNOTATION_REF_NAME, ANNOTATION_CONTAINERD_NAME):
            for desc in descs:
                name = desc.annotations.get(key)
                if name is not None and (name == wanted or _tag_of(name) == wanted):
                    return desc
        known = ", ".join(self.tags()) or "none"
        raise OCILayoutError(f"{self.root}: no image tagged {wanted!r} (tags: {known})")

    def resolve(self, tag: str | None = None, platform: Platform | None = None,
                digest: str | None = None) -> ResolvedImage:
        """Manifest and config of the image for `tag`/`digest` and `platform`."""
        want = platform or default_platform()
        if tag is None and digest is None and self._untagged_multi_platform():
            top = choose_manifest(self.index(), want, f"{self.root}/index.json")
        else:
            top = self.find(tag, digest)
        index_digest = None
        media_type = top.media_type
        data = self.read_blob(top)
        if not media_type:
            media_type = manifest_media_type(json.loads(data))
        if media_type in INDEX_TYPES:
            chosen = choose_manifest(json.loads(data), want, f"{self.root} index {top.digest}")
            index_digest = top.digest
            data = self.read_blob(chosen)
            media_type = chosen.media_type or manifest_media_type(json.loads(data))
        if media_type not in MANIFEST_TYPES:
            raise OCILayoutError(f"{self.root}: {top.digest} has unsupported media type {media_type!r}")
        manifest = json.loads(data)
        config_desc = Descriptor.from_dict(manifest.get("config") or {}, f"{self.root} manifest")
        config = self.read_blob(config_desc)
        name = f"{SCHEME}{self.root}" + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
        return resolved_from_documents(name, data, config, index_digest=index_digest, media_type=media_type)

    def _untagged_multi_platform(self) -> bool:
        descs = self.descriptors()
        return len(descs) > 1 and all(d.platform is not None and ANNOTATION_REF_NAME not in d.annotations
                                      for d in descs)

    def import_blobs(self, resolved: ResolvedImage, content_store: ContentStoreLike) -> list[Path]:
        """Copy manifest, config and layers into the content store (verified); return layer paths."""
        if not content_store.has(resolved.manifest_digest):
            content_store.write_bytes(resolved.manifest_bytes, resolved.manifest_digest)
        if not content_store.has(resolved.config_digest):
            content_store.write_bytes(resolved.config_bytes, resolved.config_digest)
        for layer in resolved.layers:
            if content_store.has(layer.digest):
                continue
            source = self.blob_path(layer.digest)
            try:
                with open(source, "rb") as f, content_store.writer(layer.digest, layer.size) as writer:
                    while chunk := f.read(_CHUNK):
                        writer.write(chunk)
                    writer.commit()
            except FileNotFoundError:
                raise OCILayoutError(f"{self.root}: layer blob {layer.digest} is missing") from None
            except LLBookError as exc:
                raise OCILayoutError(f"{self.root}: layer blob {layer.digest} is corrupt: {exc}") from exc
        return [content_store.path(layer.digest) for layer in resolved.layers]


def open_layout_ref(text: str, platform: Platform | None = None) -> tuple[OCILayout, ResolvedImage]:
    """`oci-layout://PATH[:TAG]` → (layout, resolved image)."""
    ref = parse_layout_ref(text)
    layout = OCILayout(ref.path)
    return layout, layout.resolve(ref.tag, platform, ref.digest)
