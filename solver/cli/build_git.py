"""A git URL as ``llbook build``'s context (``llbook build https://host/r.git#ref:subdir``).

docker build sends such a context to BuildKit, whose frontend loads the git source and
reads the Dockerfile from it. Here the context's git source is solved first (the same
vertex the build then finds cached) and its checkout is the directory the Dockerfile,
the checks and the history read; the lowering's context is the git source itself, solved
with the same resolution (``args.git_resolved``), so the Dockerfile and the context come
from one commit even when the branch moves during the build.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from solver.errors import LLBookError


def is_git_context(raw: str) -> bool:
    """A git URL that is not an existing local path (docker build's order)."""
    from solver.frontend.gitref import GitRefError, parse_git_ref
    if Path(raw).expanduser().exists():
        return False
    try:
        return parse_git_ref(raw, for_context=True) is not None
    except GitRefError:
        return True  # a git URL with bad options: the lowering names the error


def checkout(args: argparse.Namespace, solver: Any, progress: Any = None, cancel: Any = None,
             ssh: Any = None) -> Path:
    """Solve the context's git source; the directory of its checkout."""
    from solver.frontend.build_setup import git_context_state
    from solver.frontend.gitref import GitRefError
    try:
        state = git_context_state(args.context, dict(args.build_args))
    except GitRefError as error:
        raise LLBookError(f"build context {args.context}: {error}") from None
    args.git_resolved = {}  # the commit the context resolved to, for the build's own solve
    result = solver.solve(state, secrets={s.id: s.src for s in getattr(args, "secrets", [])},
                          progress=progress, cancel=cancel, ssh=ssh, resolved=args.git_resolved)
    if not result.snapshot:
        raise LLBookError(f"build context {args.context}: the checkout is empty")
    return Path(solver.snapshotter.diff_dir(result.snapshot))


def prepare(args: argparse.Namespace, progress: Any = None, cancel: Any = None) -> Path:
    """The checkout of a git context in a solver of its own (for the steps that run before
    the build's solver opens: ``--call``, ``--check``)."""
    from solver.cli.build_common import registry_config
    from solver.cli.build_ssh import ssh_sockets
    from solver.cli.solver_pool import open_solver
    host = ["network.host"] if getattr(args, "network", None) == "host" else []
    with open_solver(cache_dir=args.cache_dir, registry_config=registry_config(args.config),
                     entitlements=[*args.allow, *host],
                     executor_name=getattr(args, "executor", None)) as solver, \
            ssh_sockets(getattr(args, "ssh", [])) as ssh:
        return checkout(args, solver, progress, cancel, ssh)
