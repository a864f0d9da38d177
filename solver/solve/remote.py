"""Imported caches as the solver sees them: BuildKit's link-graph query, and lazy results.

An imported cache (``solver.remotecache`` makes them from registry, local and inline
caches) answers BuildKit's ``Query``: which of its records have a digest with no inputs
(``roots``), and which records a set of records links to by (input, record digest,
selector) (``children``). The solver keeps, per vertex output, the records matched so
far (``RemoteMatch``), computes a vertex's matches from its inputs' matches exactly as
BuildKit's cache manager intersects links across inputs, and only when a vertex misses
the local cache, matches a record with a result, and its result is needed, asks the cache
for that result's layers (``fetch``), which it unpacks into snapshots.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from solver.solve import cachekey
from solver.solve.cachekey import CacheMap, DepKey


@dataclass(frozen=True)
class RemoteLayer:
    """One layer of an imported result, already in the content store (digest verified)."""

    blob: str
    media_type: str
    path: Path
    diff_id: str | None = None


class ImportedCache(Protocol):
    name: str

    def roots(self, digests: Iterable[str]) -> frozenset[int]: ...

    def children(self, parents: frozenset[int], index: int, digest: str, selector: str) -> frozenset[int]: ...

    def has_result(self, records: frozenset[int]) -> bool: ...

    def fetch(self, records: frozenset[int], store: object) -> list[RemoteLayer] | None: ...


RemoteMatch = tuple[frozenset[int], ...]  # per imported cache: the records this output matches


def no_match(caches: Sequence[ImportedCache]) -> RemoteMatch:
    return tuple(frozenset() for _ in caches)


def match_vertex(caches: Sequence[ImportedCache], cmap: CacheMap, output: int, deps: Sequence[DepKey],
                 input_matches: Sequence[RemoteMatch], alternatives: Sequence[str] = ()) -> RemoteMatch:
    """The records of each cache that one vertex output matches (BuildKit's ``Query``).

    ``alternatives`` are further cache map digests of a root op (an image's config key)."""
    if not caches or cachekey.is_random(cmap.digest):
        return no_match(caches)
    records = [cachekey.root_key(d, output) for d in (cmap.digest, *cmap.compat)]
    if not deps:
        records += [cachekey.root_key(d, output) for d in alternatives]
        return tuple(cache.roots(records) for cache in caches)
    out = []
    for n, cache in enumerate(caches):
        found: frozenset[int] = frozenset()
        for record in records:
            found |= _match_links(cache, record, cmap, deps, [m[n] for m in input_matches])
        out.append(found)
    return tuple(out)


def _match_links(cache: ImportedCache, record: str, cmap: CacheMap, deps: Sequence[DepKey],
                 inputs: Sequence[frozenset[int]]) -> frozenset[int]:
    """Records with digest ``record`` linked from every input (any of its links)."""
    found: frozenset[int] | None = None
    for i, (dep, spec) in enumerate(zip(deps, cmap.deps)):
        links: frozenset[int] = frozenset()
        for selector in {spec.selector, spec.selector if spec.compat_selector is None else spec.compat_selector}:
            links |= cache.children(inputs[i], i, record, selector)
        if dep.checksum is not None:
            links |= cache.children(cache.roots([cachekey.slow_key(dep.checksum)]), i, record, "")
        found = links if found is None else found & links
        if not found:
            return frozenset()
    return found or frozenset()


def best_hit(caches: Sequence[ImportedCache], match: RemoteMatch) -> tuple[ImportedCache, frozenset[int]] | None:
    """The first cache whose matched records have a result."""
    for cache, records in zip(caches, match):
        if records and cache.has_result(records):
            return cache, records
    return None
