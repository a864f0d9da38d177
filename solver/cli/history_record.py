"""What ``llbook build`` records in the build history (solver.history): its Dockerfile, args, platform and result."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from solver.cli.build_common import config_digest, read_dockerfile
from solver.errors import LLBookError


def start(args: argparse.Namespace, context: Path, cache_dir: str | None) -> Any:
    """A Recorder for this build (subscribe it to the progress bus); secrets and ssh by id only."""
    from solver.cli.build_flags import history_config, run_options
    from solver.history import Recorder
    try:
        text, filename = read_dockerfile(args, context)
        sources = {filename: text}
    except LLBookError:
        sources = {}
    where = getattr(args, "git_context", "") or str(context)  # a git context is named by its URL
    return Recorder.start(cache_dir, "dockerfile", where, sources=sources,
                          args=dict(args.build_args), target=args.target, platform=args.platform,
                          context=where, secrets=list(dict.fromkeys(s.id for s in args.secrets)),
                          ssh=list(dict.fromkeys(s.id for s in getattr(args, "ssh", []))),
                          config=history_config(getattr(args, "network", None), run_options(args)))


def finish(recorder: Any, result: Any, error: BaseException | None, exports: list[Any],
           image_config: dict[str, Any] | None) -> None:
    """Save the record: steps, logs tail, error, the result's digests and the exports."""
    if recorder is None:
        return
    if error is None and result is None:
        error = LLBookError("the build stopped before it had a result")
    done = [{"type": e.type, "dest": e.dest, "manifest": e.manifest_digest, "config": e.config_digest,
             "size": e.size} for e in exports]
    images = [e for e in exports if getattr(e, "manifest_digest", "")]
    recorder.finish(result, error, exports=done,
                    config_digest=images[0].config_digest if images else config_digest(image_config),
                    image_digest=images[0].manifest_digest if images else None)
