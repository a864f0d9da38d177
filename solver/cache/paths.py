"""Where the persistent cache lives on disk, and the names of its parts.

Resolution order of the cache directory:
1. an explicit value (e.g. ``llbook build --cache-dir DIR``),
2. the ``LLBOOK_CACHE_DIR`` environment variable,
3. ``$XDG_CACHE_HOME/llbook``,
4. ``~/.cache/llbook``.

Layout below the cache directory::

    index.db            SQLite index (records, places, blobs, leases, cache mounts)
    blobs/sha256/<hex>  content store (layers, configs, manifests)
    snapshots/          snapshot directories (owned by the snapshotter, recorded in the index)
    tmp/                in-flight writes; renamed into place when complete
    cachemounts/        directories of RUN --mount=type=cache
    locks/              lock files for fcntl.flock
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ENV_CACHE_DIR = "LLBOOK_CACHE_DIR"
ENV_XDG_CACHE_HOME = "XDG_CACHE_HOME"
APP_NAME = "llbook"


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/llbook`` if XDG_CACHE_HOME is set (and absolute), else ``~/.cache/llbook``."""
    env = os.environ if env is None else env
    xdg = env.get(ENV_XDG_CACHE_HOME, "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / APP_NAME
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".cache" / APP_NAME


def resolve_cache_dir(explicit: str | os.PathLike[str] | None = None,
                      env: Mapping[str, str] | None = None) -> Path:
    """The cache directory to use: explicit value, then $LLBOOK_CACHE_DIR, then the default."""
    env = os.environ if env is None else env
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser().absolute()
    from_env = env.get(ENV_CACHE_DIR, "")
    if from_env:
        return Path(from_env).expanduser().absolute()
    return default_cache_dir(env).absolute()


@dataclass(frozen=True)
class CachePaths:
    """The named parts of one cache directory."""

    root: Path

    @property
    def index_db(self) -> Path:
        return self.root / "index.db"

    @property
    def blobs(self) -> Path:
        return self.root / "blobs" / "sha256"

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def cachemounts(self) -> Path:
        return self.root / "cachemounts"

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    def directories(self) -> tuple[Path, ...]:
        return (self.root, self.blobs, self.snapshots, self.tmp, self.cachemounts, self.locks)

    def ensure(self) -> "CachePaths":
        """Create every directory of the layout (idempotent, safe under concurrency)."""
        for directory in self.directories():
            directory.mkdir(parents=True, exist_ok=True)
        return self

    @classmethod
    def resolve(cls, explicit: str | os.PathLike[str] | None = None,
                env: Mapping[str, str] | None = None) -> "CachePaths":
        return cls(resolve_cache_dir(explicit, env))
