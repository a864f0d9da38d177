"""BuildKit's cache config v0 (``application/vnd.buildkit.cacheconfig.v0``): model and JSON.

Mirrors ``cache/remotecache/v1/types/spec.go``: layers (a blob and the index of its
parent layer, -1 for none) and records (a digest, per input the links to other records
with a selector, and results naming the top layer of a chain). Field names and
``omitempty`` rules are Go's, so BuildKit parses what we write and we parse what it
writes. ``sort_config`` orders layers and records as BuildKit's ``sortConfig`` does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from solver.errors import LLBookError
from solver.export.image import INLINE_CACHE_KEY as INLINE_CONFIG_KEY  # noqa: F401 (re-exported)

CACHE_CONFIG_MEDIA_TYPE = "application/vnd.buildkit.cacheconfig.v0"
ZERO_TIME = "0001-01-01T00:00:00Z"


class CacheConfigError(LLBookError):
    """A cache config that does not parse or links to records or layers it lacks."""


@dataclass(frozen=True)
class CacheLayer:
    blob: str
    parent: int = -1
    annotations: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"blob": self.blob}
        if self.parent != 0:
            out["parent"] = self.parent
        if self.annotations:
            out["annotations"] = self.annotations
        return out


@dataclass(frozen=True)
class CacheInput:
    link: int
    selector: str = ""

    def to_json(self) -> dict[str, Any]:
        return ({"selector": self.selector} if self.selector else {}) | {"link": self.link}


@dataclass(frozen=True)
class CacheResult:
    layer: int
    created_at: str = ZERO_TIME


@dataclass
class CacheRecord:
    digest: str
    inputs: list[list[CacheInput]] = field(default_factory=list)
    results: list[CacheResult] = field(default_factory=list)
    chains: list[tuple[list[int], str]] = field(default_factory=list)  # ChainedResult

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.results:
            out["layers"] = [{"layer": r.layer, "createdAt": r.created_at} for r in self.results]
        if self.chains:
            out["chains"] = [{"layers": list(idx), "createdAt": at} for idx, at in self.chains]
        out["digest"] = self.digest
        if self.inputs:
            out["inputs"] = [[i.to_json() for i in group] for group in self.inputs]
        return out


@dataclass
class CacheConfig:
    layers: list[CacheLayer] = field(default_factory=list)
    records: list[CacheRecord] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.layers:
            out["layers"] = [layer.to_json() for layer in self.layers]
        if self.records:
            out["records"] = [r.to_json() for r in self.records]
        return out

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode()

    def chain(self, layer: int) -> list[int]:
        """Layer indexes from the bottom of the chain up to ``layer``."""
        out: list[int] = []
        while layer != -1:
            if not 0 <= layer < len(self.layers) or layer in out:
                raise CacheConfigError(f"cache config: bad layer index {layer}")
            out.append(layer)
            layer = self.layers[layer].parent
        return out[::-1]

    def validate(self) -> None:
        for record in self.records:
            for group in record.inputs:
                for inp in group:
                    if not 0 <= inp.link < len(self.records):
                        raise CacheConfigError(f"cache config: record {record.digest} links to {inp.link}")
            for result in record.results:
                self.chain(result.layer)
            for idx, _ in record.chains:
                for layer in idx:
                    self.chain(layer)


def _record_from_json(data: dict[str, Any]) -> CacheRecord:
    inputs = [[CacheInput(int(i.get("link", 0)), str(i.get("selector", ""))) for i in group or []]
              for group in data.get("inputs") or []]
    results = [CacheResult(int(r.get("layer", 0)), str(r.get("createdAt", ZERO_TIME)))
               for r in data.get("layers") or []]
    chains = [([int(x) for x in c.get("layers") or []], str(c.get("createdAt", ZERO_TIME)))
              for c in data.get("chains") or []]
    return CacheRecord(str(data.get("digest", "")), inputs, results, chains)


def parse_records(data: Any) -> list[CacheRecord]:
    if not isinstance(data, list):
        raise CacheConfigError("cache records: expected a JSON list")
    try:
        return [_record_from_json(r) for r in data]
    except (AttributeError, TypeError, ValueError) as error:
        raise CacheConfigError(f"cache records: {error}") from None


def parse_config(raw: bytes) -> CacheConfig:
    """A cache config blob as BuildKit writes it."""
    try:
        data = json.loads(raw)
        layers = [CacheLayer(str(l["blob"]), int(l.get("parent", 0)), l.get("annotations"))
                  for l in data.get("layers") or []]
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise CacheConfigError(f"cache config: {error}") from None
    config = CacheConfig(layers, parse_records(data.get("records") or []))
    config.validate()
    return config


def sort_config(config: CacheConfig) -> CacheConfig:
    """Layers by (blob, parent) and records by (digest, inputs), indexes rewritten."""
    order = sorted(range(len(config.layers)), key=lambda i: (config.layers[i].blob, config.layers[i].parent))
    new_layer = {old: new for new, old in enumerate(order)}
    layers = [CacheLayer(config.layers[old].blob,
                         new_layer[config.layers[old].parent] if config.layers[old].parent != -1 else -1,
                         config.layers[old].annotations) for old in order]
    recs = config.records

    def record_key(i: int) -> tuple:
        r = recs[i]
        return (r.digest, len(r.inputs),
                tuple((len(g), tuple((inp.selector, recs[inp.link].digest) for inp in g)) for g in r.inputs))

    rorder = sorted(range(len(recs)), key=record_key)
    new_rec = {old: new for new, old in enumerate(rorder)}
    records = []
    for old in rorder:
        r = recs[old]
        records.append(CacheRecord(
            r.digest,
            [[CacheInput(new_rec[i.link], i.selector) for i in group] for group in r.inputs],
            [CacheResult(new_layer[res.layer], res.created_at) for res in r.results],
            [([new_layer[x] for x in idx], at) for idx, at in r.chains]))
    return CacheConfig(layers, records)
