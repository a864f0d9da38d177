"""`llbook build --check` / `--call=check`, and the build-check warnings of a normal build
(printed after it as buildx prints them, a failure with ``check=error=true``, and
``buildx.build.warnings`` in the metadata file when ``BUILDX_METADATA_WARNINGS`` is 1 or true)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from solver.cli.build_common import read_dockerfile
from solver.errors import DockerfileError
from solver.frontend.checks import (CheckInputs, CheckResult, check_dockerfile, format_build_warnings,
                                    format_check_report, source_excerpt, warnings_metadata)

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true",
                        help="run the build checks only (as --call=check): exit 1 on any warning")
    from solver.cli.build_call import CallFunc, parse_call
    parser.add_argument("--call", default=CallFunc(), type=parse_call, metavar="build|check|outline|targets[,format=json]",
                        help="build (default); check: evaluate the build checks without building; outline: the "
                             "target's build args, secrets and ssh; targets: the stages")


def wants_check(args: argparse.Namespace) -> bool:
    from solver.cli.build_call import call_of
    return bool(getattr(args, "check", False)) or call_of(args).name == "check"


def run_checks(args: argparse.Namespace, context: Path, resolver: Any, *, all_stages: bool) -> CheckResult:
    """The checks of the build's Dockerfile: every stage for ``--check``, else those the target needs."""
    from solver.frontend import context_ignore_patterns
    text, filename = read_dockerfile(args, context)
    inputs = CheckInputs(filename=filename, build_args=dict(args.build_args), target=args.target,
                         all_stages=all_stages, platform=args.platform, resolver=resolver,
                         ignore_patterns=context_ignore_patterns(str(context), filename))
    return check_dockerfile(text, inputs)


def run_check_call(args: argparse.Namespace, context: Path, resolver: Any) -> int:
    """``--call=check``: the report on stdout; exit 1 on any warning or error (``result.statuscode``).

    As BuildKit's lint request, the whole conversion runs too, so an error it finds (a bad
    platform, an unknown stage) is reported after the warnings."""
    from solver.cli.build_call import call_of
    from solver.cli.build_common import lower
    call = call_of(args)
    result = run_checks(args, context, resolver, all_stages=True)
    if result.error is None:
        try:
            lower(args, context, resolver)
        except DockerfileError as err:
            result.error = err
    if call.format == "json":
        return _print_json(result, call.ignore_status)
    sys.stdout.write(format_check_report(result))
    sys.stdout.flush()
    return 1 if result.failed and not call.ignore_status else 0  # ignorestatus=true: buildx exits 0


def _print_json(result: CheckResult, ignore_status: bool) -> int:
    """``format=json``: the lint ``result.json`` on stdout as buildx prints it; a build error
    then fails (whatever ignorestatus says), with its message and source on stderr."""
    from solver.frontend.checks.lint_json import lint_json
    sys.stdout.write(lint_json(result) + "\n")
    sys.stdout.flush()
    if result.error is not None:
        line = result.error.line
        excerpt = source_excerpt(result.source, result.error.filename, line, line) if line else ""
        sys.stderr.write(f"error: {result.error.message}\n{excerpt}")
        return 1
    return 1 if result.warnings and not ignore_status else 0


def print_build_warnings(result: CheckResult | None, progress: str) -> None:
    """After a build, on stderr: "N warnings found:" and each with its line and source."""
    if result is None or progress == "quiet" or not result.warnings:
        return
    sys.stderr.write(format_build_warnings(result.warnings, result.source))


def metadata_warnings(result: CheckResult | None) -> dict[str, Any]:
    """``buildx.build.warnings`` for the metadata file, opt-in as in buildx."""
    if result is None or not result.warnings:
        return {}
    if os.environ.get("BUILDX_METADATA_WARNINGS", "").lower() not in ("1", "true"):
        return {}
    return {"buildx.build.warnings": warnings_metadata(result.warnings, result.source)}
