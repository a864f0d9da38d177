"""RUN → ExecOp (BuildKit ``dispatchRun`` and ``convert_runmount.go``)."""

from __future__ import annotations

from typing import Callable

from solver.llb import exec as llb_exec
from solver.llb.fileop import Chown, UserSpec, mkdir, mkfile
from solver.llb.state import State, scratch
from solver.frontend.dispatch_state import BuildState, StageState
from solver.frontend.heredoc import chomp_content, parse_heredoc
from solver.frontend.instructions import RunInstruction
from solver.frontend.mounts import MountError, MountSpec, parse_mount
from solver.frontend.shell_words import Lexer
from solver.frontend.paths import base as paths_base
from solver.llb import gopath, pb

DEFAULT_SHELL = ["/bin/sh", "-c"]
DF_COMMAND_KEY = "com.docker.dockerfile.v1.command"
NETWORKS = {"default": pb.NetMode.UNSET, "none": pb.NetMode.NONE, "host": pb.NetMode.HOST}
SECURITY = {"sandbox": pb.SecurityMode.SANDBOX, "insecure": pb.SecurityMode.INSECURE}
SHARING = {"": pb.CacheSharingOpt.SHARED, "shared": pb.CacheSharingOpt.SHARED,
           "private": pb.CacheSharingOpt.PRIVATE, "locked": pb.CacheSharingOpt.LOCKED}

StageLookup = Callable[[str], "State | None"]


def with_shell(stage: StageState, args: list[str]) -> list[str]:
    """The SHELL (or ``/bin/sh -c``) followed by the command joined with spaces."""
    shell = list(stage.image.config.shell) or list(DEFAULT_SHELL)
    return shell + [" ".join(args)]


def summarize_heredoc(doc: str) -> str:
    lines = doc.strip().replace("\r\n", "\n").split("\n")
    return lines[0] + ("..." if len(lines) > 1 else "")


def _heredoc_args(stage: StageState, ins: RunInstruction) -> tuple[list[str], list, str]:
    """Args, extra mounts and custom-name suffix for a RUN with heredocs."""
    args = list(ins.cmd.args)
    files = ins.cmd.files
    try:
        single = parse_heredoc(args[0])
    except ValueError as err:
        raise ins.error(str(err)) from None
    if single is None:
        text = args[0]
        for doc in files:
            text += "\n" + doc.content + doc.name
        return [text], [], ""
    doc = files[0]
    data = chomp_content(doc.content) if doc.chomp else doc.content
    suffix = f" ({summarize_heredoc(doc.content)})"
    if stage.image.os != "windows" and data.startswith("#!"):
        script = scratch().with_cwd("/").file(
            mkfile(doc.name, 0o755, data.encode("utf-8", "surrogateescape")),
            custom_name="[internal] preparing inline document")
        mount = llb_exec.bind("/dev/pipes/", script, selector="/", readonly=True)
        return [gopath.join("/dev/pipes/", doc.name)], [mount], suffix
    return [data], [], suffix


def _mount_target(stage: StageState, target: str) -> str:
    if not gopath.is_abs(gopath.clean(target)):
        return gopath.join("/", stage.cwd, target)
    return target


def _secret_mount(m: MountSpec):
    ident = m.source or m.id
    if not ident:
        ident = paths_base(m.target) if m.target else ""
    target: str | None = m.target or None
    if target is None and m.env is None:
        target = "/run/secrets/" + paths_base(ident)
    uid = m.uid or 0
    gid = m.gid or 0
    mode = m.mode if m.mode is not None else 0o400
    return llb_exec.secret(target, ident, uid=uid, gid=gid, mode=mode, optional=not m.required, env=m.env)


def _ssh_mount(m: MountSpec):
    if m.source:
        raise MountError("ssh does not support source")
    mode = m.mode if m.mode is not None else 0o600
    # BuildKit passes the id as given; an empty id means the "default" agent.
    return llb_exec.ssh(m.target, m.id, uid=m.uid or 0, gid=m.gid or 0, mode=mode,
                   optional=not m.required)


def _cache_permissions(base: State, m: MountSpec) -> State:
    """``setCacheUIDGID``: a /cache directory with the requested owner and mode."""
    mode = m.mode if m.mode is not None else 0o755
    owner = Chown(UserSpec(uid=m.uid or 0), UserSpec(uid=m.gid or 0))
    return base.file(mkdir("/cache", mode, owner=owner),
                     custom_name="[internal] settings cache mount permissions")


