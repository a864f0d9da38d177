"""``llbook build``: docker build's flags over the Dockerfile frontend and the embedded solver.

    llbook build [-f FILE] [-t NAME]... [--target STAGE] [--build-arg K=V]...
                 [--secret id=ID,src=PATH]... [--ssh default|ID=PATH[,PATH]]...
                 [--build-context NAME=PATH|oci-layout://...]...
                 [--no-cache] [--cache-dir DIR] [--config FILE] [--executor runc|proot]
                 [--allow network.host|security.insecure]... [--platform OS/ARCH]
                 [--progress auto|tty|plain|quiet] [--metadata-file FILE] CONTEXT

``--output`` (docker build's syntax: ``type=oci|docker|tar|local,dest=…`` or
``type=image,name=…,push=true``) writes the result through ``solver.export``.
``--load`` writes a docker archive and ``docker load``s it into dockerd (``$DOCKER_HOST`` or
``/var/run/docker.sock``).

The metadata file is JSON: ``llbook.vertices`` (one record per vertex: digest, name,
cached, started, completed, error; plus cache keys and rebuild reasons),
``containerimage.config.digest`` (of the exported image's config, else of the image
config the frontend produced), ``containerimage.digest`` (with an image export),
``llbook.result.snapshot`` and ``llbook.result.cache_key``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solver.cli.build_common import build_context, config_digest, failure_exit_code, lower, registry_config
from solver.errors import BuildError, DockerfileError, LLBookError


@dataclass(frozen=True)
class SecretSpec:
    id: str
    src: Path


def parse_key_value(text: str, flag: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not key:
        raise argparse.ArgumentTypeError(f"{flag}: expected KEY=VALUE, got {text!r}")
    if not sep:
        value = os.environ.get(key, "")
    return key, value


def parse_secret(text: str) -> SecretSpec:
    """``id=ID,src=PATH`` (also ``source=``, ``env=VAR``), as buildx's --secret."""
    fields: dict[str, str] = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        fields[key.strip().lower()] = value.strip()
    secret_id = fields.get("id", "")
    src = fields.get("src") or fields.get("source")
    if not src and "env" in fields:
        raise argparse.ArgumentTypeError("--secret env= is not supported; write the value to a file")
    if not secret_id or not src:
        raise argparse.ArgumentTypeError(f"--secret: expected id=ID,src=PATH, got {text!r}")
    return SecretSpec(secret_id, Path(src).expanduser().absolute())


def add_secret_argument(parser: argparse.ArgumentParser) -> None:
    """``--secret id=ID,src=PATH`` (repeatable); ``%%dockerfile`` and ``%llb config`` take it too."""
    parser.add_argument("--secret", dest="secrets", action="append", default=[], type=parse_secret,
                        metavar="id=ID,src=PATH", help="a secret file for RUN --mount=type=secret")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("context", metavar="CONTEXT", help="build context directory or git URL")
    parser.add_argument("-f", "--file", dest="file", help="Dockerfile (default CONTEXT/Dockerfile)")
    parser.add_argument("-t", "--tag", dest="tags", action="append", default=[], help="image name")
    parser.add_argument("--target", default=None, help="build stage to build")
    parser.add_argument("--build-arg", dest="build_args", action="append", default=[],
                        type=lambda t: parse_key_value(t, "--build-arg"), metavar="KEY=VALUE")
    add_secret_argument(parser)
    parser.add_argument("--build-context", dest="build_contexts", action="append", default=[],
                        type=lambda t: parse_key_value(t, "--build-context"), metavar="NAME=PATH")
    parser.add_argument("--no-cache", action="store_true", help="do not use the cache")
    parser.add_argument("--pull", action="store_true", help="resolve base image tags again")
    parser.add_argument("--push", action="store_true",
                        help="push the image to the registry of each -t name (type=image,push=true)")
    parser.add_argument("--cache-dir", default=None, help="cache directory (default $LLBOOK_CACHE_DIR, "
                        "$XDG_CACHE_HOME/llbook)")
    parser.add_argument("--config", default=None, help="registry config (buildkitd.toml format)")
    parser.add_argument("--executor", default=os.environ.get("LLBOOK_EXECUTOR") or None,
                        choices=["runc", "crun", "proot"], help="executor (default: probed)")
    parser.add_argument("--allow", dest="allow", action="append", default=[],
                        help="grant an entitlement: network.host, security.insecure")
    parser.add_argument("--platform", default=None, help="target platform, e.g. linux/amd64")
    parser.add_argument("--progress", default="auto", choices=["auto", "tty", "plain", "quiet"])
    parser.add_argument("--metadata-file", default=None, help="write build metadata JSON here")
    from solver.cli.build_flags import add_arguments as add_flag_arguments
    add_flag_arguments(parser)  # --network (host grants network.host), --label, --add-host, --shm-size, --ulimit,
    # --no-cache-filter, --iidfile, -q
    from solver.cli.build_checks import add_arguments as add_check_arguments
    add_check_arguments(parser)  # --check, --call=check: the build checks without a build
    parser.add_argument("--on-error", choices=["fail", "shell"], default="fail",
                        help="shell: open a shell in the state before a failing RUN (its command "
                             "in the history), as buildx debug --on=error")
    from solver.cli.build_load import add_arguments as add_load_arguments
    add_load_arguments(parser)  # --load: into dockerd
    from solver.cli.build_ssh import add_arguments as add_ssh_arguments
    add_ssh_arguments(parser)  # --ssh default|ID=PATH[,PATH]
    from solver.cli.cache_flags import add_arguments as add_cache_arguments
    add_cache_arguments(parser)  # --cache-to / --cache-from
    from solver.cli.buildkit import add_arguments as add_buildkit_arguments
    add_buildkit_arguments(parser)  # --buildkit-host: solve on a BuildKit daemon instead


