"""Registry caches (``type=registry``): push the layers, the config and the cache manifest
under ``ref``; import by reading that manifest and its config (layers stay remote until
the solver needs one)."""

from __future__ import annotations

from pathlib import Path

from solver.cache.content import ContentStore
from solver.remotecache.chains import ExportedCache
from solver.remotecache.graph import LinkGraph
from solver.remotecache.manifest import UNCOMPRESSED_ANNOTATION, cache_descriptors, cache_manifest, checked_config
from solver.source import reference
from solver.source.registry import Descriptor, RegistryClient


def push_cache(client: RegistryClient, store: ContentStore, exported: ExportedCache, ref: str, *,
               oci: bool = True, image_manifest: bool = False) -> str:
    """Push ``exported`` as ``ref``; returns the cache manifest's digest."""
    target = reference.parse(ref)
    manifest = cache_manifest(exported, oci=oci, image_manifest=image_manifest)
    for desc in manifest.layers:
        client.push_blob(target, desc, lambda d=desc.digest: store.open(d), chunked_above=64 << 20)
    client.push_blob(target, manifest.config, manifest.config_bytes)
    return client.put_manifest(target, manifest.data, manifest.media_type)


def registry_fetcher(client: RegistryClient, ref: str):
    target = reference.parse(ref)

    def fetch(desc: Descriptor, store: ContentStore) -> Path:
        client.download_blob(target, desc, lambda: store.writer(expected_digest=desc.digest,
                                                                 expected_size=desc.size))
        return store.path(desc.digest)
    return fetch


def load_cache(client: RegistryClient, ref: str, document: dict, name: str | None = None) -> LinkGraph | None:
    """The cache ``document`` (the manifest at ``ref``) names; None when it is not a cache."""
    found = cache_descriptors(document)
    if found is None:
        return None
    config_desc, layers = found
    target = reference.parse(ref)
    config = checked_config(client.read_blob(target, config_desc), config_desc)
    descriptors = {d.digest: d for d in layers}
    diff_ids = {d.digest: str(d.annotations[UNCOMPRESSED_ANNOTATION]) for d in layers
                if UNCOMPRESSED_ANNOTATION in (d.annotations or {})}
    return LinkGraph(name or f"registry {ref}", config, descriptors, registry_fetcher(client, ref), diff_ids)
