"""What front ends call: import the caches ``--cache-from`` names, export those ``--cache-to`` names.

A cache that cannot be imported (missing, unreadable, a config whose digest does not
match) is reported through ``warn`` and left out: the build goes on without it, as
docker build does. Export failures raise unless the spec says ``ignore-error=true``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from solver.errors import LLBookError
from solver.remotecache.chains import ExportedCache, build_cache, snapshot_layers
from solver.remotecache.graph import LinkGraph
from solver.remotecache.inline import inline_value, load_inline, with_inline_cache
from solver.remotecache.options import CacheSpec, parse_cache_spec


@dataclass(frozen=True)
class CacheExportReport:
    spec: CacheSpec
    digest: str
    records: int
    layers: int


def parse_specs(texts: list[str] | tuple[str, ...], *, exporting: bool) -> list[CacheSpec]:
    return [parse_cache_spec(t, exporting=exporting) for t in texts]


def _import_registry(client: Any, image_source: Any, spec: CacheSpec, platform: Any) -> list[LinkGraph]:
    from solver.remotecache.registry import load_cache
    document = client.get_manifest(spec.ref).json()
    found = load_cache(client, spec.ref, document)
    if found is not None:
        return [found]
    inline = load_inline(client, image_source.resolve(spec.ref, platform))  # an image: its inline cache
    return [inline] if inline is not None else []


def import_caches(specs: list[CacheSpec], *, client: Any, image_source: Any, platform: Any = None,
                  warn: Callable[[str], None] = lambda text: None) -> list[LinkGraph]:
    """The imported caches, in the order given; each failure is warned about and skipped."""
    out: list[LinkGraph] = []
    for spec in specs:
        try:
            if spec.type == "registry":
                found = _import_registry(client, image_source, spec, platform)
            elif spec.type == "local":
                from solver.remotecache.local import load_cache as load_local
                found = [load_local(spec.src, tag=spec.tag, digest=spec.attrs.get("digest", ""))]
            else:
                graph = load_inline(client, image_source.resolve(spec.ref, platform))
                found = [graph] if graph is not None else []
        except (LLBookError, OSError, ValueError) as error:
            warn(f"importing cache {spec.type} {spec.ref or spec.src}: {error}; continuing without it")
            continue
        if not found:
            warn(f"importing cache {spec.ref or spec.src}: no cache found there")
        out.extend(found)
    return out


def inline_image_config(solver: Any, result: Any, image_config: dict[str, Any]) -> dict[str, Any]:
    """``image_config`` with the inline cache of ``result`` (mode=min) in it."""
    exported = build_cache(solver, result, "min")
    layers = snapshot_layers(solver, result, result.snapshot) if result.snapshot else []
    return with_inline_cache(image_config, inline_value(exported, layers))


def export_caches(specs: list[CacheSpec], solver: Any, result: Any, *, client: Any) -> list[CacheExportReport]:
    """Write the registry and local caches ``specs`` name (inline goes with the image)."""
    reports = []
    built: dict[str, ExportedCache] = {}
    for spec in specs:
        if spec.type == "inline":
            continue
        try:
            exported = built.get(spec.mode) or build_cache(solver, result, spec.mode)
            built[spec.mode] = exported
            if spec.type == "registry":
                from solver.remotecache.registry import push_cache
                digest = push_cache(client, solver.store.content, exported, spec.ref, oci=spec.oci_mediatypes,
                                    image_manifest=spec.image_manifest)
            else:
                from solver.remotecache.local import write_cache
                digest = write_cache(solver.store.content, exported, spec.dest, tag=spec.tag,
                                     oci=spec.oci_mediatypes, image_manifest=spec.image_manifest)
        except (LLBookError, OSError):
            if spec.ignore_error:
                continue
            raise
        reports.append(CacheExportReport(spec, digest, len(exported.config.records), len(exported.config.layers)))
    return reports
