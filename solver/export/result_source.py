"""From a solve result to what the exporters need (``ExportSource``).

A result is a committed snapshot. Its layers are the snapshot and its ancestors, bottom
first. Ancestors that were unpacked from a pulled image (named ``layer-<chainID>``) are
exported as the original blobs, found through the image's manifest in the content store;
every other layer is exported from its overlay-form diff directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from solver.cache.content import ContentStore
from solver.export import ExportLayer, ExportSource
from solver.export.image import ImageLayer

LAYER_PREFIX = "layer-"


def layer_chain(snapshotter: Any, name: str) -> list[str]:
    """``name`` and all its ancestors, bottom first, each once."""
    out: list[str] = []

    def visit(snapshot: str) -> None:
        for parent in snapshotter.parents(snapshot):
            visit(parent)
        if snapshot not in out:
            out.append(snapshot)

    visit(name)
    return out


def _chain_ids(diff_ids: list[str]) -> list[str]:
    out: list[str] = []
    for diff_id in diff_ids:
        out.append(diff_id if not out else
                   "sha256:" + hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest())
    return out


def pulled_layers(store: ContentStore, manifests: list[str]) -> dict[str, ImageLayer]:
    """Snapshot name (``layer-<chainID>``) → the pulled blob, for the given image manifests."""
    out: dict[str, ImageLayer] = {}
    for digest in manifests:
        if not store.has(digest):
            continue
        manifest = json.loads(store.read(digest))
        config_desc = manifest.get("config", {})
        if not store.has(config_desc.get("digest", "")):
            continue
        config = json.loads(store.read(config_desc["digest"]))
        diff_ids = config.get("rootfs", {}).get("diff_ids", [])
        for layer, diff_id, chain in zip(manifest.get("layers", []), diff_ids, _chain_ids(diff_ids)):
            out[LAYER_PREFIX + chain.split(":", 1)[1]] = ImageLayer(layer["digest"], layer["size"], diff_id,
                                                                   layer["mediaType"])
    return out


def base_history_length(store: ContentStore, manifests: list[str]) -> int:
    """How many history entries the base image brought (kept as they are under an epoch)."""
    for digest in manifests:
        if store.has(digest):
            manifest = json.loads(store.read(digest))
            config_digest = manifest.get("config", {}).get("digest", "")
            if store.has(config_digest):
                return len(json.loads(store.read(config_digest)).get("history", []))
    return 0


def export_source(solver: Any, result: Any, image_config: dict[str, Any] | None = None) -> ExportSource:
    """The ``ExportSource`` of a ``SolveResult`` solved by ``solver``."""
    store: ContentStore = solver.store.content
    snapshotter = solver.snapshotter
    manifests = image_manifests(solver, result)
    pulled = pulled_layers(store, manifests)
    layers: list[ExportLayer] = []
    snapshot = result.snapshot
    if snapshot:
        for name in layer_chain(snapshotter, snapshot):
            blob = pulled.get(name)
            layers.append(ExportLayer(blob=blob) if blob else
                          ExportLayer(diff_dir=snapshotter.diff_dir(name), cache_id=name))
    config = image_config if image_config is not None else (result.image_config or {})

    @contextlib.contextmanager
    def mount_rootfs() -> Iterator[Path]:
        if not snapshot:
            with _empty_dir(solver) as empty:
                yield empty
            return
        from solver.snapshot.mount import mounted
        key = f"export-view-{uuid.uuid4().hex}"
        mounts = snapshotter.view(key, snapshot)
        try:
            with mounted(mounts) as path:
                yield path
        finally:
            snapshotter.remove(key)

    created = _result_created(solver, result)
    return ExportSource(store, config, layers, mount_rootfs,
                        base_history_len=base_history_length(store, manifests), created=created)


def image_manifests(solver: Any, result: Any) -> list[str]:
    """Digests of the image manifests the solve pulled (from the cache records of its image sources)."""
    manifests = []
    for vertex in result.vertices:
        for key in vertex.cache_keys:
            record = solver.store.get(key)
            if record is not None and "manifest" in record.extra:
                manifests.append(record.extra["manifest"])
    return manifests


def _result_created(solver: Any, result: Any) -> float | None:
    for vertex in result.vertices:
        if vertex.digest == result.head and vertex.cache_keys:
            record = solver.store.get(vertex.cache_keys[min(result.output, len(vertex.cache_keys) - 1)])
            if record is not None:
                return record.created
    return None


@contextlib.contextmanager
def _empty_dir(solver: Any) -> Iterator[Path]:
    import tempfile
    with tempfile.TemporaryDirectory(dir=solver.paths.tmp) as d:
        yield Path(d)
