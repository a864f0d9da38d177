"""`llbook` command line: the entry point, and the registry of subcommands (one module each).

A subcommand is a module of this package (e.g. `solver/cli/build.py`) with

    def register(subparsers) -> None:
        p = subparsers.add_parser("build", help="...")
        p.add_argument(...)
        p.set_defaults(run=run)          # run(args) -> int exit code

named in `COMMAND_MODULES`. Errors: a DockerfileError prints `file:line: message`, any
other LLBookError `llbook: error: message`; both exit 1 without a traceback.

`llbook build` runs on this user's resident server (`solver.server`, started on first use)
unless `--no-server` (a launcher flag, taken out of the words before parsing) or
`LLBOOK_SERVER=0` asks for this process, or it needs this process's terminal
(`--on-error=shell`). Until that choice is made this module imports only `sys`, so the
client path pays for neither argparse nor the engine's dataclasses.
"""

from __future__ import annotations

import sys
TYPE_CHECKING = False  # typing is only for the checker: the client path does not import it
if TYPE_CHECKING:
    from typing import Any, Callable, Sequence

    Register = Callable[[Any], None]

# The module of each subcommand, in `llbook --help` order, so that running one imports
# only its own module (a warm `llbook build` should not pay for importing the others).
# Unknown commands and `llbook --help` register them all.
COMMAND_MODULES: dict[str, str] = {
    "dump-llb": "solver.cli.dump_llb",
    "build": "solver.cli.build",
    "debug": "solver.cli.debug",
    "du": "solver.cli.du",
    "prune": "solver.cli.prune",
    "check": "solver.cli.check",
    "server": "solver.cli.server_cmd",
    "history": "solver.cli.history",
    "layers": "solver.cli.layers",
}


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand named by ``argv`` (its first non-option word), if any."""
    for word in argv:
        if not word.startswith("-"):
            return word
        if word in ("-h", "--help"):
            return None
    return None


def _server_choice(words: list[str]) -> tuple[list[str], bool]:
    """The words without ``--no-server``, and whether the build goes to the server."""
    import os
    local = "--no-server" in words or os.environ.get("LLBOOK_SERVER", "1") in ("0", "no", "false", "")
    words = [w for w in words if w != "--no-server"]
    if local or _command_in(words) != "build":
        return words, False
    on_error_shell = any(w == "--on-error=shell" or (w == "--on-error" and nxt == "shell")
                         for w, nxt in zip(words, [*words[1:], ""]))
    return words, not on_error_shell


def _registrations(command: str | None = None) -> list[Register]:
    """The `register` of ``command``'s module when it is known, else of every subcommand."""
    import importlib
    names = [COMMAND_MODULES[command]] if command in COMMAND_MODULES else list(COMMAND_MODULES.values())
    return [importlib.import_module(name).register for name in names]


def build_parser(command: str | None = None) -> Any:
    """The `llbook` parser; with ``command``, only that subcommand's module is registered."""
    import argparse
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
    import signal
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `llbook` console script."""
    words, on_server = _server_choice(list(sys.argv[1:] if argv is None else argv))
    if on_server:
        from solver.server.client import ServerUnavailable, run_build
        try:
            return run_build(words)
        except ServerUnavailable as why:
            print(f"llbook: building in this process: {why}", file=sys.stderr)
    return run_here(words)


def run_here(words: list[str]) -> int:
    """Parse ``words`` and run the subcommand in this process (the server runs builds here too)."""
    from solver.cli import dataclass_cache
    dataclass_cache.install()  # before the imports below define their dataclasses
    import signal
    from solver.errors import DockerfileError, LLBookError
    try:
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    except ValueError:  # not the main thread: leave the caller's signal handling alone
        pass
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
