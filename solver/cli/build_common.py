"""What `llbook build` shares between the embedded solver (`build.py`) and a BuildKit daemon
(`buildkit.py`): reading and lowering the Dockerfile, the registry config, the config
digest of the metadata file, and the exit code of a failed build."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from solver.errors import LLBookError

EXIT_INTERRUPTED = 130


def config_digest(image_config: dict[str, Any] | None) -> str | None:
    """The digest of the image config the frontend produced, as the metadata file names it."""
    if image_config is None:
        return None
    data = json.dumps(image_config, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build_context(raw: str) -> Path:
    """The absolute build context directory, or an LLBookError naming why there is none
    (the current directory was removed, the path is missing, it is a file)."""
    path = Path(raw).expanduser()
    try:
        path = path.absolute()
    except FileNotFoundError:
        raise LLBookError(f"build context {raw}: the current directory no longer exists (it was removed); "
                          "cd to an existing directory or give the context as an absolute path") from None
    try:
        if path.is_dir():
            return path
        exists = path.exists()
    except OSError as error:
        raise LLBookError(f"build context {path}: {error.strerror}") from None
    if not exists:
        raise LLBookError(f"build context {path} does not exist")
    raise LLBookError(f"build context {path} is a file, not a directory")


def registry_config(path: str | None) -> Any:
    """The registry mirrors and credentials of ``--config`` (buildkitd.toml form)."""
    from solver.source.registry_config import load_registry_config
    try:
        return load_registry_config(path)
    except OSError as error:  # e.g. a ~/.config/llbook this user may not enter
        where = error.filename or path or "the registry config"
        raise LLBookError(f"cannot read registry config {where}: {error.strerror}") from None


def read_dockerfile(args: argparse.Namespace, context: Path) -> tuple[str, str]:
    """The Dockerfile text (`-f -` reads stdin) and the name its errors and warnings use."""
    from solver.frontend.textutil import decode_dockerfile
    if args.file == "-":  # read once: the checks and the lowering both ask
        if getattr(args, "stdin_dockerfile", None) is None:
            args.stdin_dockerfile = decode_dockerfile(sys.stdin.buffer.read(), "Dockerfile (stdin)")
        return args.stdin_dockerfile, "Dockerfile"
    path = Path(args.file) if args.file else context / "Dockerfile"
    if getattr(args, "git_context", "") and not (args.file and path.exists()):
        path = context / (args.file or "Dockerfile")  # in the git context (buildx: unless -f is local)
        try:
            return decode_dockerfile(path.read_bytes(), args.file or "Dockerfile"), args.file or "Dockerfile"
        except OSError as error:
            raise LLBookError(f"cannot read Dockerfile {args.file or 'Dockerfile'} of the git context "
                              f"{args.git_context}: {error.strerror}") from None
    try:
        return decode_dockerfile(path.read_bytes(), str(path)), str(path)
    except OSError as error:
        if not path.is_absolute() and not _cwd_exists():
            raise LLBookError(f"cannot read Dockerfile {path}: the current directory no longer exists "
                              "(it was removed); give -f as an absolute path") from None
        raise LLBookError(f"cannot read Dockerfile {path}: {error.strerror}") from error


def _cwd_exists() -> bool:
    try:
        os.getcwd()
    except FileNotFoundError:
        return False
    return True


def lower(args: argparse.Namespace, context: Path, resolver: Any) -> Any:
    """Run the Dockerfile frontend."""
    from solver.cli.build_flags import run_options
    from solver.frontend import dockerfile_to_llb
    text, filename = read_dockerfile(args, context)
    return dockerfile_to_llb(text, filename=filename, context_dir=str(context), target=args.target,
                             build_args=dict(args.build_args), platform=args.platform,
                             resolver=resolver, network=getattr(args, "network", None),
                             run_options=run_options(args), context_git=getattr(args, "git_context", ""))


def failure_exit_code(error: BaseException | None) -> int | None:
    """Say why a build failed and return the exit code (130 when interrupted); None if it did not fail."""
    if isinstance(error, KeyboardInterrupt):
        print("error: build interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if error is not None:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return None
