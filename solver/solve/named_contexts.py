"""Named build contexts (``--build-context NAME=DIR|oci-layout://PATH[:TAG]|GIT-URL``), as buildx.

``FROM NAME`` and ``COPY --from=NAME`` then use the directory, the OCI layout image or the
git repository (``https://…/r.git#ref:subdir``, ``git://…``, ``git@host:path``; dockerui's
``DetectGitContext``) instead of a registry image. The Dockerfile frontend lowers NAME as an image reference,
so this works in two steps around it:

1. ``resolver(ref, platform)`` answers for the named contexts without a registry (an
   empty config for a directory or a git repository, the layout image's own config for an
   OCI layout);
2. ``rewrite(definition, contexts)`` replaces those image sources by ``local://NAME``,
   ``oci-layout://PATH[:TAG]`` or ``git://…`` sources and recomputes the digests of every op that
   depends on them (and the metadata keys), as a client marshaling that LLB would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solver.errors import LLBookError
from solver.llb import pb
from solver.llb.digest import digest_of
from solver.llb.giturl import GitRefError, parse_git_ref, ssh_keyscan
from solver.llb.reference import normalize

OCI_SCHEME = "oci-layout://"
IMAGE_SCHEME = "docker-image://"
_EMPTY_LAYER = "sha256:" + "0" * 64

Resolver = Callable[[str, Any], tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class NamedContext:
    name: str
    value: str  # a directory path, or oci-layout://PATH[:TAG]
    ref: str  # the image reference the frontend makes of NAME

    @property
    def is_layout(self) -> bool:
        return self.value.startswith(OCI_SCHEME)

    @property
    def is_git(self) -> bool:
        return is_git_value(self.value)

    @property
    def directory(self) -> Path:
        return Path(self.value).expanduser().absolute()

    def git_op(self) -> tuple[pb.SourceOp, list[str]]:
        """The git source of ``llb.Git`` for this URL, and the caps it needs."""
        from solver.llb.sources import git
        ref = parse_git_ref(self.value, for_context=True)
        assert ref is not None
        state = git(ref.remote, ref.ref, subdir=ref.subdir, keep_git_dir=bool(ref.keep_git_dir),
                    checksum=ref.checksum, mtime=ref.mtime, skip_submodules=ref.submodules is False,
                    host_key_scan=ssh_keyscan, fetch_by_commit=ref.fetch_by_commit)
        defn = state.marshal()
        for data in defn.def_:
            op = pb.Op.from_bytes(data)
            if isinstance(op.op, pb.SourceOp):
                meta = defn.metadata.get(digest_of(data))
                return op.op, sorted(meta.caps) if meta is not None else []
        raise LLBookError(f"--build-context {self.name}: no git source for {self.value}")

    def source(self) -> pb.SourceOp:
        if self.is_git:
            return self.git_op()[0]
        if self.is_layout:
            rest = self.value[len(OCI_SCHEME):]
            path, sep, tag = rest.rpartition(":") if ":" in rest.rsplit("/", 1)[-1] else (rest, "", "")
            return pb.SourceOp(identifier=OCI_SCHEME + str(Path(path).expanduser().absolute()) + sep + tag)
        return pb.SourceOp(identifier="local://" + self.name, attrs={"local.sharedkeyhint": self.name})


def parse(values: Iterable[tuple[str, str]]) -> dict[str, NamedContext]:
    """``[(name, value)]`` from the command line → contexts keyed by their image reference."""
    out: dict[str, NamedContext] = {}
    for name, value in values:
        try:
            git = is_git_value(value)
        except GitRefError as error:
            raise LLBookError(f"--build-context {name}: {error}") from None
        if "://" in value and not value.startswith(OCI_SCHEME) and not git:
            raise LLBookError(f"--build-context {name}: only directories, oci-layout:// and git URLs "
                              "are supported")
        try:
            ref = normalize(name)
        except Exception as error:  # noqa: BLE001 - the reference parser's own error type
            raise LLBookError(f"--build-context {name}: not a valid name: {error}") from error
        context = NamedContext(name, value, ref)
        if not context.is_layout and not git and not context.directory.is_dir():
            raise LLBookError(f"--build-context {name}: {context.directory} is not a directory")
        out[ref] = context
    return out


def is_git_value(value: str) -> bool:
    """A ``--build-context`` value that names a git repository (dockerui's rules: ``git@``,
    ``git://``, ``ssh://``, or an http(s) URL that is a git ref); raises ``GitRefError``
    for a git URL with bad options."""
    if value.startswith(OCI_SCHEME) or value.startswith(IMAGE_SCHEME):
        return False
    if "://" not in value and not value.startswith("git@"):
        return False
    return parse_git_ref(value) is not None


def context_dirs(contexts: dict[str, NamedContext]) -> dict[str, Path]:
    return {c.name: c.directory for c in contexts.values() if not c.is_layout and not c.is_git}


def _layout_config(context: NamedContext, platform: Any) -> dict[str, Any]:
    from solver.source.oci_layout import open_layout_ref
    from solver.source.registry import Platform
    wanted = None
    if platform is not None:
        text = platform if isinstance(platform, str) else "/".join(
            p for p in (platform.os, platform.architecture, platform.variant) if p)
        wanted = Platform.parse(text)
    _, resolved = open_layout_ref(context.source().identifier, wanted)
    return dict(resolved.config)


def resolver(inner: Resolver, contexts: dict[str, NamedContext]) -> Resolver:
    """A resolver that answers named contexts itself and asks ``inner`` otherwise."""
    def resolve(ref: str, platform: Any = None) -> tuple[str, dict[str, Any]]:
        context = contexts.get(_bare(ref))
        if context is None:
            return inner(ref, platform)
        if context.is_layout:
            return context.ref, _layout_config(context, platform)
        # a directory or a git repository has no image config; one placeholder layer keeps it from being scratch
        return context.ref, {"rootfs": {"type": "layers", "diff_ids": [_EMPTY_LAYER]}, "config": {}}
    return resolve


def _bare(ref: str) -> str:
    return ref.split("@", 1)[0]


def rewrite(defn: pb.Definition, contexts: dict[str, NamedContext]) -> tuple[pb.Definition, dict[str, str]]:
    """The Definition with named-context image sources replaced; and old → new digests."""
    if not contexts:
        return defn, {}
    renamed: dict[str, str] = {}
    named: dict[str, str] = {}
    caps: dict[str, list[str]] = {}
    new_def: list[bytes] = []
    for data in defn.def_:
        op = pb.Op.from_bytes(data)
        old = digest_of(data)
        changed = False
        context_name = None
        git_caps: list[str] | None = None
        for inp in op.inputs:
            if inp.digest in renamed:
                inp.digest = renamed[inp.digest]
                changed = True
        if isinstance(op.op, pb.SourceOp) and op.op.identifier.startswith(IMAGE_SCHEME):
            context = contexts.get(_bare(op.op.identifier[len(IMAGE_SCHEME):]))
            if context is not None:
                op.op = context.source()
                if context.is_git:
                    op.platform = None
                    context_name = f"[internal] load git source {context.value}"
                    git_caps = context.git_op()[1]
                elif not context.is_layout:
                    op.platform = None
                    context_name = f"[context {context.name}] load from client"
                changed = True
        out = op.to_bytes() if changed else data
        new_def.append(out)
        if changed:
            renamed[old] = digest_of(out)
            if context_name is not None:
                named[renamed[old]] = context_name
            if git_caps is not None:
                caps[renamed[old]] = git_caps
    metadata = {renamed.get(k, k): v for k, v in defn.metadata.items()}
    for digest, name in named.items():  # shown as buildx shows named contexts
        meta = metadata.get(digest) or pb.OpMetadata()
        meta.description = {**meta.description, "llb.customname": name}
        if digest in caps:  # the git source's caps instead of the image's
            meta.caps = {cap: True for cap in caps[digest]}
        metadata[digest] = meta
    return pb.Definition(def_=new_def, metadata=metadata, source=defn.source), renamed
