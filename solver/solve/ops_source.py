"""Source ops: container images from registries, and the local build context.

- ``docker-image://REF``: the cache key is the image's manifest digest and platform
  (BuildKit's ``buildkit.source.v0:{"Digest":…}``). A reference pinned with ``@sha256:``
  needs no network to compute it, so a warm build does not touch the registry. On a
  miss the image is pulled into the content store and each layer is unpacked into its
  own snapshot (named by its chain ID, shared between images), the top one is the result.
- ``git://HOST/PATH#REF:SUBDIR``: keyed by the commit the ref resolves to (``ls-remote``;
  BuildKit's ``shaToCacheKey``), fetched into a per-remote bare repository and checked out
  into a new snapshot (``solver.source.git``).
- ``local://NAME``: the directory given for NAME (``context_dirs``), with the source's
  exclude/include patterns. Its key is random (as BuildKit's session key); consumers
  hash the content of the paths they select instead.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from solver.errors import BuildError
from solver.llb import pb
from solver.solve import cachekey
from solver.solve.ops_common import OpContext, OutputResult, VertexInfo, new_layer
from solver.solve.progress import VertexStatus
from solver.solve.scheduler import Canceled
from solver.solve.result import Ref

IMAGE_SCHEME = "docker-image://"
LOCAL_SCHEME = "local://"
OCI_SCHEME = "oci-layout://"
HTTP_SCHEMES = ("http://", "https://")
GIT_SCHEME = "git://"


# ------------------------------------------------------------------------------ local


def _json_list(attrs: dict[str, str], key: str) -> tuple[str, ...]:
    raw = attrs.get(key)
    if not raw:
        return ()
    try:
        value = json.loads(raw)
    except ValueError:
        return ()
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def local_ref(ctx: OpContext, info: VertexInfo) -> Ref:
    src: pb.SourceOp = info.op.op
    name = src.identifier[len(LOCAL_SCHEME):]
    path = ctx.context_dirs.get(name)
    if path is None:
        raise BuildError(f"no directory given for local source {name!r} "
                         f"(known: {', '.join(sorted(ctx.context_dirs)) or 'none'})",
                         vertex=info.digest, name=info.name)
    if not Path(path).is_dir():
        raise BuildError(f"local source {name!r}: {path} is not a directory", vertex=info.digest,
                         name=info.name)
    return Ref.of_local(Path(path), _json_list(src.attrs, "local.excludepatterns"),
                        _json_list(src.attrs, "local.includepattern"),
                        _json_list(src.attrs, "local.followpaths"))


# ------------------------------------------------------------------------------ images


def _platform(ctx: OpContext, op: pb.Op):
    from solver.source.registry import Platform, default_platform
    p = op.platform or ctx.platform
    if p is None or not p.architecture:
        return default_platform()
    return Platform(os=p.os or "linux", architecture=p.architecture, variant=p.variant)


def _image_source(ctx: OpContext):
    if ctx.image_source_factory is None:
        from solver.source.image import ImageSource
        from solver.source.registry import RegistryClient
        source = ImageSource(RegistryClient(ctx.registry_config))
        ctx.image_source_factory = lambda: source
    return ctx.image_source_factory()


def resolve_image(ctx: OpContext, ref: str, op: pb.Op):
    """The ResolvedImage of ``ref`` for the op's platform (memoised per solve)."""
    platform = _platform(ctx, op)
    memo_key = (ref, f"{platform.os}/{platform.architecture}/{platform.variant}")
    if memo_key not in ctx.resolved:
        ctx.resolved[memo_key] = _image_source(ctx).resolve(ref, platform)
    return ctx.resolved[memo_key]


def _pinned_digest(ref: str) -> str | None:
    _, at, digest = ref.partition("@")
    return digest if at and digest.startswith("sha256:") else None


def source_key(ctx: OpContext, info: VertexInfo) -> str | None:
    src: pb.SourceOp = info.op.op
    ident = src.identifier
    if ident.startswith(IMAGE_SCHEME):
        ref = ident[len(IMAGE_SCHEME):]
        digest = _pinned_digest(ref)
        if digest is None:
            digest = resolve_image(ctx, ref, info.op).manifest_digest
        limit = src.attrs.get("image.layerlimit")
        return cachekey.image_source_key(digest, info.op.platform or ctx.platform,
                                         int(limit) if limit else None)
    if ident.startswith(LOCAL_SCHEME):
        return None
    if ident.startswith(OCI_SCHEME):
        _, resolved = _open_layout(ctx, info)
        return cachekey.image_source_key(resolved.manifest_digest, info.op.platform or ctx.platform)
    if ident.startswith(HTTP_SCHEMES):
        return http_key(ctx, info)
    if ident.startswith(GIT_SCHEME):
        return git_key(ctx, info)
    raise BuildError(f"unsupported source {ident}", vertex=info.digest, name=info.name)


