"""An imported cache config as a link graph the solver queries (``solve.remote.ImportedCache``).

Records without inputs are found by digest; a record with inputs is reached from the
records of its inputs by (input index, its digest, selector), as BuildKit's importer
(``v1/cachestorage.go``: ``WalkLinks`` by ``nlink``) does. A result's layers are fetched
into the content store only when the solver asks (``fetch``), each verified against its
digest by the transport (``BlobFetcher``); a mismatch raises, and the solver builds the
vertex instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from solver.cache.content import ContentStore
from solver.remotecache.spec import CacheConfig
from solver.solve.remote import RemoteLayer
from solver.source.registry import Descriptor

BlobFetcher = Callable[[Descriptor, ContentStore], Path]  # download + verify, return the stored path


@dataclass
class LinkGraph:
    """One imported cache: its config, the descriptors of its blobs, how to fetch them."""

    name: str
    config: CacheConfig
    descriptors: dict[str, Descriptor]
    fetcher: BlobFetcher
    diff_ids: dict[str, str] = field(default_factory=dict)  # blob -> diff_id, where known
    _roots: dict[str, set[int]] = field(default_factory=dict, init=False)
    _links: dict[tuple[int, int, str, str], set[int]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        for index, record in enumerate(self.config.records):
            if not record.inputs:
                self._roots.setdefault(record.digest, set()).add(index)
            for i, group in enumerate(record.inputs):
                for inp in group:
                    self._links.setdefault((inp.link, i, record.digest, inp.selector), set()).add(index)

    def roots(self, digests: Iterable[str]) -> frozenset[int]:
        out: set[int] = set()
        for digest in digests:
            out |= self._roots.get(digest, set())
        return frozenset(out)

    def children(self, parents: frozenset[int], index: int, digest: str, selector: str) -> frozenset[int]:
        out: set[int] = set()
        for parent in parents:
            out |= self._links.get((parent, index, digest, selector), set())
        return frozenset(out)

    def _best_chain(self, records: frozenset[int]) -> list[int] | None:
        """The layer indexes of the newest result among ``records`` (BuildKit's bestResult)."""
        best: tuple[str, list[int]] | None = None
        for index in sorted(records):
            record = self.config.records[index]
            candidates = [(r.created_at, self.config.chain(r.layer)) for r in record.results]
            candidates += [(at, list(idx)) for idx, at in record.chains]
            for created, chain in candidates:
                if all(self.config.layers[i].blob in self.descriptors for i in chain) and \
                        (best is None or created > best[0]):
                    best = (created, chain)
        return best[1] if best is not None else None

    def has_result(self, records: frozenset[int]) -> bool:
        return self._best_chain(records) is not None

    def fetch(self, records: frozenset[int], store: object) -> list[RemoteLayer] | None:
        assert isinstance(store, ContentStore)
        chain = self._best_chain(records)
        if chain is None:
            return None
        layers = []
        for index in chain:
            desc = self.descriptors[self.config.layers[index].blob]
            path = store.path(desc.digest) if store.has(desc.digest) else self.fetcher(desc, store)
            layers.append(RemoteLayer(desc.digest, desc.media_type, path, self.diff_ids.get(desc.digest)))
        return layers
