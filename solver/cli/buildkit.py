"""``llbook build --buildkit-host ADDR``: the same build, solved by a BuildKit daemon.

The address comes from ``--buildkit-host``, else ``LLBOOK_BUILDKIT_HOST``, else
``BUILDKIT_HOST`` (as buildctl reads it): ``unix://PATH``, ``tcp://HOST:PORT`` (with
``--tlscacert/--tlscert/--tlskey``), ``docker-container://NAME`` or ``dockerd://[SOCKET]``.
The Dockerfile is lowered by llbook as for the embedded solver; the daemon solves the
Definition, pulls the context, secrets and ssh agents (``--ssh``) from this process's session, and exports:
``-t NAME`` into dockerd's image store (``dockerd://``) or the daemon's image store,
``--output type=image,name=...,push=true`` to a registry, ``type=local|tar,dest=...`` here.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

from solver.cli.build_common import build_context, config_digest, failure_exit_code, lower, registry_config
from solver.errors import BuildError, DockerfileError, LLBookError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("BuildKit daemon (instead of the embedded solver)")
    group.add_argument("--buildkit-host", default=None, metavar="ADDR",
                       help="unix://PATH, tcp://HOST:PORT, docker-container://NAME or dockerd://[SOCKET] "
                            "(default $LLBOOK_BUILDKIT_HOST, $BUILDKIT_HOST)")
    group.add_argument("--tlscacert", default=None, help="CA certificate for tcp://")
    group.add_argument("--tlscert", default=None, help="client certificate for tcp://")
    group.add_argument("--tlskey", default=None, help="client key for tcp://")
    group.add_argument("--tlsservername", default=None, help="server name to verify for tcp://")
    if "--output" not in parser._option_string_actions:
        parser.add_argument("-o", "--output", dest="outputs", action="append", default=[],
                            help="type=local|tar|oci|docker,dest=PATH or type=image,name=REF[,push=true]")


def selected_host(args: argparse.Namespace) -> str | None:
    """The daemon address for this build, or None for the embedded solver."""
    from solver.buildkit.address import address_from_env
    return getattr(args, "buildkit_host", None) or address_from_env()


def _tls(args: argparse.Namespace) -> Any:
    from solver.buildkit.address import TLSFiles
    return TLSFiles(args.tlscacert, args.tlscert, args.tlskey, args.tlsservername)


def _export(args: argparse.Namespace, scheme: str) -> Any:
    from solver.buildkit.backend import export_for, parse_daemon_output
    outputs = list(getattr(args, "outputs", []) or [])
    if getattr(args, "push", False):  # docker build --push: type=image,push=true to the -t names
        if not args.tags:
            raise LLBookError("--push needs at least one -t NAME to push to")
        outputs.append("type=image,push=true")
    if len(outputs) > 1:
        raise LLBookError("the BuildKit backend takes one --output per build")
    spec = parse_daemon_output(outputs[0]) if outputs else None
    return export_for(spec, args.tags, scheme)


def _metadata(path: str, result: Any, image_config: dict[str, Any] | None, address: str,
              error: BaseException | None, vertices: list[Any]) -> None:
    data: dict[str, Any] = {
        "llbook.vertices": [v.to_metadata() for v in vertices],
        "containerimage.config.digest": config_digest(image_config),
        "llbook.buildkit.host": address,
    }
    if result is not None:
        data.update(result.exporter_response)
    if error is not None:
        data["llbook.error"] = str(error)
    Path(path).write_text(json.dumps(data, indent=2) + "\n")


def _start_record(args: argparse.Namespace, context: Path, address: str) -> Any:
    """The history record of this build, kept in llbook's cache dir as for the embedded solver."""
    from solver.cli import history_record
    recorder = history_record.start(args, context, args.cache_dir)
    recorder.record.config["Builder"] = address  # the daemon that solved it
    return recorder


def _finish_record(recorder: Any, solved: Any, error: BaseException | None, export: Any,
                   response: Any, image_config: dict[str, Any] | None) -> None:
    """Save the record with the daemon's steps and the exporter's digests."""
    exported = dict(response.exporter_response) if response is not None else {}
    image_digest = exported.get("containerimage.digest") or None
    exports = [] if export is None or error is not None else [
        {"type": export.type, "dest": export.dest or export.attrs.get("name", ""), "manifest": image_digest or "",
         "config": exported.get("containerimage.config.digest", ""), "size": None}]
    recorder.finish(solved, error, exports=exports,
                    config_digest=exported.get("containerimage.config.digest") or config_digest(image_config),
                    image_digest=image_digest)