def write_metadata(path: str, result: Any, image_config: dict[str, Any] | None,
                   tags: list[str], error: BaseException | None, vertices: list[Any],
                   exports: list[Any] = (), extra: dict[str, Any] | None = None) -> None:
    data: dict[str, Any] = {
        "llbook.vertices": [v.to_metadata() for v in vertices],
        "containerimage.config.digest": config_digest(image_config),
    }
    images = [e for e in exports if getattr(e, "manifest_digest", "")]
    if images:  # the exported image's own digests (config with rootfs and history)
        data["containerimage.digest"] = images[0].manifest_digest
        data["containerimage.config.digest"] = images[0].config_digest
    if exports:
        data["llbook.exports"] = [{"type": e.type, "dest": e.dest, "manifest": e.manifest_digest,
                                   "config": e.config_digest, "size": e.size} for e in exports]
    if result is not None:
        data["llbook.result.snapshot"] = result.snapshot
        head = [v for v in result.vertices if v.digest == result.head]
        if head and head[0].cache_keys:
            data["llbook.result.cache_key"] = head[0].cache_keys[result.output]
    if tags:
        data["image.name"] = ",".join(tags)
    if error is not None:
        data["llbook.error"] = str(error)
    data.update(extra or {})
    Path(path).write_text(json.dumps(data, indent=2) + "\n")


class _Collector:
    """Keeps the vertex records of a solve for the metadata file, even when it fails."""

    def __init__(self) -> None:
        from solver.solve.result import VertexRecord
        self.records: dict[str, VertexRecord] = {}
        self._cls = VertexRecord
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        from solver.solve import progress as p
        if not isinstance(event, (p.VertexStarted, p.VertexCached, p.VertexCompleted, p.VertexFailed)):
            return
        with self._lock:
            rec = self.records.setdefault(event.digest, self._cls(event.digest, event.name))
            rec.started = getattr(event, "started", rec.started)
            if isinstance(event, p.VertexCached):
                rec.cached, rec.completed = True, event.completed
            elif isinstance(event, p.VertexCompleted):
                rec.completed = event.completed
            elif isinstance(event, p.VertexFailed):
                rec.completed, rec.error = event.completed, event.error


