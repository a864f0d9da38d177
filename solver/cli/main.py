"""`llbook` command line: a registry of subcommands, each added by one function.

To add a subcommand, write a module (e.g. `solver/cli_build.py`) with

    def register(subparsers) -> None:
        p = subparsers.add_parser("build", help="...")
        p.add_argument(...)
        p.set_defaults(run=run)          # run(args) -> int exit code

and add its module name to `SUBCOMMAND_MODULES`. Modules that do not exist yet are skipped.
Errors: a DockerfileError prints `file:line: message`, any other LLBookError
`llbook: error: message`; both exit 1 without a traceback.
"""

from __future__ import annotations

from solver import dataclass_cache

dataclass_cache.install()  # before the imports below define their dataclasses

import argparse  # noqa: E402
import importlib  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable, Sequence  # noqa: E402

from solver.errors import DockerfileError, LLBookError  # noqa: E402

Register = Callable[[Any], None]

SUBCOMMAND_MODULES: tuple[str, ...] = (
    "solver.cli_build",
    "solver.cli_du",
    "solver.cli_prune",
    "solver.cli_check",
)


# ----------------------------------------------------------------- dump-llb


def register_dump_llb(subparsers: Any) -> None:
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
    p.set_defaults(run=run_dump_llb)


def run_dump_llb(args: argparse.Namespace) -> int:
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

    filename = args.dockerfile
    if filename == "-":
        text, filename = sys.stdin.read(), "Dockerfile"
    else:
        try:
            text = Path(filename).read_text()
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


# ----------------------------------------------------------------- registry and main


# The module of each subcommand, so that running one imports only its own module (a
# warm `llbook build` should not pay for importing the others). Unknown commands and
# `llbook --help` register them all.
COMMAND_MODULES: dict[str, str] = {
    "build": "solver.cli_build",
    "du": "solver.cli_du",
    "prune": "solver.cli_prune",
    "check": "solver.cli_check",
}


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand named by ``argv`` (its first non-option word), if any."""
    for word in argv:
        if not word.startswith("-"):
            return word
        if word in ("-h", "--help"):
            return None
    return None


def _registrations(command: str | None = None) -> list[Register]:
    """dump-llb plus every subcommand module that exists (only ``command``'s when known)."""
    found: list[Register] = [register_dump_llb]
    modules = SUBCOMMAND_MODULES
    if command in COMMAND_MODULES and COMMAND_MODULES[command] in SUBCOMMAND_MODULES:
        modules = (COMMAND_MODULES[command],)
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        found.append(module.register)
    return found


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `llbook` parser; with ``command``, only that subcommand's module is registered."""
    parser = argparse.ArgumentParser(prog="llbook", description="Build container images from Dockerfile "
                                     "snippets with an embedded BuildKit-compatible solver.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for register in _registrations(command):
        register(subparsers)
    return parser


def _interrupt_on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM (timeout, CI cancel, systemd) ends a build as SIGINT does, cleaning up its
    containers, mounts and bundles; further SIGTERMs are ignored while that runs."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `llbook` console script."""
    try:
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    except ValueError:  # not the main thread: leave the caller's signal handling alone
        pass
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_in(words))
    args = parser.parse_args(words)
    try:
        return int(args.run(args) or 0)
    except DockerfileError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except LLBookError as exc:
        print(f"llbook: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1
    except KeyboardInterrupt:
        print("llbook: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