def chain_ids(diff_ids: list[str]) -> list[str]:
    """OCI chain IDs: chain(0) = diff(0), chain(n) = sha256(chain(n-1) + " " + diff(n))."""
    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest())
    return out


def _unpack_layer_snapshot(ctx: OpContext, name: str, parent: str | None, blob: Path,
                           media_type: str, diff_id: str) -> None:
    """Unpack one layer on top of ``parent`` into the committed snapshot ``name``."""
    from solver.source.image import unpack_layer
    with ctx.store.locks.named("layer:" + name):
        if ctx.snapshotter.exists(name):
            return
        ctx.lease.add_snapshot(name)
        key = ctx.new_key("unpack")
        from solver.snapshot.mount import mounted
        mounts = ctx.snapshotter.prepare(key, parent)
        try:
            with mounted(mounts, parent_dir=ctx.tmp_dir) as path:
                unpack_layer(blob, media_type, path, mode="apply", expected_diff_id=diff_id)
            ctx.check_canceled()
            ctx.snapshotter.commit(name, key)
        except BaseException:
            try:
                ctx.snapshotter.remove(key)
            except Exception:  # noqa: BLE001
                pass
            raise


def _pull_progress(ctx: OpContext, info: VertexInfo):
    """Progress events for a pull; raising ``Canceled`` here stops the downloads (the pull
    calls this from its download threads, between chunks)."""
    def report(event) -> None:
        ctx.check_canceled()
        ctx.emit(VertexStatus(info.digest, event.digest, f"{event.status} {event.digest[:19]}",
                              event.done, event.total,
                              completed=None if event.status == "downloading" else 1.0))
    return report


def execute_image(ctx: OpContext, info: VertexInfo) -> list[OutputResult]:
    src: pb.SourceOp = info.op.op
    resolved = resolve_image(ctx, src.identifier[len(IMAGE_SCHEME):], info.op)
    return _image_result(ctx, resolved, lambda content: _image_source(ctx).pull(
        resolved, content, progress=_pull_progress(ctx, info)))


def _image_result(ctx: OpContext, resolved, fetch) -> list[OutputResult]:
    """Fetch an image's blobs into the content store and unpack its layer chain."""
    content = ctx.store.content
    for digest in [resolved.manifest_digest, resolved.config_digest] + [d.digest for d in resolved.layers]:
        ctx.lease.add_blob(digest)
    fetch(content)
    ctx.store.add_blob(resolved.manifest_digest, resolved.media_type)
    ctx.store.add_blob(resolved.config_digest, "application/vnd.oci.image.config.v1+json")
    for layer in resolved.layers:
        ctx.store.add_blob(layer.digest, layer.media_type)
    names: list[str] = []
    parent: str | None = None
    for layer, chain in zip(resolved.layers, chain_ids(resolved.diff_ids)):
        ctx.check_canceled()
        name = "layer-" + chain.split(":", 1)[1]
        diff_id = resolved.diff_ids[len(names)]
        _unpack_layer_snapshot(ctx, name, parent, content.path(layer.digest), layer.media_type, diff_id)
        names.append(name)
        parent = name
    blobs = (resolved.manifest_digest, resolved.config_digest) + tuple(d.digest for d in resolved.layers)
    extra = {"image": resolved.name, "manifest": resolved.manifest_digest,
             "config": resolved.config_digest, "diff_ids": resolved.diff_ids}
    if not names:
        with new_layer(ctx, []) as work:
            pass
        assert work.name is not None
        return [OutputResult(Ref.of_snapshot(work.name), 0, (), blobs, extra)]
    size = sum(int(d.size) for d in resolved.layers)
    return [OutputResult(Ref.of_snapshot(names[-1]), size, tuple(reversed(names[:-1])), blobs, extra)]


def execute_source(ctx: OpContext, info: VertexInfo) -> list[OutputResult]:
    src: pb.SourceOp = info.op.op
    if src.identifier.startswith(IMAGE_SCHEME):
        return execute_image(ctx, info)
    if src.identifier.startswith(OCI_SCHEME):
        layout, resolved = _open_layout(ctx, info)
        return _image_result(ctx, resolved, lambda content: layout.import_blobs(resolved, content))
    if src.identifier.startswith(HTTP_SCHEMES):
        return _http_result(ctx, info)
    if src.identifier.startswith(GIT_SCHEME):
        return _git_result(ctx, info)
    raise BuildError(f"unsupported source {src.identifier}", vertex=info.digest, name=info.name)