def _output_specs(args: argparse.Namespace, load_target: Any = None) -> list[Any]:
    """``--output`` values (docker build syntax), parsed before anything is built; ``--load``'s archive too."""
    texts = list(getattr(args, "outputs", None) or [])
    if load_target is not None:
        from solver.cli.build_load import output_text
        texts.append(output_text(load_target))
    if not texts and not getattr(args, "push", False):
        return []  # no export: leave solver.export (registry client, tar, gzip) unimported
    from solver.export import ExportError, parse_output
    if getattr(args, "push", False):
        if not args.tags:
            raise ExportError("--push needs at least one -t NAME to push to")
        texts.append("type=image,push=true")
    return [parse_output(text, tags=tuple(args.tags)) for text in texts]


def _export_all(solver: Any, result: Any, image_config: dict[str, Any] | None, specs: list[Any],
                args: argparse.Namespace, load_target: Any = None) -> list[Any]:
    """Write the result as each ``--output`` asks (exporters of ``solver.export``); ``--load``'s
    archive goes into dockerd."""
    if not specs:
        return []
    from solver.export import epoch_from_env, export
    from solver.export.result_source import export_source
    from solver.source.registry import RegistryClient
    client = RegistryClient(solver.registry_config)
    done = []
    for spec in specs:
        source = export_source(solver, result, image_config)
        done.append(export(source, spec, epoch=epoch_from_env(spec, dict(args.build_args)),
                           registry_client=client))
        if load_target is not None and spec.dest == str(load_target.archive):
            from solver.cli.build_load import load
            report = load(load_target)
            if args.progress != "quiet":
                print(f"loaded into dockerd ({load_target.endpoint}): {report}", file=sys.stderr)
        elif args.progress != "quiet":
            digest = f" {done[-1].manifest_digest}" if done[-1].manifest_digest else ""
            print(f"exported {spec.type}{' to ' + spec.dest if spec.dest else ''}{digest}", file=sys.stderr)
    return done


def _shell_before(solver: Any, definition: Any, failure: BuildError, context_dirs: dict[str, Path],
                  secrets: dict[str, Path], ssh: dict[str, str]) -> None:
    """``--on-error=shell``: a shell in the state before the failing RUN (solver.solve.debug)."""
    from solver.llb import pb
    from solver.llb.definition import load
    from solver.solve.debug import ShellRequest, open_shell
    vertex = load(definition).vertices.get(failure.vertex)
    if vertex is None or not isinstance(vertex.op.op, pb.ExecOp):
        print(f"error: {failure}\nllbook: no shell: the failing step is not a RUN", file=sys.stderr)
        return
    print(f"error: {failure}\nllbook: a shell in the state before {failure.name}; the failing "
          "command is in its history (press Up); nothing you change is kept", file=sys.stderr)
    open_shell(solver, definition, ShellRequest(failure.vertex, before=True),
               context_dirs=context_dirs, secrets=secrets, ssh=ssh)


