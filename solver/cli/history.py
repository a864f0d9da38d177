"""``llbook history ls|inspect|logs|diff|rm|export``: the build records of a cache directory, as ``docker buildx history``.

Refs are the ids ``ls`` prints (a unique prefix will do) or ``^N`` (``^0`` the latest
build, ``^1`` the one before). ``diff`` with no refs compares ``^1`` with ``^0``.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
from pathlib import Path
from typing import Any

from solver.cli.cache_common import add_cache_dir_argument
from solver.history.report import LS_HEADERS, diff_lines, inspect_lines, ls_rows, table


def _store(args: argparse.Namespace) -> Any:
    from solver.history import HistoryStore
    return HistoryStore.of(args.cache_dir)


def run_ls(args: argparse.Namespace) -> int:
    records = _store(args).records()
    print(table(LS_HEADERS, ls_rows(records)))
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    record = _store(args).resolve(args.ref)
    if args.format == "json":
        print(json.dumps(record.to_json(), indent=2))
    else:
        print("\n".join(inspect_lines(record)))
    return 0


def run_logs(args: argparse.Namespace) -> int:
    store = _store(args)
    record = store.resolve(args.ref)
    if record.log_truncated:
        print(f"(the first {record.log_bytes - len(store.logs(record.ref))} bytes of the logs were not kept)")
    sys.stdout.flush()
    sys.stdout.buffer.write(store.logs(record.ref))
    return 0


def run_diff(args: argparse.Namespace) -> int:
    print("\n".join(diff_lines(_store(args), args.refs)))
    return 0


def run_rm(args: argparse.Namespace) -> int:
    store = _store(args)
    records = store.records() if args.all else [store.resolve(ref) for ref in args.refs]
    for record in records:
        store.remove(record.ref)
        print(f"removed {record.ref}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """The record as JSON (``-o FILE.json``, or stdout), or a tar of record.json and logs."""
    store = _store(args)
    record = store.resolve(args.ref)
    data = (json.dumps(record.to_json(), indent=2) + "\n").encode()
    out = args.output
    if out and (out.endswith(".tar") or args.format == "tar"):
        with tarfile.open(out, "w") as tar:
            for name, blob in (("record.json", data), ("logs.txt", store.logs(record.ref))):
                info = tarfile.TarInfo(f"{record.ref}/{name}")
                info.size, info.mtime, info.mode = len(blob), int(record.started), 0o644
                tar.addfile(info, io.BytesIO(blob))
    elif out:
        Path(out).write_bytes(data)
    else:
        sys.stdout.write(data.decode())
    if out:
        print(f"exported {record.ref} to {out}", file=sys.stderr)
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("history", help="build records: ls, inspect, logs, diff, rm, export",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="history_command", metavar="COMMAND")
    sub.required = True

    def command(name: str, run: Any, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        add_cache_dir_argument(p)
        p.set_defaults(run=run)
        return p
    command("ls", run_ls, "list build records, latest first")
    p = command("inspect", run_inspect, "show a build record")
    p.add_argument("ref", nargs="?", default="^0")
    p.add_argument("--format", choices=["pretty", "json"], default="pretty")
    command("logs", run_logs, "print the kept tail of a build's logs").add_argument("ref", nargs="?", default="^0")
    command("diff", run_diff, "which inputs of each step changed between two builds").add_argument(
        "refs", nargs="*", metavar="REF")
    p = command("rm", run_rm, "remove build records")
    p.add_argument("refs", nargs="*", metavar="REF")
    p.add_argument("--all", action="store_true")
    p = command("export", run_export, "write a build record as JSON, or a tar with its logs")
    p.add_argument("ref", nargs="?", default="^0")
    p.add_argument("-o", "--output", default=None, help="FILE.json or FILE.tar (default: JSON on stdout)")
    p.add_argument("--format", choices=["json", "tar"], default="json")