# ------------------------------------------------------------------------------ oci layout


def _layout_text(ctx: OpContext, info: VertexInfo) -> str:
    """``oci-layout://PATH[:TAG]``; with an ``oci.store`` attr naming a context directory
    (``--build-context name=oci-layout://…`` or ``context_dirs``), PATH is below it."""
    src: pb.SourceOp = info.op.op
    rest = src.identifier[len(OCI_SCHEME):]
    store = src.attrs.get("oci.store", "")
    if store and store in ctx.context_dirs:
        return OCI_SCHEME + str(ctx.context_dirs[store]) + (rest[rest.find(":"):] if ":" in rest else "")
    return src.identifier


def _open_layout(ctx: OpContext, info: VertexInfo):
    from solver.source.oci_layout import open_layout_ref
    key = (_layout_text(ctx, info), "oci")
    if key not in ctx.resolved:
        ctx.resolved[key] = open_layout_ref(key[0], _platform(ctx, info.op))
    return ctx.resolved[key]


# ------------------------------------------------------------------------------ http


def _download(ctx: OpContext, info: VertexInfo) -> tuple[Path, str]:
    """Fetch the URL once per solve into tmp/; returns (file, sha256 digest)."""
    import urllib.request
    src: pb.SourceOp = info.op.op
    key = (src.identifier, "http")
    if key in ctx.resolved:
        return ctx.resolved[key]
    import os
    import tempfile
    fd, name = tempfile.mkstemp(prefix=f"http-{os.getpid()}-", dir=ctx.store.paths.tmp)
    digest = hashlib.sha256()
    with os.fdopen(fd, "wb") as out, urllib.request.urlopen(src.identifier, timeout=60) as response:
        while chunk := response.read(1 << 20):
            ctx.check_canceled()
            digest.update(chunk)
            out.write(chunk)
    found = (Path(name), "sha256:" + digest.hexdigest())
    expected = src.attrs.get("http.checksum")
    if expected and expected != found[1]:
        Path(name).unlink(missing_ok=True)
        raise BuildError(f"digest mismatch for {src.identifier}: expected {expected}, got {found[1]}",
                         vertex=info.digest, name=info.name, filename=info.filename, line=info.line)
    ctx.resolved[key] = found
    return found


def _http_filename(src: pb.SourceOp) -> str:
    from urllib.parse import urlsplit
    name = src.attrs.get("http.filename") or Path(urlsplit(src.identifier).path).name
    return name or "index"


def http_key(ctx: OpContext, info: VertexInfo) -> str:
    src: pb.SourceOp = info.op.op
    _, digest = _download(ctx, info)
    return json.dumps({"Filename": _http_filename(src), "Perm": src.attrs.get("http.perm", ""),
                       "UID": src.attrs.get("http.uid", ""), "GID": src.attrs.get("http.gid", ""),
                       "Checksum": digest}, sort_keys=True)


def _http_result(ctx: OpContext, info: VertexInfo) -> list[OutputResult]:
    import os
    import shutil
    src: pb.SourceOp = info.op.op
    path, _ = _download(ctx, info)
    with new_layer(ctx, []) as work:
        assert work.path is not None
        target = work.path / _http_filename(src)
        shutil.copyfile(path, target)
        os.chmod(target, int(src.attrs.get("http.perm", "0600"), 8))
        os.chown(target, int(src.attrs.get("http.uid", "0") or 0), int(src.attrs.get("http.gid", "0") or 0))
    path.unlink(missing_ok=True)
    from solver.solve.ops_common import layer_result
    return [layer_result(ctx, work)]


# ------------------------------------------------------------------------------ git