def run_buildkit_build(args: argparse.Namespace, address: str) -> int:
    """Lower the Dockerfile here, solve and export on the daemon at `address`."""
    from solver.buildkit.address import parse_address
    from solver.buildkit.backend import BuildKitBackend, registry_credentials
    from solver.solve import named_contexts
    from solver.cli.progress import close_printer, make_printer
    from solver.solve.progress import ProgressBus
    from solver.solve.solver import Solver
    from solver.cli.build_ssh import ssh_sockets
    from solver.cli import build_git
    try:
        if build_git.is_git_context(args.context):  # the Dockerfile from the checkout; the daemon fetches
            args.git_context = args.context
            context = build_git.prepare(args)
        else:
            context = build_context(args.context)
    except LLBookError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    printer = make_printer(args.progress)
    bus = ProgressBus()
    bus.subscribe(printer)
    recorder = _start_record(args, context, address)
    bus.subscribe(recorder)
    cancel = threading.Event()
    records: list[Any] = []
    solved: Any = None
    export: Any = None
    backend: Any = None
    image_config: dict[str, Any] | None = None
    error: BaseException | None = None
    try:
        scheme = parse_address(address).scheme
        registry = registry_config(args.config)
        grants = (*args.allow, *(["network.host"] if getattr(args, "network", None) == "host" else []))
        backend = BuildKitBackend(address, _tls(args), grants, registry_credentials(registry))
        contexts = named_contexts.parse(args.build_contexts)
        layouts = sorted(c.name for c in contexts.values() if c.is_layout)
        if layouts:
            raise LLBookError(f"--build-context {', '.join(layouts)}: oci-layout:// contexts need the session's "
                              "content store service, which llbook does not host for a BuildKit daemon yet")
        if getattr(args, "load", False) and scheme != "dockerd":
            raise LLBookError("--load with --buildkit-host needs dockerd:// (its -t images are dockerd's); "
                              "or build with the embedded solver")
        export = _export(args, scheme)  # a bad --output fails before anything is built
        with Solver(cache_dir=args.cache_dir, registry_config=registry) as resolver_host:
            resolver = named_contexts.resolver(resolver_host.image_resolver(pull=args.pull), contexts)
            lowered = lower(args, context, resolver)
        image_config = getattr(lowered, "image_config", None)
        definition, renamed = named_contexts.rewrite(lowered.definition(), contexts)
        locations = {renamed.get(d, d): (r.filename, r.line) for d, r in lowered.vertex_sources().items()}
        with ssh_sockets(getattr(args, "ssh", [])) as ssh:  # the session relays them (sshforward)
            solved = backend.solve(definition,
                                   context_dirs={"context": context, **named_contexts.context_dirs(contexts)},
                                   secrets={s.id: s.src for s in args.secrets}, no_cache=args.no_cache,
                                   progress=bus.emit, cancel=cancel, locations=locations,
                                   export=export, image_config=image_config, ssh=ssh)
        records = solved.vertices
    except KeyboardInterrupt as interrupt:
        cancel.set()
        error = interrupt
    except (BuildError, DockerfileError, LLBookError, ValueError) as failure:
        error = failure
    finally:
        close_printer(printer)
        _finish_record(recorder, solved, error, export, backend.last if backend else None, image_config)
        if args.metadata_file:
            _metadata(args.metadata_file, backend.last if backend else None, image_config, address, error, records)
    code = failure_exit_code(error)
    if code is not None:
        return code
    if args.progress != "quiet" and backend is not None and backend.last is not None:
        steps = [v for v in records if v.kind != "local"]
        cached = sum(1 for v in steps if v.cached)
        image = backend.last.exporter_response.get("containerimage.digest", "")
        print(f"built on {address}: {cached} cached, {len(steps) - cached} executed"
              + (f"; image {image}" if image else ""), file=sys.stderr)
    return 0
