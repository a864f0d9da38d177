"""Source ops (Go's `client/llb/source.go`): image, local, http, oci-layout, git."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from solver.errors import LLBookError
from solver.llb import giturl, gojson, gopath, pb
from solver.llb.platform import Platform
from solver.llb.reference import normalize
from solver.llb.vertex import MarshalContext, OpOptions, Output, Vertex

if TYPE_CHECKING:
    from solver.llb.state import State

ATTR_LOCAL_SESSION = "local.session"
ATTR_LOCAL_UNIQUE = "local.unique"


class ResolveMode(str, Enum):
    """`image.resolvemode` values; the attr is written only when not DEFAULT."""

    DEFAULT = "default"
    PULL = "pull"
    LOCAL = "local"


@dataclass(eq=False, repr=False)
class SourceVertex(Vertex):
    """A source op: identifier plus attrs."""

    identifier: str
    attrs: Mapping[str, str] = field(default_factory=dict)
    options: OpOptions = field(default_factory=OpOptions)

    def inputs(self) -> list[Output]:
        return []

    def platform_specific(self) -> bool:
        """Only image and oci-layout sources carry a platform (`platformSpecificSource`)."""
        return self.identifier.startswith(("docker-image://", "oci-layout://"))

    def build_op(self, ctx: MarshalContext) -> tuple[pb.Op, pb.OpMetadata]:
        attrs = dict(self.attrs)
        options = self.options
        if self.identifier.startswith("local://") and ATTR_LOCAL_SESSION not in attrs:
            attrs[ATTR_LOCAL_UNIQUE] = ctx.local_unique_id
            options = options.with_caps("source.local.unique")
        op, md = ctx.base_op(options)
        op.op = pb.SourceOp(identifier=self.identifier, attrs=attrs)
        if not self.platform_specific():
            op.platform = None
        return op, md

    def output(self) -> Output:
        return Output(self, 0, self.options.platform)


def _source_state(vertex: SourceVertex) -> State:
    from solver.llb.state import new_state

    return new_state(vertex.output())


def _opts(caps: set[str], platform: Platform | None, custom_name: str | None,
          description: Mapping[str, str] | None, ignore_cache: bool = False) -> OpOptions:
    return OpOptions.make(custom_name=custom_name, description=description, ignore_cache=ignore_cache,
                          platform=platform, caps=frozenset(caps))


def image(ref: str, platform: Platform | str | None = None, resolve_mode: ResolveMode | str | None = None,
          attrs: Mapping[str, str] | None = None, *, layer_limit: int | None = None, checksum: str = "",
          custom_name: str | None = None, description: Mapping[str, str] | None = None,
          ignore_cache: bool = False) -> State:
    """A registry image: `docker-image://<normalised ref>`.

    A platform string is parsed and normalised (Go's `platforms.Parse`); a Platform object is
    used as given (Go's `llb.Platform` option), as is the platform passed to `marshal`.
    """
    caps = {"source.image"}
    all_attrs: dict[str, str] = {}
    mode = ResolveMode(resolve_mode) if resolve_mode else ResolveMode.DEFAULT
    if mode != ResolveMode.DEFAULT:
        all_attrs["image.resolvemode"] = mode.value
        if mode == ResolveMode.PULL:
            caps.add("source.image.resolvemode")
    if layer_limit is not None:
        all_attrs["image.layerlimit"] = str(layer_limit)
        caps.add("source.image.layerlimit")
    if checksum:
        all_attrs["image.checksum"] = checksum
        caps.add("source.image.checksum")
    all_attrs.update(attrs or {})
    plat = Platform.parse(platform) if isinstance(platform, str) else platform
    vertex = SourceVertex("docker-image://" + normalize(ref), all_attrs,
                          _opts(caps, plat, custom_name, description, ignore_cache))
    return _source_state(vertex)


def _json_list(values: Sequence[str] | None) -> str:
    """Go's `json.Marshal([]string)`; "" for an empty list (the attr is then left out)."""
    return gojson.dumps(list(values)) if values else ""


def local(name: str, *, session: str | None = None, include_patterns: Sequence[str] | None = None,
          exclude_patterns: Sequence[str] | None = None, follow_paths: Sequence[str] | None = None,
          shared_key_hint: str | None = None, differ: str | None = None,
          custom_name: str | None = None, description: Mapping[str, str] | None = None) -> State:
    """A client directory: `local://<name>`. Without a session a random `local.unique` is added at marshal."""
    attrs: dict[str, str] = {}
    caps = {"source.local"}
    for key, value, cap in (
        (ATTR_LOCAL_SESSION, session or "", "source.local.sessionid"),
        ("local.includepattern", _json_list(include_patterns), "source.local.includepatterns"),
        ("local.followpaths", _json_list(follow_paths), "source.local.followpaths"),
        ("local.excludepatterns", _json_list(exclude_patterns), "source.local.excludepatterns"),
        ("local.sharedkeyhint", shared_key_hint or "", "source.local.sharedkeyhint"),
    ):
        if value:
            attrs[key] = value
            caps.add(cap)
    if differ:
        attrs["local.differ"] = differ
    return _source_state(SourceVertex("local://" + name, attrs, _opts(caps, None, custom_name, description)))


def http(url: str, *, filename: str | None = None, checksum: str | None = None, perm: int | None = None,
         uid: int | None = None, gid: int | None = None, auth_header_secret: str | None = None,
         custom_name: str | None = None, description: Mapping[str, str] | None = None) -> State:
    """An HTTP(S) download; the URL is the identifier."""
    attrs: dict[str, str] = {}
    caps = {"source.http"}
    if checksum:
        attrs["http.checksum"] = checksum
        caps.add("source.http.checksum")
    if filename:
        attrs["http.filename"] = filename
    if perm:
        attrs["http.perm"] = "0" + format(perm & 0o777, "o")
        caps.add("source.http.perm")
    if uid:
        attrs["http.uid"] = str(uid)
        caps.add("soruce.http.uidgid")  # sic: the cap ID BuildKit ships
    if gid:
        attrs["http.gid"] = str(gid)
        caps.add("soruce.http.uidgid")
    if auth_header_secret:
        attrs["http.authheadersecret"] = auth_header_secret
        caps.add("source.http.auth")
    return _source_state(SourceVertex(url, attrs, _opts(caps, None, custom_name, description)))


def oci_layout(ref: str, *, store_id: str = "", session_id: str = "", layer_limit: int | None = None,
               platform: Platform | None = None, custom_name: str | None = None) -> State:
    """An image in a client OCI layout store: `oci-layout://<ref>`."""
    attrs: dict[str, str] = {}
    if session_id:
        attrs["oci.session"] = session_id
    if store_id:
        attrs["oci.store"] = store_id
    if layer_limit is not None:
        attrs["oci.layerlimit"] = str(layer_limit)
    vertex = SourceVertex("oci-layout://" + ref, attrs, _opts({"source.ocilayout"}, platform, custom_name, None))
    return _source_state(vertex)


def git(url: str, ref: str = "", *, subdir: str = "", keep_git_dir: bool = False, checksum: str = "",
        mtime: str = "", known_ssh_hosts: str = "", mount_ssh_sock: str = "", skip_submodules: bool = False,
        host_key_scan: Callable[[str], str] | None = None, fetch_by_commit: bool = False,
        custom_name: str | None = None) -> State:
    """A git repository, as Go's ``llb.Git(url, "", GitRef(ref), GitSubDir(subdir), …)``:
    ``git://<host><path>[#ref[:subdir]]``, the remote in ``git.fullurl``. ssh remotes
    (``ssh://``, ``git@host:path``) mount the client's ``default`` agent and pin the host key:
    ``known_ssh_hosts`` as given (Go's ``KnownSSHHosts`` option), else what ``host_key_scan(host)``
    finds (Go's client always scans, best effort; the Dockerfile frontend passes
    ``giturl.ssh_keyscan``). Without either the fetch does not check the host key, as BuildKit."""
    remote_url = None
    try:
        remote_url = giturl.parse_url(url)
    except giturl.UnknownProtocol:
        url = "https://" + url
        try:
            remote_url = giturl.parse_url(url)
        except LLBookError:
            remote_url = None
    except LLBookError:
        remote_url = None
    if remote_url is not None:
        url = remote_url.remote
    subdir = gopath.join("/", subdir).lstrip("/")
    if remote_url is None:
        ident = url  # as Go: the operation fails later on
    else:
        ident = remote_url.host + gopath.join("/", remote_url.path)
        if ref or subdir:
            ident += "#" + ref + (":" + subdir if subdir else "")
    attrs = {"git.authtokensecret": "GIT_AUTH_TOKEN", "git.authheadersecret": "GIT_AUTH_HEADER"}
    caps = {"source.git"}
    if keep_git_dir:
        attrs["git.keepgitdir"] = "true"
        caps.add("source.git.keepgitdir")
    if url:
        attrs["git.fullurl"] = url
        caps.add("source.git.fullurl")
    if remote_url is not None and remote_url.scheme == "ssh":
        if known_ssh_hosts:
            attrs["git.knownsshhosts"] = known_ssh_hosts.rstrip("\n") + "\n"
        elif host_key_scan is not None and (scanned := host_key_scan(remote_url.host)):
            attrs["git.knownsshhosts"] = scanned
        caps.add("source.git.knownsshhosts")
        attrs["git.mountsshsock"] = mount_ssh_sock or "default"
        caps.add("source.git.mountsshsock")
    if checksum:
        attrs["git.checksum"] = checksum
        caps.add("source.git.checksum")
    if skip_submodules:
        attrs["git.skipsubmodules"] = "true"
        caps.add("source.git.skipsubmodules")
    if mtime:
        attrs["git.mtime"] = mtime
        caps.add("source.git.mtime")
    if fetch_by_commit:
        attrs["git.fetchbycommit"] = "true"
        caps.add("source.git.fetchbycommit")
    return _source_state(SourceVertex("git://" + ident, attrs, _opts(caps, None, custom_name, None)))
