"""Build-wide settings derived from the options and global args: target platform, the
automatic ARGs, proxy env, SOURCE_DATE_EPOCH and the build context source (a directory, or a git URL)."""

from __future__ import annotations

from typing import Iterable

from solver.errors import DockerfileError
from solver.frontend.dispatch_state import LoweringOptions
from solver.frontend.instructions import ArgInstruction
from solver.frontend.shell_words import Lexer, WordError
from solver.llb import pb
from solver.llb.platform import Platform
from solver.llb.sources import git as llb_git
from solver.llb.sources import local as llb_local
from solver.llb.state import State

PROXY_ARGS = ("http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy")


def target_platform(platform: Platform | str | None) -> Platform:
    if platform is None:
        return Platform.host()
    if isinstance(platform, str):
        return Platform.parse(platform)
    return platform.normalize()


def format_platform(p: Platform) -> str:
    return f"{p.os}/{p.architecture}" + (f"/{p.variant}" if p.variant else "")


def default_args(platform: Platform, overrides: dict[str, str], target: str) -> dict[str, str]:
    """The automatic global args (``defaultArgs``)."""
    build = Platform.host()
    values = {
        "BUILDPLATFORM": format_platform(build), "BUILDOS": build.os, "BUILDOSVERSION": build.os_version,
        "BUILDARCH": build.architecture, "BUILDVARIANT": build.variant,
        "TARGETPLATFORM": format_platform(platform), "TARGETOS": platform.os,
        "TARGETOSVERSION": platform.os_version, "TARGETARCH": platform.architecture,
        "TARGETVARIANT": platform.variant, "TARGETSTAGE": target or "default",
    }
    return {k: overrides.get(k, v) for k, v in values.items()}


def proxy_env(build_args: dict[str, str]) -> pb.ProxyEnv | None:
    """Proxy build args go to ``Meta.proxy_env`` (``proxyEnvFromBuildArgs``)."""
    env = pb.ProxyEnv()
    found = False
    for key in sorted(build_args):
        lowered = key.lower()
        if lowered in PROXY_ARGS:
            setattr(env, lowered, build_args[key])
            found = True
    return env if found else None


def apply_meta_args(global_args: dict[str, str], meta: list[ArgInstruction], build_args: dict[str, str],
                    lexer: Lexer) -> dict[str, str]:
    """Global ARGs before the first FROM (``buildMetaArgs``)."""
    out = dict(global_args)
    for ins in meta:
        for arg in ins.args:
            if arg.key in build_args:
                value: str | None = build_args[arg.key]
            elif arg.value is not None:
                try:
                    value = lexer.process_word(arg.value, out)
                except WordError as err:
                    raise ins.error(str(err)) from None
            else:
                value = None
            if value is not None:
                out.pop(arg.key, None)
                out[arg.key] = value
    return out


def source_date_epoch(build_args: dict[str, str], global_args: dict[str, str], filename: str) -> int | None:
    value = build_args.get("SOURCE_DATE_EPOCH", global_args.get("SOURCE_DATE_EPOCH"))
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise DockerfileError(f"invalid SOURCE_DATE_EPOCH: {value}", None, filename) from None


def git_context_state(url: str, build_args: dict[str, str]) -> State:
    """A git URL as the build context, as dockerui's ``DetectGitContext``: its ref, subdir,
    keep-git-dir (or ``BUILDKIT_CONTEXT_KEEP_GIT_DIR``), checksum and mtime; with
    SOURCE_DATE_EPOCH the files get the commit's time."""
    from solver.frontend.gitref import parse_git_ref, ssh_keyscan
    ref = parse_git_ref(url, for_context=True)
    if ref is None:
        raise DockerfileError(f"build context {url} is not a git URL", None, "")
    keep = bool(ref.keep_git_dir) or _parse_bool(build_args.get("BUILDKIT_CONTEXT_KEEP_GIT_DIR", ""))
    mtime = ref.mtime or ("commit" if build_args.get("SOURCE_DATE_EPOCH") else "")
    return llb_git(ref.remote, ref.ref, subdir=ref.subdir, keep_git_dir=keep, checksum=ref.checksum,
                   mtime=mtime, skip_submodules=ref.submodules is False, host_key_scan=ssh_keyscan,
                   fetch_by_commit=ref.fetch_by_commit,
                   custom_name="[internal] load git source " + url)


def _parse_bool(text: str) -> bool:
    return text.lower() in ("1", "t", "true")


def context_state(options: LoweringOptions, follow_paths: Iterable[str] = ()) -> State:
    """The build context: ``local://context`` with session, excludes and followpaths (or
    the git source of a git URL context, which takes neither)."""
    if options.context_git:
        return git_context_state(options.context_git, options.build_args)
    paths = sorted(follow_paths)
    return llb_local(options.context_name, session=options.session_id,
                     exclude_patterns=options.exclude_patterns or None, follow_paths=paths or None,
                     shared_key_hint=options.context_name, custom_name="[internal] load build context")


def normalize_context_paths(paths: set[str]) -> list[str]:
    """``normalizeContextPaths``: relative, sorted; none at all when "/" is used."""
    if "/" in paths:
        return []
    return sorted(p.lstrip("/") or "." for p in paths)