def run_build(args: argparse.Namespace) -> int:
    from solver.cli.buildkit import run_buildkit_build, selected_host
    from solver.cli.build_checks import wants_check
    if getattr(args, "quiet", False):
        args.progress = "quiet"
    from solver.cli.build_call import run_subrequest, wants_subrequest
    buildkit_host = selected_host(args)
    if buildkit_host and not wants_check(args) and not wants_subrequest(args):
        return run_buildkit_build(args, buildkit_host)  # --check/--call run llbook's frontend; the daemon builds nothing
    from solver.cli import cache_flags
    from solver.cli.build_checks import metadata_warnings, print_build_warnings, run_check_call, run_checks
    from solver.cli.progress import close_printer, make_printer
    from solver.solve.progress import ProgressBus
    from solver.solve import named_contexts
    from solver.cli.solver_pool import open_solver
    from solver.cli.build_ssh import ssh_sockets
    from solver.cli import build_load
    from solver.cli import build_git
    try:
        if build_git.is_git_context(args.context):  # a git URL: its checkout is the context
            args.git_context = args.context
            context = build_git.prepare(args)
        else:
            context = build_context(args.context)
        if wants_subrequest(args):  # --call=outline|targets: the frontend's answer, nothing is built
            return run_subrequest(args, context)
    except LLBookError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    printer = make_printer(args.progress)
    collector = _Collector()
    bus = ProgressBus()
    bus.subscribe(printer)
    bus.subscribe(collector)
    result, image_config, error, checks = None, None, None, None
    exports: list[Any] = []
    cancel = threading.Event()
    recorder = None  # the build history's record (solver.history), made once it is a build
    load_target = None  # --load: the docker archive and the dockerd it goes to
    try:
        load_target = build_load.prepare(args)  # no reachable dockerd fails before the build
        with open_solver(cache_dir=args.cache_dir, registry_config=registry_config(args.config),
                         entitlements=[*args.allow, *(["network.host"] if args.network == "host" else [])],
                         executor_name=args.executor) as solver:
            specs = _output_specs(args, load_target)  # a bad --output fails before anything is built
            cache_from, cache_to = cache_flags.parse(args)
            contexts = named_contexts.parse(args.build_contexts)
            resolver = named_contexts.resolver(solver.image_resolver(pull=args.pull), contexts)
            if wants_check(args):
                return run_check_call(args, context, resolver)
            from solver.cli import history_record
            recorder = history_record.start(args, context, str(solver.paths.root))
            bus.subscribe(recorder)
            checks = run_checks(args, context, resolver, all_stages=False)
            lowered = lower(args, context, resolver)
            if checks.violation and checks.error is not None:
                raise checks.error  # check=error=true: the warnings fail the build
            image_config = getattr(lowered, "image_config", None)
            marshalled = lowered.definition()  # once: the sources below read the same one
            definition, renamed = named_contexts.rewrite(marshalled, contexts)
            locations = {renamed.get(d, d): (r.filename, r.line)
                         for d, r in lowered.vertex_sources(marshalled).items()}
            context_dirs = {"context": context, **named_contexts.context_dirs(contexts)}
            secrets = {s.id: s.src for s in args.secrets}
            imports = cache_flags.import_caches(solver, cache_from, args.platform, args.progress == "quiet")
            with ssh_sockets(args.ssh) as ssh:  # an ssh-agent for key files lives as long as the solve
                try:
                    result = solver.solve(
                        definition, locations=locations, context_dirs=context_dirs, secrets=secrets,
                        no_cache=args.no_cache, progress=bus.emit, cancel=cancel, image_config=image_config,
                        place_scope=str(Path(args.file).absolute() if args.file and args.file != "-"
                                        else context / "Dockerfile"), cache_imports=imports, ssh=ssh,
                        resolved=getattr(args, "git_resolved", None))
                except BuildError as failure:
                    if args.on_error == "shell":
                        close_printer(printer)
                        _shell_before(solver, definition, failure, context_dirs, secrets, ssh)
                    raise
            image_config = cache_flags.inline_config(solver, result, image_config, cache_to)
            exports = _export_all(solver, result, image_config, specs, args, load_target)
            cache_flags.export_caches(solver, result, cache_to, args.progress == "quiet")
    except KeyboardInterrupt as interrupt:
        cancel.set()
        error = interrupt
    except (BuildError, DockerfileError, LLBookError, ValueError) as failure:
        error = failure
    finally:
        build_load.discard(load_target)
        close_printer(printer)
        print_build_warnings(checks, args.progress)
        if recorder is not None:
            history_record.finish(recorder, result, error, exports, image_config)
        if args.metadata_file:
            vertices = result.vertices if result is not None else list(collector.records.values())
            write_metadata(args.metadata_file, result, image_config, args.tags, error, vertices, exports,
                           metadata_warnings(checks))
    code = failure_exit_code(error)
    if code is not None:
        return code
    assert result is not None
    _report_image_id(args, exports, image_config)
    if args.progress != "quiet":
        executed = len(result.executed)
        print(f"built {result.snapshot or 'scratch'}: {result.cached_count} cached, "
              f"{executed} executed", file=sys.stderr)
    return 0


def _report_image_id(args: argparse.Namespace, exports: list[Any], image_config: dict[str, Any] | None) -> None:
    """-q prints the image ID; --iidfile writes it (docker build's config digest)."""
    from solver.cli.build_flags import image_id
    ident = image_id(exports, config_digest(image_config))
    if args.iidfile:
        Path(args.iidfile).write_text(ident)
    if args.quiet:
        print(ident)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("build", help="build an image from a Dockerfile",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.set_defaults(run=run_build)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llbook build")
    add_arguments(parser)
    return run_build(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
