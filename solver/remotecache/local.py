"""Local caches (``type=local``): an OCI image layout directory holding the layers, the
config and the cache manifest, tagged in ``index.json`` (``org.opencontainers.image.ref.name``)
as BuildKit's local cache exporter does; imports verify every blob they copy in."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from solver.cache.content import ContentStore
from solver.remotecache.chains import ExportedCache
from solver.remotecache.graph import LinkGraph
from solver.remotecache.manifest import UNCOMPRESSED_ANNOTATION, cache_descriptors, cache_manifest, checked_config
from solver.remotecache.spec import CacheConfigError
from solver.source.registry import MEDIA_TYPE_OCI_INDEX, Descriptor

REF_NAME = "org.opencontainers.image.ref.name"


def _blob_path(root: Path, digest: str) -> Path:
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm != "sha256" or len(hexdigest) != 64 or not all(c in "0123456789abcdef" for c in hexdigest):
        raise CacheConfigError(f"local cache: bad digest {digest!r}")
    return root / "blobs" / "sha256" / hexdigest


def _write_blob(root: Path, digest: str, data: bytes | None = None, source: Path | None = None) -> None:
    path = _blob_path(root, digest)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    if data is not None:
        tmp.write_bytes(data)
    else:
        assert source is not None
        shutil.copyfile(source, tmp)
    os.replace(tmp, path)


def write_cache(store: ContentStore, exported: ExportedCache, dest: str | Path, *, tag: str = "latest",
                oci: bool = True, image_manifest: bool = False) -> str:
    """Write ``exported`` into the layout at ``dest``; returns the cache manifest's digest."""
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    manifest = cache_manifest(exported, oci=oci, image_manifest=image_manifest)
    for desc in manifest.layers:
        _write_blob(root, desc.digest, source=store.path(desc.digest))
    _write_blob(root, manifest.config.digest, manifest.config_bytes)
    digest = "sha256:" + hashlib.sha256(manifest.data).hexdigest()
    _write_blob(root, digest, manifest.data)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index_path = root / "index.json"
    index = {"schemaVersion": 2, "mediaType": MEDIA_TYPE_OCI_INDEX, "manifests": []}
    if index_path.exists():
        try:
            index = json.loads(index_path.read_text())
        except ValueError:
            pass
    entries = [m for m in index.get("manifests", []) if (m.get("annotations") or {}).get(REF_NAME) != tag]
    entries.append({"mediaType": manifest.media_type, "digest": digest, "size": len(manifest.data),
                    "annotations": {REF_NAME: tag}})
    index["manifests"] = entries
    tmp = index_path.with_name(f".index.json.{os.getpid()}")
    tmp.write_text(json.dumps(index, separators=(",", ":")))
    os.replace(tmp, index_path)
    return digest


def _verified(path: Path, digest: str) -> bytes:
    data = path.read_bytes()
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise CacheConfigError(f"local cache: blob {digest} has digest {actual}")
    return data


def load_cache(src: str | Path, *, tag: str = "latest", digest: str = "") -> LinkGraph:
    """The cache tagged ``tag`` (or with manifest ``digest``) in the layout at ``src``."""
    root = Path(src)
    try:
        index = json.loads((root / "index.json").read_text())
    except (OSError, ValueError) as error:
        raise CacheConfigError(f"local cache {root}: no readable index.json ({error})") from None
    entries = [m for m in index.get("manifests") or []
               if (digest and m.get("digest") == digest) or
               (not digest and (m.get("annotations") or {}).get(REF_NAME) == tag)]
    if not entries:
        raise CacheConfigError(f"local cache {root}: nothing tagged {digest or tag!r}")
    manifest_digest = str(entries[-1]["digest"])
    document = json.loads(_verified(_blob_path(root, manifest_digest), manifest_digest))
    found = cache_descriptors(document)
    if found is None:
        raise CacheConfigError(f"local cache {root}: {manifest_digest} is not a cache manifest")
    config_desc, layers = found
    config = checked_config(_blob_path(root, config_desc.digest).read_bytes(), config_desc)

    def fetch(desc: Descriptor, store: ContentStore) -> Path:
        store.ingest_file(_blob_path(root, desc.digest), expected_digest=desc.digest)
        return store.path(desc.digest)

    diff_ids = {d.digest: str(d.annotations[UNCOMPRESSED_ANNOTATION]) for d in layers
                if UNCOMPRESSED_ANNOTATION in (d.annotations or {})}
    return LinkGraph(f"local {root}", config, {d.digest: d for d in layers}, fetch, diff_ids)
