"""Inline caches (``type=inline``): the cache records in the exported image's config under
``moby.buildkit.cache.v0``, their results naming the image's own layers by index.

As BuildKit's inline exporter (``cache/remotecache/inline``), only results whose layer
chain is a prefix of the image's layers are kept, and the value is the JSON list of
records (Go encodes it as base64, a ``[]byte``). Reading it back, the image's layers
become the cache's layers, each the parent of the next.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from solver.export.image import ImageLayer
from solver.remotecache.chains import ExportedCache
from solver.remotecache.graph import LinkGraph
from solver.remotecache.registry import registry_fetcher
from solver.remotecache.spec import (INLINE_CONFIG_KEY, CacheConfig, CacheConfigError, CacheLayer, CacheRecord,
                                     CacheResult, parse_records)


def inline_value(exported: ExportedCache, image_layers: list[ImageLayer] | tuple[ImageLayer, ...]) -> str:
    """The ``moby.buildkit.cache.v0`` value for an image with ``image_layers``."""
    blobs = [layer.digest for layer in image_layers]
    config = exported.config
    records = []
    for record in config.records:
        results = []
        for result in record.results:
            chain = [config.layers[i].blob for i in config.chain(result.layer)]
            if chain and chain == blobs[:len(chain)]:
                results.append(CacheResult(len(chain) - 1, result.created_at))
        records.append(CacheRecord(record.digest, record.inputs, results))
    data = json.dumps([r.to_json() for r in records], separators=(",", ":")).encode()
    return base64.b64encode(data).decode()


def with_inline_cache(image_config: dict[str, Any], value: str) -> dict[str, Any]:
    return {**image_config, INLINE_CONFIG_KEY: value}


def load_inline(client: Any, resolved: Any) -> LinkGraph | None:
    """The inline cache in a resolved image's config (``source.image.ResolvedImage``); None without one."""
    value = resolved.config.get(INLINE_CONFIG_KEY)
    if not value:
        return None
    try:
        records = parse_records(json.loads(base64.b64decode(value)))
    except (ValueError, TypeError) as error:
        raise CacheConfigError(f"inline cache of {resolved.name}: {error}") from None
    layers = [CacheLayer(desc.digest, i - 1) for i, desc in enumerate(resolved.layers)]
    config = CacheConfig(layers, records)
    config.validate()
    descriptors = {desc.digest: desc for desc in resolved.layers}
    diff_ids = dict(zip((d.digest for d in resolved.layers), resolved.diff_ids))
    return LinkGraph(f"inline {resolved.name}", config, descriptors, registry_fetcher(client, resolved.name),
                     diff_ids)
