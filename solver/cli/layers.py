"""``llbook layers [--ci] [--ci-config FILE] IMAGE|--result [REF]``: an image's layers as
dive shows them, on the command line.

IMAGE is a registry reference, ``docker-archive://PATH`` or ``oci-layout://PATH[:TAG]``;
``--result`` takes a build from the history of ``--cache-dir`` (``^0``, the latest, by
default). Without other options it prints the layer list (``--sort size`` largest first)
and dive's analysis; ``--tree`` the file tree of ``--layer N`` (default the top; only that
layer's changes with ``--changes``), ``--cat PATH`` a file's contents, ``--diff OTHER`` the
files added, removed and changed from IMAGE to OTHER, ``--export FILE.csv|FILE.json`` (or
``--format csv|json`` on stdout) the tree. ``--ci`` evaluates dive's rules from ``.dive-ci``
(or ``--ci-config``) and exits 1 when one fails;
``CI=true`` in the environment does the same, as in dive.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Mapping

from solver.cli.cache_common import add_cache_dir_argument

PREVIEW_CAP = 64 * 1024


def _open(args: argparse.Namespace, ref: str | None, scratch: Path) -> Any:
    from solver.layers.image import open_image
    if ref is None:
        return _result_layers(args)
    return open_image(ref, scratch, args.platform)


def _result_layers(args: argparse.Namespace) -> Any:
    """The layers of a recorded build's result (from the cache's snapshots)."""
    import json
    from solver.history import HistoryStore
    from solver.layers.snapshots import result_layers
    from solver.cli.cache_common import open_cache
    record = HistoryStore.of(args.cache_dir).resolve(args.result)
    snapshot = record.result.get("snapshot")
    if not snapshot:
        from solver.errors import LLBookError
        raise LLBookError(f"build {record.ref} has no result snapshot")
    store, snapshotter = open_cache(args)
    history: list[dict[str, Any]] = []
    config_digest = record.result.get("config_digest")
    if config_digest and store.content.has(config_digest):
        history = json.loads(store.content.read(config_digest)).get("history", [])
    return result_layers(snapshotter, snapshot, f"build {record.ref}", history)


def _layer_lines(layers: Any, sort: str) -> list[str]:
    from solver.layers.ci import human_bytes
    rows = sorted(layers.layers, key=lambda l: -l.size) if sort == "size" else layers.layers
    out = [f"{'#':>3}  {'Size':>9}  {'Changes':<16}  {'Digest':<19}  Command"]
    for l in rows:
        changes = f"+{l.added} ~{l.modified} -{l.removed}"
        out.append(f"{l.index:>3}  {human_bytes(l.size):>9}  {changes:<16}  {l.digest[:19]:<19}  {l.instruction[:80]}")
    return out


def _tree_lines(layers: Any, layer: int, mode: str, sort: str) -> list[str]:
    from solver.layers.ci import human_bytes
    from solver.layers.tree import mode_string
    tree = layers.tree(layer, mode)
    out = []
    for depth, e in tree.walk(sort):
        name = e.path.rsplit("/", 1)[-1] + ("/" if e.is_dir else "") + (f" → {e.linkname}" if e.linkname else "")
        out.append(f"{mode_string(e.type, e.mode)} {e.uid:>5}:{e.gid:<5} {human_bytes(tree.size_of(e.path)):>9}  "
                   f"{'  ' * depth}{name}" + ("" if e.kind == "unmodified" else f"  [{e.kind}]"))
    return out


def _diff_lines(comparison: Any) -> list[str]:
    from solver.layers.ci import human_bytes
    out = [f"Comparing {comparison.old} → {comparison.new}: {comparison.count('added')} added, "
           f"{comparison.count('removed')} removed, {comparison.count('changed')} changed"]
    size = lambda n: "-" if n < 0 else human_bytes(n)  # noqa: E731
    for c in comparison.changes:
        what = f"  ({c.what})" if c.what else ""
        out.append(f"  {c.kind:<8} {size(c.old_size):>9} → {size(c.new_size):>9}  {c.path}{what}")
    return out


GO_TRUE_WORDS = frozenset({"1", "t", "T", "TRUE", "true", "True"})


def ci_from_environment(environ: Mapping[str, str]) -> bool:
    """Whether ``CI`` turns on the CI gates, as in dive (Go's ``strconv.ParseBool`` true words)."""
    return environ.get("CI", "") in GO_TRUE_WORDS


def run_layers(args: argparse.Namespace) -> int:
    from solver.layers.image import Scratch
    if (args.image is None) == (args.result is None):
        print("llbook layers: give an IMAGE or --result [REF]", file=sys.stderr)
        return 2
    with Scratch() as scratch:
        layers = _open(args, args.image, scratch)
        return _show(args, layers, scratch)


def _show(args: argparse.Namespace, layers: Any, scratch: Path) -> int:
    from solver.layers import ci
    from solver.layers.export import export_tree, format_of
    from solver.layers.tree import AGGREGATED, LAYER_ONLY
    layer = layers.top if args.layer is None else args.layer
    if not 0 <= layer <= layers.top:
        print(f"llbook layers: no layer {layer} (the image has {len(layers.layers)})", file=sys.stderr)
        return 2
    mode = LAYER_ONLY if args.changes else AGGREGATED
    if args.ci or ci_from_environment(os.environ):
        rules = ci.load_rules(args.ci_config or ci.CONFIG_NAME)
        evaluation = ci.evaluate(rules, layers.efficiency)
        print(ci.report(layers.efficiency, evaluation))
        return 0 if evaluation.passed else 1
    if args.cat:
        sys.stdout.write(layers.preview(layer, args.cat, args.cap).render())
        return 0
    if args.diff or args.diff_result:
        from solver.layers.compare import compare
        (scratch / "other").mkdir()
        if args.diff_result:
            args.result = args.diff_result
        other = _open(args, args.diff, scratch / "other")
        print("\n".join(_diff_lines(compare(layers, other))))
        return 0
    if args.export or args.format:
        text = export_tree(layers, args.format or format_of(args.export), layer, mode, args.sort)
        if args.export and args.export != "-":
            Path(args.export).write_text(text)
            print(f"wrote {len(text)} bytes to {args.export}")
        else:
            sys.stdout.write(text)
        return 0
    print(f"Image: {layers.name}" + (f" ({layers.platform})" if layers.platform else ""))
    print("\n".join(_layer_lines(layers, args.sort)))
    if args.tree:
        print(f"\nFiles of layer {layer}" + (" (its changes)" if args.changes else "") + ":")
        print("\n".join(_tree_lines(layers, layer, mode, args.sort)))
    eff = layers.efficiency
    print("\n" + ci.report(eff, ci.Evaluation()).split("\n\nEvaluation:")[0])
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("layers", help="an image's layers, files and efficiency (as dive), with dive's CI gates")
    p.add_argument("image", nargs="?", metavar="IMAGE",
                   help="a registry reference, docker-archive://PATH or oci-layout://PATH[:TAG]")
    p.add_argument("--result", nargs="?", const="^0", default=None, metavar="REF",
                   help="a build's result from the history (default ^0, the latest)")
    add_cache_dir_argument(p)
    p.add_argument("--platform", default=None, help="the platform of a multi-platform image (os/arch[/variant])")
    p.add_argument("--ci", action="store_true", help="evaluate dive's CI rules and exit 1 when one fails (also when CI=true, as in dive)")
    p.add_argument("--ci-config", default=None, metavar="FILE", help="the rules file (default .dive-ci)")
    p.add_argument("--sort", choices=["name", "size"], default="name", help="order of layers and tree entries")
    p.add_argument("--tree", action="store_true", help="print the file tree of --layer")
    p.add_argument("--layer", type=int, default=None, help="the layer to show (default: the top one)")
    p.add_argument("--changes", action="store_true", help="only that layer's own changes")
    p.add_argument("--cat", default=None, metavar="PATH", help="print a file as of --layer (hex for binaries)")
    p.add_argument("--cap", type=int, default=PREVIEW_CAP, help="bytes of a file --cat prints")
    p.add_argument("--diff", default=None, metavar="OTHER", help="files added, removed and changed from IMAGE to OTHER")
    p.add_argument("--diff-result", default=None, metavar="REF", help="compare with a build's result from the history")
    p.add_argument("--export", default=None, metavar="FILE", help="write the tree to FILE.csv or FILE.json")
    p.add_argument("--format", choices=["csv", "json"], default=None, help="print the tree as csv or json")
    p.set_defaults(run=run_layers)
