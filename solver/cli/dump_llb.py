"""`llbook dump-llb`: print a Definition (stdin, a file, or a lowered Dockerfile) as `buildctl debug dump-llb`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from solver.errors import LLBookError


def register(subparsers: Any) -> None:
    """`llbook dump-llb`: print a Definition (stdin, a file, or a lowered Dockerfile)."""
    p = subparsers.add_parser(
        "dump-llb", help="print LLB as JSON lines, DOT or protobuf (like `buildctl debug dump-llb`)",
        description="Read a binary LLB Definition (file or stdin), or lower a Dockerfile with -f, and "
                    "print it. JSON and DOT match `buildctl debug dump-llb [--dot]`.")
    p.add_argument("--format", choices=("json", "dot", "pb"), default="json",
                   help="json: one object per op (default); dot: graphviz; pb: the Definition bytes")
    p.add_argument("--dot", action="store_const", const="dot", dest="format", help="same as --format dot")
    p.add_argument("-f", "--file", dest="dockerfile", metavar="DOCKERFILE",
                   help="lower this Dockerfile instead of reading a Definition ('-' for stdin)")
    p.add_argument("--target", help="build stage to lower (with -f)")
    p.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE", help="build argument (with -f)")
    p.add_argument("--platform", help="target platform, e.g. linux/amd64 (default: this host)")
    p.add_argument("--resolve", action="store_true",
                   help="resolve base images against their registries (pins digests, reads image config)")
    p.add_argument("path", nargs="?", metavar="LLBFILE|CONTEXT",
                   help="Definition file ('-' or absent: stdin); with -f, the build context directory")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from solver.llb import dump
    from solver.llb.definition import parse

    if args.dockerfile:
        data = _lower_dockerfile(args).to_bytes()
    else:
        data = _read_input(args.path)
    defn = parse(data)  # also validates input that is only passed through
    if args.format == "pb":
        _write_bytes(data)
        return 0
    text = dump.dump_dot(defn) if args.format == "dot" else dump.dump_json(defn)
    _write_bytes(text.encode("utf-8", "surrogateescape"))
    return 0


def _read_input(path: str | None) -> bytes:
    if path in (None, "-"):
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise LLBookError(f"cannot read {path}: {exc.strerror}") from exc


def _write_bytes(data: bytes) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def parse_build_args(items: Sequence[str]) -> dict[str, str]:
    """`KEY=VALUE` pairs; a bare `KEY` takes its value from the environment (as docker build)."""
    import os

    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise LLBookError(f"invalid build arg {item!r}: expected KEY=VALUE")
        if not sep:
            if key not in os.environ:
                continue
            value = os.environ[key]
        out[key] = value
    return out


def _lower_dockerfile(args: argparse.Namespace) -> Any:
    """Run the Dockerfile frontend and marshal its final state."""
    try:
        from solver.frontend import dockerfile_to_llb  # type: ignore[attr-defined]
    except ImportError as exc:
        raise LLBookError(f"the Dockerfile frontend is not available yet ({exc})") from exc
    from solver.llb.platform import Platform

    from solver.frontend.textutil import decode_dockerfile

    filename = args.dockerfile
    if filename == "-":
        text, filename = decode_dockerfile(sys.stdin.buffer.read(), "Dockerfile"), "Dockerfile"
    else:
        try:
            text = decode_dockerfile(Path(filename).read_bytes(), filename)
        except OSError as exc:
            raise LLBookError(f"cannot read {filename}: {exc.strerror}") from exc
    platform = Platform.parse(args.platform) if args.platform else None
    lowered = dockerfile_to_llb(text, filename=filename, context_dir=args.path, target=args.target,
                                build_args=parse_build_args(args.build_arg), platform=platform,
                                resolver=_registry_resolver() if args.resolve else None)
    return lowered.state.marshal(platform=platform)


def _registry_resolver() -> Any:
    """A resolver that asks registries: (pinned `name:tag@sha256:…`, image config) per ref and platform."""
    from solver.source.image import ImageSource, Platform as RegistryPlatform

    source = ImageSource()

    def resolve(ref: str, platform: Any) -> tuple[str, dict[str, Any]]:
        resolved = source.resolve(ref, RegistryPlatform.parse(str(platform)))
        return resolved.pinned, dict(resolved.config)

    return resolve
