"""``llbook build --call=NAME[,format=json][,ignorestatus=BOOL]`` as buildx parses it, and the
``outline`` and ``targets`` calls, printed as buildx prints them (text, or the JSON with format=json)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

CALLS = ("build", "check", "outline", "targets")
SUBREQUESTS = ("outline", "targets")


@dataclass(frozen=True)
class CallFunc:
    """buildx's ``buildflags.CallFunc``."""

    name: str = "build"
    format: str = ""
    ignore_status: bool = False

    def __str__(self) -> str:
        return self.name


def _go_bool(value: str) -> bool:
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(value)


def parse_call(text: str) -> CallFunc:
    """``ParseCallFunc``: a name and ``format=``/``ignorestatus=`` fields; ``lint`` is ``check``."""
    name, fmt, ignore = "", "", False
    for field in (f.strip() for f in text.split(",")):
        key, sep, value = field.partition("=")
        if not sep:
            if name:
                raise argparse.ArgumentTypeError(f"invalid print value: {text}")
            name = field
        elif key == "format":
            fmt = value
        elif key == "ignorestatus":
            try:
                ignore = _go_bool(value)
            except ValueError:
                raise argparse.ArgumentTypeError(f"invalid ignorestatus print value: {value}") from None
        else:
            raise argparse.ArgumentTypeError(f"invalid print field: {field}")
    name = {"lint": "check", "": "build"}.get(name, name)
    if name not in CALLS:
        raise argparse.ArgumentTypeError(f"unknown call {name!r}; use one of {', '.join(CALLS)}")
    if fmt not in ("", "json"):
        raise argparse.ArgumentTypeError(f"invalid format {fmt!r}; use json")
    return CallFunc(name, fmt, ignore)


def call_of(args: argparse.Namespace) -> CallFunc:
    call = getattr(args, "call", None)
    return call if isinstance(call, CallFunc) else CallFunc(str(call or "build"))


def wants_subrequest(args: argparse.Namespace) -> bool:
    return call_of(args).name in SUBREQUESTS


def run_subrequest(args: argparse.Namespace, context: Path) -> int:
    """``--call=outline|targets``: BuildKit's subrequest result, as buildx's printValue prints it."""
    from solver.cli.build_common import read_dockerfile
    from solver.frontend import subrequests
    call = call_of(args)
    text, filename = read_dockerfile(args, context)
    if call.name == "outline":
        data = subrequests.outline(text, filename=filename, target=args.target, build_args=dict(args.build_args),
                                   platform=args.platform)
        printed = subrequests.print_outline(data)
    else:
        data = subrequests.targets(text, filename=filename)
        printed = subrequests.print_targets(data)
    sys.stdout.write(subrequests.to_json(data) + "\n" if call.format == "json" else printed)
    sys.stdout.flush()
    return 0
