"""A solve result's cache as BuildKit's cache config: records, links and result layers.

For every vertex output of the result (``mode=max``) or only those whose result is one
of the layers of the final result (``mode=min``, as BuildKit's min mode exports the
results that the exported image already holds), one record per key:

- digest ``rootKey(cache map digest, output)``; an image source gets a second root
  record for its config key (the chain ID of its layers), as BuildKit's image source has
  two cache maps;
- per input, links to the input's records with the dep's selector, and for a content-
  hashed input also a link from the slow key record ``rootKey(checksum, -1)``;
- results: the layer chain of the output's snapshot, as blobs in the content store
  (pulled blobs as they are, built layers compressed once and remembered by the exporter).

A record is left out, with everything that depends on it, when one of its inputs has no
exportable link (a local context source, whose key is random, contributes only its
content checksum link).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from solver.export.image import ImageLayer, rfc3339
from solver.remotecache.spec import CacheConfig, CacheInput, CacheLayer, CacheRecord, CacheResult, sort_config
from solver.solve import cachekey

MODES = ("min", "max")


@dataclass
class ExportedCache:
    """A cache config and the layer blobs it names (in the solver's content store)."""

    config: CacheConfig
    layers: dict[str, ImageLayer] = field(default_factory=dict)


class _Builder:
    def __init__(self) -> None:
        self.config = CacheConfig()
        self.layers: dict[str, ImageLayer] = {}
        self._layer_index: dict[tuple[str, int], int] = {}
        self._record_index: dict[tuple[str, tuple], int] = {}

    def layer_chain(self, chain: list[ImageLayer]) -> int:
        parent = -1
        for layer in chain:
            self.layers[layer.digest] = layer
            key = (layer.digest, parent)
            if key not in self._layer_index:
                self._layer_index[key] = len(self.config.layers)
                self.config.layers.append(CacheLayer(layer.digest, parent))
            parent = self._layer_index[key]
        return parent

    def record(self, digest: str, inputs: list[list[CacheInput]]) -> int:
        key = (digest, tuple(tuple((i.link, i.selector) for i in g) for g in inputs))
        if key not in self._record_index:
            self._record_index[key] = len(self.config.records)
            self.config.records.append(CacheRecord(digest, inputs))
        return self._record_index[key]


def snapshot_layers(solver: Any, result: Any, snapshot: str) -> list[ImageLayer]:
    """The layer blobs of one snapshot, bottom first (``solver.export`` writes built ones)."""
    from types import SimpleNamespace

    from solver.export import OutputSpec, build_image
    from solver.export.result_source import export_source
    shim = SimpleNamespace(snapshot=snapshot, vertices=result.vertices, head=result.head,
                           output=result.output, image_config={})
    source = export_source(solver, shim, {})
    image = build_image(source, OutputSpec("image", name="cache", push=True))
    return list(image.layers)


def build_cache(solver: Any, result: Any, mode: str = "min") -> ExportedCache:
    """The cache config of ``result`` (a ``SolveResult`` of ``solver``)."""
    from solver.export.result_source import layer_chain
    if mode not in MODES:
        raise ValueError(f"cache mode {mode!r}: use min or max")
    b = _Builder()
    final = set(layer_chain(solver.snapshotter, result.snapshot)) if result.snapshot else set()
    records_of: dict[str, list[int]] = {}  # local key -> record indexes
    chains: dict[str, list[ImageLayer]] = {}
    for vertex in result.vertices:  # inputs come before their consumers
        for key in vertex.cache_keys:
            if cachekey.is_random(key):
                continue
            rec = solver.store.get(key)
            if rec is None or not rec.key_inputs:
                continue
            found = _add_record(b, rec, records_of)
            if not found:
                continue
            records_of[key] = found
            if rec.snapshot and (mode == "max" or rec.snapshot in final):
                if rec.snapshot not in chains:
                    chains[rec.snapshot] = snapshot_layers(solver, result, rec.snapshot)
                top = b.layer_chain(chains[rec.snapshot])
                if top >= 0:
                    for index in found:
                        b.config.records[index].results.append(CacheResult(top, rfc3339(rec.created)))
    return ExportedCache(sort_config(b.config), b.layers)


def _add_record(b: _Builder, rec: Any, records_of: dict[str, list[int]]) -> list[int]:
    """The record(s) of one stored result: under its cache map digest and the digests
    older BuildKit versions compute for it (``compat``), linked with both selectors."""
    ki = rec.key_inputs
    output = int(ki.get("output", rec.output_index))
    digests = [cachekey.root_key(d, output) for d in (ki["op_digest"], *(ki.get("compat") or ()))]
    deps = ki.get("deps") or []
    if not deps:
        out = [b.record(digest, []) for digest in digests]
        diff_ids = rec.extra.get("diff_ids") or []
        if diff_ids and rec.op_kind == "image":
            from solver.solve.ops_source import chain_ids
            config_key = cachekey.sha256_text(cachekey.SOURCE_PREFIX + chain_ids(diff_ids)[-1])
            out.append(b.record(cachekey.root_key(config_key, 0), []))
        return out
    inputs: list[list[CacheInput]] = []
    for dep in deps:
        selectors = dict.fromkeys([dep.get("selector") or "", *([dep["compat_selector"]]
                                                                 if dep.get("compat_selector") is not None else [])])
        group = [CacheInput(index, selector) for index in records_of.get(dep.get("input_key") or "", [])
                 for selector in selectors]
        if dep.get("checksum"):
            group.append(CacheInput(b.record(cachekey.slow_key(dep["checksum"]), []), ""))
        if not group:
            return []
        inputs.append(group)
    return [b.record(digest, inputs) for digest in digests]
