"""The cache manifest BuildKit pushes beside the layers, written and read.

BuildKit's ``ExportableCache`` (``cache/remotecache/export.go``): by default an index
(an OCI image index, or a Docker manifest list with ``oci-mediatypes=false``) whose
``manifests`` are the layer descriptors followed by the cache config's descriptor
(``application/vnd.buildkit.cacheconfig.v0``); with ``image-manifest=true`` an OCI image
manifest with the config as ``config`` and the layers as ``layers``. Layer descriptors
carry ``containerd.io/uncompressed`` (the diff_id) and ``buildkit/createdat``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from solver.export.layer import compression_of, layer_media_type
from solver.remotecache.chains import ExportedCache
from solver.remotecache.spec import CACHE_CONFIG_MEDIA_TYPE, CacheConfig, CacheConfigError, parse_config
from solver.source.registry import (MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST,
                                    Descriptor)

UNCOMPRESSED_ANNOTATION = "containerd.io/uncompressed"
CREATED_ANNOTATION = "buildkit/createdat"


@dataclass(frozen=True)
class CacheManifest:
    """A cache manifest's bytes and type, and the config blob it names."""

    data: bytes
    media_type: str
    config_bytes: bytes
    config: Descriptor
    layers: tuple[Descriptor, ...]


def _sha256(data: bytes) -> str:
    import hashlib
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_descriptors(exported: ExportedCache, oci: bool) -> list[Descriptor]:
    created: dict[str, str] = {}
    for record in exported.config.records:
        for result in record.results:
            for index in exported.config.chain(result.layer):
                created.setdefault(exported.config.layers[index].blob, result.created_at)
    out = []
    for layer in exported.config.layers:
        blob = exported.layers[layer.blob]
        annotations = {UNCOMPRESSED_ANNOTATION: blob.diff_id}
        if layer.blob in created:
            annotations[CREATED_ANNOTATION] = created[layer.blob]
        out.append(Descriptor(layer_media_type(compression_of(blob.media_type), oci), blob.digest, blob.size,
                              annotations=annotations))
    return out


def cache_manifest(exported: ExportedCache, *, oci: bool = True, image_manifest: bool = False) -> CacheManifest:
    config_bytes = exported.config.to_bytes()
    config = Descriptor(CACHE_CONFIG_MEDIA_TYPE, _sha256(config_bytes), len(config_bytes))
    layers = layer_descriptors(exported, oci)
    if image_manifest:
        media_type = MEDIA_TYPE_OCI_MANIFEST
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type, "config": _desc(config),
                               "layers": [_desc(d) for d in layers]}
    else:
        media_type = MEDIA_TYPE_OCI_INDEX if oci else MEDIA_TYPE_DOCKER_LIST
        doc = {"schemaVersion": 2, "mediaType": media_type,
               "manifests": [_desc(d) for d in layers] + [_desc(config)]}
    data = json.dumps(doc, separators=(",", ":")).encode()
    return CacheManifest(data, media_type, config_bytes, config, tuple(layers))


def _desc(d: Descriptor) -> dict[str, Any]:
    out: dict[str, Any] = {"mediaType": d.media_type, "digest": d.digest, "size": d.size}
    if d.annotations:
        out["annotations"] = dict(d.annotations)
    return out


def cache_descriptors(document: dict[str, Any]) -> tuple[Descriptor, list[Descriptor]] | None:
    """(config, layers) of a cache manifest; None for anything else (e.g. an image)."""
    try:
        if isinstance(document.get("manifests"), list):
            descs = [Descriptor.from_dict(d) for d in document["manifests"]]
            configs = [d for d in descs if d.media_type == CACHE_CONFIG_MEDIA_TYPE]
            if not configs:
                return None
            return configs[-1], [d for d in descs if d.media_type != CACHE_CONFIG_MEDIA_TYPE]
        config = document.get("config")
        if isinstance(config, dict) and config.get("mediaType") == CACHE_CONFIG_MEDIA_TYPE:
            return Descriptor.from_dict(config), [Descriptor.from_dict(d) for d in document.get("layers") or []]
    except (ValueError, TypeError, AttributeError) as error:
        raise CacheConfigError(f"cache manifest: {error}") from None
    return None


def checked_config(raw: bytes, desc: Descriptor) -> CacheConfig:
    """The config blob, refused when its bytes are not the descriptor's."""
    if _sha256(raw) != desc.digest:
        raise CacheConfigError(f"cache config {desc.digest}: content has digest {_sha256(raw)}")
    return parse_config(raw)