def _git_spec(ctx: OpContext, info: VertexInfo):
    """The ``GitSpec`` of a git source op (BuildKit's ``GitIdentifier`` from identifier + attrs)."""
    from solver.llb.giturl import is_git_transport
    from solver.source.git import GitSpec, auth_header
    src: pb.SourceOp = info.op.op
    rest = src.identifier[len(GIT_SCHEME):]
    location, _, fragment = rest.partition("#")
    ref, _, subdir = fragment.partition(":")
    attrs = src.attrs
    remote = attrs.get("git.fullurl") or location
    if not is_git_transport(remote):
        remote = "https://" + remote
    sock_id = attrs.get("git.mountsshsock", "")
    sock = None
    if sock_id:
        sock = ctx.ssh.get(sock_id)
        if sock is None:
            raise BuildError(f"git source {remote}: no SSH key {sock_id!r} forwarded from the client "
                             f"(--ssh {sock_id})", vertex=info.digest, name=info.name,
                             filename=info.filename, line=info.line)

    def read_secret(name: str) -> bytes | None:
        path = ctx.secrets.get(name)
        return path.read_bytes() if path is not None and path.is_file() else None

    header = auth_header(remote, attrs.get("git.authheadersecret", ""), attrs.get("git.authtokensecret", ""),
                         read_secret)
    return GitSpec(remote=remote, ref=ref, subdir=subdir.strip("/"),
                   keep_git_dir=attrs.get("git.keepgitdir") == "true",
                   skip_submodules=attrs.get("git.skipsubmodules") == "true", checksum=attrs.get("git.checksum", ""),
                   fetch_by_commit=attrs.get("git.fetchbycommit") == "true",
                   mtime=attrs.get("git.mtime", ""), known_hosts=attrs.get("git.knownsshhosts", ""),
                   ssh_socket=sock, auth_header=header)


def _located_git(info: VertexInfo, error) -> BuildError:
    import dataclasses
    return dataclasses.replace(error, vertex=info.digest, name=info.name, filename=info.filename, line=info.line)


def _git_resolved(ctx: OpContext, info: VertexInfo):
    """(spec, resolved commit) of a git source, once per solve."""
    from solver.errors import GitSourceError
    from solver.source import git
    key = (info.op.op.identifier + "\0" + json.dumps(info.op.op.attrs, sort_keys=True), "git")
    if key not in ctx.resolved:
        spec = _git_spec(ctx, info)
        try:
            with git.session(spec, ctx.cancel, ctx.store.paths.tmp) as runner:
                ctx.resolved[key] = (spec, git.resolve(spec, runner, ctx.resolved))
        except GitSourceError as error:
            raise _located_git(info, error) from None
        except git.Canceled:
            raise Canceled("build canceled") from None
    return ctx.resolved[key]


def git_key(ctx: OpContext, info: VertexInfo) -> str:
    """BuildKit's git cache key: the commit (with .git#ref, :subdir, mtime suffixes)."""
    from solver.source.git import cache_key
    spec, resolved = _git_resolved(ctx, info)
    return cache_key(spec, resolved)


def _git_result(ctx: OpContext, info: VertexInfo) -> list[OutputResult]:
    from solver.errors import GitSourceError
    from solver.solve.ops_common import layer_result
    from solver.source import git
    spec, resolved = _git_resolved(ctx, info)
    bare = git.bare_dir(ctx.store.paths.root, spec.remote)
    try:
        with git.session(spec, ctx.cancel, ctx.store.paths.tmp) as runner, \
                ctx.store.locks.named(git.lock_name(bare)):
            git.fetch(spec, resolved, runner, bare)
            ctx.check_canceled()
            with new_layer(ctx, []) as work:
                assert work.path is not None
                git.checkout(spec, resolved, runner, bare, work.path, ctx.store.paths.tmp)
                ctx.check_canceled()
    except GitSourceError as error:
        raise _located_git(info, error) from None
    except git.Canceled:
        raise Canceled("build canceled") from None
    return [layer_result(ctx, work)]


# ------------------------------------------------------------------------------ resolution cache


class ResolutionCache:
    """Image references resolved before, like docker's local image store.

    ``docker build`` uses a base image it already has without asking the registry; only
    ``--pull`` re-resolves the tag. llbook keeps ``ref + platform -> (pinned ref, config)``
    under ``<cache>/resolved/`` for the same behaviour (a warm build touches no network),
    and in memory for the length of a process.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._memory: dict[str, tuple[str, dict]] = {}

    def _path(self, ref: str, platform: str) -> Path:
        name = hashlib.sha256(f"{ref}\0{platform}".encode()).hexdigest()
        return self.directory / f"{name}.json"

    def get(self, ref: str, platform: str) -> tuple[str, dict] | None:
        key = f"{ref}\0{platform}"
        if key in self._memory:
            return self._memory[key]
        try:
            data = json.loads(self._path(ref, platform).read_text())
            found = (str(data["pinned"]), dict(data["config"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        self._memory[key] = found
        return found

    def put(self, ref: str, platform: str, pinned: str, config: dict) -> None:
        import os
        import tempfile
        self._memory[f"{ref}\0{platform}"] = (pinned, config)
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".resolve-", dir=self.directory)
        with os.fdopen(fd, "w") as out:
            json.dump({"ref": ref, "platform": platform, "pinned": pinned, "config": config}, out)
        os.replace(tmp, self._path(ref, platform))
