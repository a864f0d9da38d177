"""``llbook build --cache-to/--cache-from``: parse them, import before the solve, export after."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-from", dest="cache_from", action="append", default=[], metavar="SPEC",
                        help="import a cache: REF, type=registry,ref=REF, type=local,src=DIR or "
                             "type=inline,ref=IMAGE (buildx syntax)")
    parser.add_argument("--cache-to", dest="cache_to", action="append", default=[], metavar="SPEC",
                        help="export the cache: type=inline, type=registry,ref=REF[,mode=min|max] or "
                             "type=local,dest=DIR[,mode=min|max] (buildx syntax)")


def parse(args: argparse.Namespace) -> tuple[list[Any], list[Any]]:
    """(imports, exports); nothing of solver.remotecache is loaded without cache flags."""
    if not getattr(args, "cache_from", None) and not getattr(args, "cache_to", None):
        return [], []
    from solver.remotecache.api import parse_specs
    return parse_specs(args.cache_from, exporting=False), parse_specs(args.cache_to, exporting=True)


def import_caches(solver: Any, specs: list[Any], platform: str | None, quiet: bool) -> list[Any]:
    if not specs:
        return []
    from solver.remotecache.api import import_caches as do_import
    from solver.source.registry import Platform
    wanted = Platform.parse(platform) if platform else None

    def warn(text: str) -> None:
        print(f"WARNING: {text}", file=sys.stderr)
    graphs = do_import(specs, client=solver.image_source().client, image_source=solver.image_source(),
                       platform=wanted, warn=warn)
    if not quiet:
        for graph in graphs:
            print(f"importing cache {graph.name}: {len(graph.config.records)} records", file=sys.stderr)
    return graphs


def inline_config(solver: Any, result: Any, image_config: dict[str, Any] | None, specs: list[Any]) -> Any:
    """The image config with the inline cache when ``--cache-to type=inline`` asks for it."""
    if not any(s.type == "inline" for s in specs) or result is None or image_config is None:
        return image_config
    from solver.remotecache.api import inline_image_config
    return inline_image_config(solver, result, image_config)


def export_caches(solver: Any, result: Any, specs: list[Any], quiet: bool) -> None:
    if not any(s.type != "inline" for s in specs):
        return
    from solver.remotecache.api import export_caches as do_export
    for report in do_export(specs, solver, result, client=solver.image_source().client):
        if not quiet:
            where = report.spec.ref or report.spec.dest
            print(f"exported cache {report.spec.type} {where} mode={report.spec.mode} {report.digest} "
                  f"({report.records} records, {report.layers} layers)", file=sys.stderr)
