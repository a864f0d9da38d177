"""``%llb cache export|import``: the session's build cache in BuildKit's formats (solver.remotecache).

Specs use buildx's ``--cache-to``/``--cache-from`` syntax (parsed by solver.cli.cache_flags).
An export writes the cache of the session's last cell result (or of a stage, or of every
result the session's cells built with ``--all``); an import is kept by the session, and every later
cell asks it on a miss. ``LLBOOK_CACHE_FROM`` (one spec per line) is imported when the
extension loads, so a start script can hand a fresh kernel a shipped cache (Binder).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any

from solver.errors import LLBookError

ENV = "LLBOOK_CACHE_FROM"


def parse(texts: list[str], *, exporting: bool) -> list[Any]:
    from solver.cli import cache_flags
    ns = argparse.Namespace(cache_to=texts if exporting else [], cache_from=[] if exporting else texts)
    imports, exports = cache_flags.parse(ns)
    return exports if exporting else imports


def import_caches(session: Any, texts: list[str]) -> list[str]:
    """Load the caches ``texts`` name into the session (one of the same name is replaced);
    returns the warnings about those that could not be read (the cells build without them)."""
    from solver.remotecache.api import import_caches as load
    session.require_local_result("%llb cache import")
    specs = parse(texts, exporting=False)
    warnings: list[str] = []
    solver = session.solver
    graphs = load(specs, client=solver.image_source().client, image_source=solver.image_source(),
                  platform=session._platform(), warn=warnings.append)
    names = {g.name for g in graphs}
    session.cache_imports[:] = [g for g in session.cache_imports if g.name not in names] + graphs
    return warnings


def import_from_env(session: Any, environ: Any = os.environ) -> list[str]:
    """Import the caches ``LLBOOK_CACHE_FROM`` names (one spec per line; none: nothing)."""
    texts = [line.strip() for line in environ.get(ENV, "").splitlines() if line.strip()]
    if not texts:
        return []
    try:
        return import_caches(session, texts)
    except LLBookError as error:  # a bad spec in the environment must not stop the kernel
        return [f"{ENV}: {error}"]


def imported_rows(session: Any) -> list[list[str]]:
    rows = []
    for graph in session.cache_imports:
        config = graph.config
        rows.append([graph.name, str(len(config.records)), str(len(config.layers))])
    return rows


def merged_result(results: list[Any]) -> Any:
    """Every vertex of ``results`` once per set of cache keys (a COPY whose files changed is the
    same vertex with another key), inputs before their consumers, with the last one's head."""
    seen: set[tuple[str, tuple[str, ...]]] = set()
    vertices = []
    for result in results:
        for vertex in result.vertices:
            key = (vertex.digest, tuple(vertex.cache_keys))
            if key not in seen:
                seen.add(key)
                vertices.append(vertex)
    return dataclasses.replace(results[-1], vertices=vertices)


def session_result(session: Any, *, all_cells: bool, stage: str | None) -> Any:
    """The result whose cache an export writes: a stage's (solved, all cached after its cells
    ran), every result the session's cells built merged (earlier versions of edited cells
    too), or the last cell's."""
    if stage is not None:
        key, state, _ = session.stage_state(stage)
        return session.solve_state(state, scope=key)
    if all_cells:
        results = session.results
        if not results:
            raise LLBookError("%llb cache export --all: no cell has a result yet")
        return merged_result(results)
    run = session.last_run
    if run is None or run.result is None:
        raise LLBookError("%llb cache export: no cell has a result yet (run a %%dockerfile cell, or give --stage)")
    return run.result


def export_caches(session: Any, texts: list[str], *, all_cells: bool = False, stage: str | None = None) -> list[Any]:
    """Write the caches ``texts`` name (registry or local; inline goes with an image export)."""
    from solver.remotecache.api import export_caches as write
    session.require_local_result("%llb cache export")
    specs = parse(texts, exporting=True)
    if not specs:
        raise LLBookError("%llb cache export needs a cache spec, e.g. type=local,dest=DIR,mode=max")
    for spec in specs:
        if spec.type == "inline":
            raise LLBookError("%llb cache export type=inline: the inline cache lives in an image's config; "
                              "use type=local,dest=DIR or type=registry,ref=REF")
        if all_cells and spec.mode != "max":
            raise LLBookError("%llb cache export --all exports every step the cells built: add mode=max to the spec")
    solver = session.solver
    result = session_result(session, all_cells=all_cells, stage=stage)
    return write(specs, solver, result, client=solver.image_source().client)