def _fs_mount(build: BuildState, stage: StageState, m: MountSpec, source: State | None, ins: RunInstruction):
    state = source if source is not None else build.context
    if m.type == "tmpfs":
        target = _mount_target(stage, m.target)
        _check_target(target)
        return llb_exec.tmpfs(target, size=m.size)
    target = _mount_target(stage, m.target)
    _check_target(target)
    selector = ""
    src = gopath.join("/", m.source)
    if src != "/":
        selector = src
    elif m.uid is not None or m.gid is not None or m.mode is not None:
        state = _cache_permissions(state, m)
        selector = "/cache"
    if m.type == "cache":
        cache_id = m.id or gopath.clean(m.target)
        base = None if _is_scratch(state) else state
        return llb_exec.cache_mount(target, build.cache_namespace + "/" + cache_id, SHARING[m.sharing],
                                    base=base, selector=selector, readonly=bool(m.readonly))
    if m.readonly:
        return llb_exec.bind(target, state, selector=selector, readonly=True)
    return llb_exec.bind(target, state, selector=selector, no_output=True)


def _is_scratch(state: State) -> bool:
    return getattr(state, "output", None) is None


def _check_target(target: str) -> None:
    if target == "/":
        raise MountError(f'invalid mount target "{target}"')


def _check_unique_targets(mounts: list) -> None:
    """Two mounts cannot share a target (the exec op would be invalid)."""
    seen: set[str] = set()
    for m in mounts:
        if not getattr(m, "dest", None):  # a secret exposed as an env var has no target
            continue
        dest = gopath.clean(m.dest)
        if dest in seen:
            raise MountError(f'mount target "{dest}" is used by more than one --mount')
        seen.add(dest)


def run_mounts(build: BuildState, stage: StageState, ins: RunInstruction, lexer: Lexer,
               lookup: StageLookup) -> list:
    """The extra mounts of a RUN, with context paths recorded."""
    out = []
    for raw in ins.mounts:
        m = parse_mount(raw, lambda word: stage.expand(word, ins, lexer))
        if m.type == "secret":
            out.append(_secret_mount(m))
            continue
        if m.type == "ssh":
            out.append(_ssh_mount(m))
            continue
        source = None
        if m.type == "cache" and not m.from_:
            source = scratch()
        elif m.from_:
            source = lookup(m.from_)
            if source is None:
                raise MountError(f'cannot mount from stage "{m.from_}" to "{m.target}", stage needs to be '
                                 "defined before current command")
        out.append(_fs_mount(build, stage, m, source, ins))
        if not m.from_ and m.type != "cache":
            build.ctx_paths.add(gopath.join("/", m.source))
    return out


def run_command_string(args: list[str], stage: StageState) -> str:
    """``RUN |N k=v ... args`` as BuildKit writes it into history."""
    build_env: list[str] = []
    index: dict[str, int] = {}
    for arg in stage.build_args:
        value = stage.env.get(arg.key, arg.value or "")
        entry = f"{arg.key}={value}"
        if arg.key in index:
            build_env[index[arg.key]] = entry
        else:
            index[arg.key] = len(build_env)
            build_env.append(entry)
    if build_env:
        build_env.insert(0, f"|{len(build_env)}")
    return " ".join(build_env + args)


def uppercase_cmd(text: str) -> str:
    head, sep, rest = text.partition(" ")
    return head.upper() + sep + rest


def process_cmd_env(lexer: Lexer, text: str, env: dict[str, str]) -> str:
    try:
        return lexer.process_word(text, env)
    except ValueError:
        return text


def _network(build: BuildState, ins: RunInstruction) -> str:
    """RUN --network, else the build's forced mode (BuildKit's force-network-mode)."""
    if ins.network != "default":
        return ins.network
    return build.options.force_network if build.options.force_network in NETWORKS else "default"


def dispatch_run(build: BuildState, stage: StageState, ins: RunInstruction, lookup: StageLookup) -> list[str]:
    """Lower one RUN; returns the custom names of the vertices it made."""
    custom = ins.code
    args = list(ins.cmd.args)
    mounts: list = []
    if ins.cmd.files:
        args, mounts, suffix = _heredoc_args(stage, ins)
        custom += suffix
    if ins.cmd.prepend_shell:
        args = with_shell(stage, args)
    try:
        mounts += run_mounts(build, stage, ins, build.lexer, lookup)
        _check_unique_targets(mounts)
    except MountError as err:
        raise ins.error(str(err)) from None
    name_lexer = Lexer(escape_token=build.lexer.escape_token, raw_quotes=True, skip_unset_env=True)
    name = stage.prefix(uppercase_cmd(process_cmd_env(name_lexer, custom, stage.env)))
    options = build.options
    if options.shm_size > 0:  # as dockerfile2llb: a sized tmpfs on /dev/shm for every RUN
        mounts.append(llb_exec.tmpfs("/dev/shm", size=options.shm_size))
    exec_state = stage.state.run(
        args, mounts=mounts, network=NETWORKS[_network(build, ins)], security=SECURITY[ins.security],
        proxy_env=build.proxy_env, extra_hosts=options.extra_hosts, custom_name=name,
        description={DF_COMMAND_KEY: ins.code}, ignore_cache=stage.ignore_cache,
        ulimits=options.ulimits)
    stage.state = exec_state.root()
    stage.history(build, "RUN " + run_command_string(args, stage), layer=True, buildkit_suffix=True)
    return [name]
