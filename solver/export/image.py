"""Image config and manifest assembly, as BuildKit's containerimage writer does it.

``commit_image`` takes the frontend's image config (with its history) and the result's
layers, and writes the config and manifest blobs into the content store:
- ``rootfs.diff_ids`` from the layers;
- one history entry per instruction; entries are added (comment
  ``buildkit.exporter.image.v0``) when there are fewer non-empty entries than layers;
- ``created`` times clamped to SOURCE_DATE_EPOCH when one is given, so two builds of
  the same input give the same manifest digest.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from solver.cache.content import ContentStore
from solver.source.registry import Descriptor, Platform

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"

INLINE_CACHE_KEY = "moby.buildkit.cache.v0"  # BuildKit's inline cache records
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ImageLayer:
    """One layer of the image being exported: a blob in the store and its diff_id."""

    digest: str
    size: int
    diff_id: str
    media_type: str


@dataclass(frozen=True)
class CommittedImage:
    """The manifest and config written for an image."""

    manifest: Descriptor
    config: Descriptor
    layers: tuple[ImageLayer, ...]
    config_json: dict[str, Any]


def rfc3339(ts: float) -> str:
    """Go's time.RFC3339Nano rendering of a unix time, in UTC."""
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        text += ("." + f"{dt.microsecond:06d}").rstrip("0")
    return text + "Z"


def canonical_json(value: Any, *, indent: bool = False) -> bytes:
    """JSON bytes as Go's encoding/json writes our structures (keys in insertion order)."""
    if indent:
        return json.dumps(value, indent=2, ensure_ascii=False).encode()
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def default_image_config(architecture: str = "amd64", os_name: str = "linux") -> dict[str, Any]:
    """BuildKit's ``defaultImageConfig``: platform, empty layers, WorkingDir and PATH."""
    return {"architecture": architecture, "os": os_name,
            "config": {"Env": [f"PATH={DEFAULT_PATH}"], "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": []}}


def normalize_history(history: list[dict[str, Any]], layer_count: int, *,
                      created: float) -> list[dict[str, Any]]:
    """Make the non-empty history entries match the layer count, and fill ``created``."""
    history = [dict(h) for h in history]
    non_empty = sum(1 for h in history if not h.get("empty_layer"))
    if non_empty > layer_count:  # more layer-making steps than layers (e.g. empty diffs): trim
        for entry in reversed(history):
            if non_empty == layer_count:
                break
            if not entry.get("empty_layer"):
                entry["empty_layer"] = True
                non_empty -= 1
    while non_empty < layer_count:
        history.insert(0, {"created_by": "", "comment": "buildkit.exporter.image.v0"})
        non_empty += 1
    stamp = rfc3339(created)
    for entry in history:
        entry.setdefault("created", stamp)
    return history


def clamp_history(history: list[dict[str, Any]], epoch: int, keep: int) -> list[dict[str, Any]]:
    """Set ``created`` of every entry after the first ``keep`` (the base image's) to the epoch."""
    stamp = rfc3339(epoch)
    return [dict(h, created=stamp) if i >= keep else h for i, h in enumerate(history)]


def build_config(image_config: dict[str, Any], layers: list[ImageLayer], *,
                 epoch: int | None = None, base_history_len: int = 0,
                 now: float | None = None) -> dict[str, Any]:
    """The final image config JSON: frontend config + diff_ids + normalised history."""
    config = copy.deepcopy(image_config) if image_config else default_image_config()
    created = float(epoch) if epoch is not None else (now if now is not None else time.time())
    history = normalize_history(config.get("history", []), len(layers), created=created)
    if epoch is not None:
        history = clamp_history(history, epoch, base_history_len)
    out: dict[str, Any] = {}
    if epoch is not None or "created" not in config:
        out["created"] = history[-1]["created"] if history else rfc3339(created)
    else:
        out["created"] = config["created"]
    for key in ("architecture", "os", "os.version", "os.features", "variant", "author"):
        if key in config:
            out[key] = config[key]
    out.setdefault("architecture", "amd64")
    out.setdefault("os", "linux")
    out["config"] = config.get("config", {})
    out["rootfs"] = {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]}
    out["history"] = history
    if INLINE_CACHE_KEY in config:  # --cache-to type=inline (solver.remotecache.inline)
        out[INLINE_CACHE_KEY] = config[INLINE_CACHE_KEY]
    return out


def commit_image(store: ContentStore, image_config: dict[str, Any], layers: list[ImageLayer], *,
                 oci_mediatypes: bool = True, epoch: int | None = None, base_history_len: int = 0,
                 annotations: dict[str, str] | None = None, created: float | None = None) -> CommittedImage:
    """Write the config and manifest blobs; return their descriptors. ``created`` is the
    build time of the result (now when None); an epoch overrides it."""
    config_json = build_config(image_config, layers, epoch=epoch, base_history_len=base_history_len,
                               now=created)
    config_bytes = canonical_json(config_json)
    config_desc = Descriptor(OCI_CONFIG if oci_mediatypes else DOCKER_CONFIG,
                             store.write_bytes(config_bytes), len(config_bytes))
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST if oci_mediatypes else DOCKER_MANIFEST,
        "config": config_desc.to_dict(),
        "layers": [Descriptor(layer.media_type, layer.digest, layer.size).to_dict() for layer in layers],
    }
    if annotations:
        manifest["annotations"] = dict(sorted(annotations.items()))
    manifest_bytes = canonical_json(manifest, indent=True)
    manifest_desc = Descriptor(manifest["mediaType"], store.write_bytes(manifest_bytes), len(manifest_bytes),
                               platform=Platform.from_dict(config_json))
    return CommittedImage(manifest_desc, config_desc, tuple(layers), config_json)
