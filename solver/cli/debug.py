"""``llbook debug``: an interactive shell in the state after one step of a Dockerfile build.

    llbook debug [-f FILE] [--target STAGE] [--cache-dir DIR] (--step N | --vertex DIGEST)
                 [--shell CMD] [--build-arg K=V]... [--secret id=ID,src=PATH]...
                 [--build-context NAME=PATH]... [--config FILE] [--executor runc|proot]
                 [--allow ENTITLEMENT]... [--platform OS/ARCH] [--progress MODE]
                 [--ssh ID[=PATH]]... [--network MODE] [--add-host H:IP]... [--shm-size N]
                 [--ulimit U]... [--label K=V]... [--no-cache-filter STAGE]... CONTEXT

docker build's flags are taken as ``llbook build`` takes them, so the steps are those of the build.

``--step N`` is N of the ``[N/M]`` progress names of the target stage. The shell opens in
the state after that step, with the env, workdir and user in force there; after a RUN with
that RUN's mounts (cache, secret, tmpfs, bind) and sandbox, as ``solver.solve.debug`` sets
them up. What the shell changes is thrown away: nothing enters the cache. ``--exit-with
PID`` ends the shell when process PID ends (a notebook kernel's terminal).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solver.cli.build import add_secret_argument, parse_key_value
from solver.cli.build_common import lower, registry_config
from solver.errors import LLBookError

_STEP_RE = re.compile(r"^\[(?:[^\]]*?\s+)?(\d+)/(\d+)\]")


@dataclass(frozen=True)
class Step:
    """A step of the target stage: its vertex name and the image config after it."""

    number: int
    name: str
    config: dict[str, Any]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("context", metavar="CONTEXT", help="build context directory")
    parser.add_argument("-f", "--file", dest="file", help="Dockerfile (default CONTEXT/Dockerfile)")
    parser.add_argument("--target", default=None, help="build stage (default: the last)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--step", type=int, help="N of the target stage's [N/M] progress names")
    where.add_argument("--vertex", help="digest (or a unique prefix) of a vertex of the build graph")
    parser.add_argument("--before", action="store_true",
                        help="the state before the step (a RUN's inputs and mounts, its command "
                             "in the shell's history), as --on-error=shell opens for a failed RUN")
    parser.add_argument("--shell", default="/bin/sh", help="the shell command (default /bin/sh)")
    parser.add_argument("--build-arg", dest="build_args", action="append", default=[],
                        type=lambda t: parse_key_value(t, "--build-arg"), metavar="KEY=VALUE")
    from solver.cli.build_flags import add_run_arguments
    from solver.cli.build_ssh import add_arguments as add_ssh_argument
    add_secret_argument(parser)
    add_ssh_argument(parser)
    add_run_arguments(parser)  # --network, --add-host, ...: the build's flags, so its steps are the build's
    parser.add_argument("--build-context", dest="build_contexts", action="append", default=[],
                        type=lambda t: parse_key_value(t, "--build-context"), metavar="NAME=PATH")
    parser.add_argument("--cache-dir", default=None, help="cache directory")
    parser.add_argument("--config", default=None, help="registry config (buildkitd.toml format)")
    parser.add_argument("--executor", default=os.environ.get("LLBOOK_EXECUTOR") or None,
                        choices=["runc", "crun", "proot"], help="executor (default: probed)")
    parser.add_argument("--allow", dest="allow", action="append", default=[],
                        help="grant an entitlement: network.host, security.insecure")
    parser.add_argument("--platform", default=None, help="target platform, e.g. linux/amd64")
    parser.add_argument("--progress", default="auto", choices=["auto", "tty", "plain", "quiet"])
    parser.add_argument("--exit-with", type=int, default=None, metavar="PID",
                        help="end the shell when process PID ends")


def target_steps(lowered: Any) -> list[Step]:
    """The numbered steps of the target stage, in order."""
    steps = []
    for record in lowered.instructions:
        if record.stage != lowered.target:
            continue
        for name in record.vertex_names:
            match = _STEP_RE.match(name)
            if match:
                steps.append(Step(int(match.group(1)), name, record.image.to_dict()))
    return steps


def find_vertex(names: dict[str, str], steps: list[Step], step: int | None,
                vertex: str | None) -> tuple[str, dict[str, Any] | None]:
    """The digest asked for, and the image config after it (None when no step made it)."""
    if step is not None:
        found = [s for s in steps if s.number == step]
        if not found:
            numbers = ", ".join(str(s.number) for s in steps) or "none"
            raise LLBookError(f"the target stage has no step {step} (its steps: {numbers})")
        digests = [d for d, n in names.items() if n == found[-1].name]
        if not digests:
            raise LLBookError(f"step {step} ({found[-1].name}) has no vertex in the build graph")
        return digests[0], found[-1].config
    assert vertex is not None
    matches = [d for d in names if d.startswith(vertex) or d.removeprefix("sha256:").startswith(vertex)]
    if len(matches) != 1:
        raise LLBookError(f"{len(matches) or 'no'} vertices match {vertex!r}")
    config = next((s.config for s in steps if s.name == names[matches[0]]), None)
    return matches[0], config


class Once:
    """A call made at most once (the progress printer closes before the shell starts)."""

    def __init__(self, call: Any) -> None:
        self.call: Any = call

    def __call__(self) -> None:
        call, self.call = self.call, None
        if call is not None:
            call()


def _end_on_signal(signum: int, frame: Any) -> None:
    """SIGHUP (the terminal went away) and SIGTERM end the shell with the usual cleanup."""
    signal.signal(signum, signal.SIG_IGN)
    raise KeyboardInterrupt


def exit_with(pid: int) -> None:
    """SIGTERM this process when ``pid`` ends (watched through a pidfd on a daemon thread)."""
    try:
        pidfd = os.pidfd_open(pid)
    except (OSError, AttributeError) as error:
        raise LLBookError(f"--exit-with {pid}: {error}") from error

    def wait() -> None:
        import select
        select.select([pidfd], [], [])
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=wait, daemon=True, name="llbook-exit-with").start()


def run_debug(args: argparse.Namespace) -> int:
    from solver.cli.progress import close_printer, make_printer
    from solver.llb.definition import load
    from solver.solve import named_contexts
    from solver.solve.debug import ShellRequest, open_shell
    from solver.solve.solver import Solver
    for signum in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, _end_on_signal)
    if args.exit_with is not None:
        exit_with(args.exit_with)
    context = Path(args.context).expanduser().absolute()
    if not context.is_dir():
        raise LLBookError(f"build context {context} is not a directory")
    from solver.cli.build_ssh import ssh_sockets
    entitlements = [*args.allow, *(["network.host"] if args.network == "host" else [])]  # as llbook build
    with Solver(cache_dir=args.cache_dir, registry_config=registry_config(args.config),
                entitlements=entitlements, executor_name=args.executor) as solver, ssh_sockets(args.ssh) as ssh:
        contexts = named_contexts.parse(args.build_contexts)
        lowered = lower(args, context, named_contexts.resolver(solver.image_resolver(), contexts))
        definition, _ = named_contexts.rewrite(lowered.definition(), contexts)
        digest, config = find_vertex(load(definition).names(), target_steps(lowered), args.step, args.vertex)
        image = (config if config is not None else lowered.image_config or {}).get("config", {})
        request = ShellRequest(digest, before=args.before, shell=tuple(args.shell.split()), env=tuple(image.get("Env") or ()),
                               cwd=image.get("WorkingDir") or "/", user=image.get("User") or "")
        printer = make_printer(args.progress)
        closed = Once(lambda: close_printer(printer))
        try:
            return open_shell(solver, definition, request, progress=printer, ready=closed,
                              context_dirs={"context": context, **named_contexts.context_dirs(contexts)},
                              secrets={s.id: s.src for s in args.secrets}, ssh=ssh)
        finally:
            closed()


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("debug", help="open a shell in the state after a build step",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.set_defaults(run=run_debug)

