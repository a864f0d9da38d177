"""ExecOp execution: prepare the mounts, run the process in the sandbox, commit outputs.

Mounts, as BuildKit's exec op sets them up:
- bind with an output: a new writable snapshot on the input, committed when the
  process succeeds (the root mount is one of these);
- bind readonly: a read-only view of the input (or the local context directory);
- bind writable without output: a throwaway writable snapshot, removed afterwards;
- cache: a directory under ``cachemounts/`` locked with its sharing mode, never part of
  a key or a layer;
- tmpfs;
- secret: the secret file copied into a private temporary directory outside every
  snapshot and bound read-only; never in a key or a layer;
- ssh: a forwarding socket to the client's agent (``ops_ssh.py``), bound at the target.

The executor removes the mount points it had to create for extra mounts
(``/run/secrets/x``...) before the root snapshot is committed. On a failure or cancel every
prepared snapshot is removed and nothing is returned, so nothing is recorded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from solver.errors import BuildError
from solver.llb import pb
from solver.solve.ops_common import (OpContext, OutputResult, VertexInfo, layer_result, new_layer,
                                     private_tmp_base)
from solver.solve.progress import LogTail, VertexLogWriter
from solver.solve.ops_refs import open_ref
from solver.solve.result import Ref
from solver.solve.scheduler import Canceled

_PROXY_VARS = ("http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy")


def _parents(ref: Ref) -> list[str]:
    return [ref.snapshot] if ref.kind == "snapshot" and ref.snapshot else []


def _sub(root: Path, selector: str) -> Path:
    from solver.solve.fileops_paths import root_path
    if not selector or selector.strip("/") == "":
        return root
    return root_path(root, selector)


@contextmanager
def _throwaway_layer(ctx: OpContext, ref: Ref) -> Iterator[Path]:
    from solver.snapshot.mount import mounted
    key = ctx.new_key("scratchrw")
    parents = _parents(ref)
    mounts = ctx.snapshotter.prepare(key, parents[0] if parents else None)
    try:
        with mounted(mounts, parent_dir=ctx.tmp_dir) as path:
            if ref.kind == "local":
                from solver.solve.ops_merge import copy_into
                assert ref.path is not None
                copy_into(ref.path, path)
            yield path
    finally:
        ctx.snapshotter.remove(key)


@contextmanager
def _secret_file(ctx: OpContext, info: VertexInfo, mount: pb.Mount) -> Iterator[Path | None]:
    opt = mount.secret_opt or pb.SecretOpt()
    source = ctx.secrets.get(opt.id)
    if source is None or not source.is_file():
        if opt.optional:
            yield None
            return
        raise BuildError(f"secret {opt.id} not found (pass --secret id={opt.id},src=FILE)",
                         vertex=info.digest, name=info.name, filename=info.filename, line=info.line)
    private = Path(tempfile.mkdtemp(prefix="secret-", dir=private_tmp_base()))
    try:
        target = private / "secret"
        shutil.copyfile(source, target)
        os.chmod(target, opt.mode or 0o400)
        os.chown(target, opt.uid, opt.gid)
        yield target
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _cache_dir(ctx: OpContext, stack: ExitStack, mount: pb.Mount, inputs: list[Ref]) -> Path:
    opt = mount.cache_opt or pb.CacheOpt(id=mount.dest)
    base = inputs[mount.input] if 0 <= mount.input < len(inputs) else None
    mount_id = opt.id or mount.dest
    if base is not None and base.kind == "snapshot":
        mount_id = f"{mount_id}:{base.snapshot}"
    handle = stack.enter_context(ctx.store.open_cache_mount(mount_id, int(opt.sharing)))
    directory = Path(handle.dir)
    if base is not None and base.kind != "scratch" and not any(directory.iterdir()):
        from solver.solve.ops_merge import copy_into
        with open_ref(ctx, base) as src:
            copy_into(_sub(src, mount.selector), directory)
    return directory


class _Outputs:
    def __init__(self) -> None:
        self.layers: dict[int, object] = {}
        self.root: Path | None = None


def _mount_specs(ctx: OpContext, info: VertexInfo, stack: ExitStack, inputs: list[Ref],
                 outputs: _Outputs, keep_outputs: bool = True) -> list:
    """The executor's mounts; ``keep_outputs=False`` (a debug shell) puts every writable
    mount on a throwaway snapshot, so nothing is committed."""
    from solver.executor.base import MountSpec
    exec_op: pb.ExecOp = info.op.op
    specs = []
    for mount in exec_op.mounts:
        ref = inputs[mount.input] if 0 <= mount.input < len(inputs) else Ref.scratch()
        kind = mount.mount_type
        if kind == pb.MountType.BIND:
            if mount.output >= 0 and not mount.readonly and keep_outputs:
                work = stack.enter_context(new_layer(ctx, _parents(ref)))
                if ref.kind == "local":
                    from solver.solve.ops_merge import copy_into
                    assert ref.path is not None
                    copy_into(ref.path, work.path)
                outputs.layers[mount.output] = work
                path = _sub(work.path, mount.selector)
            elif mount.readonly:
                path = _sub(stack.enter_context(open_ref(ctx, ref)), mount.selector)
            else:
                path = _sub(stack.enter_context(_throwaway_layer(ctx, ref)), mount.selector)
            if mount.dest == "/":
                outputs.root = path
            else:
                specs.append(MountSpec(mount.dest, str(path), readonly=mount.readonly))
        elif kind == pb.MountType.CACHE:
            specs.append(MountSpec(mount.dest, str(_cache_dir(ctx, stack, mount, inputs)), readonly=mount.readonly))
        elif kind == pb.MountType.TMPFS:
            size = mount.tmpfs_opt.size if mount.tmpfs_opt else 0
            specs.append(MountSpec(mount.dest, type="tmpfs", options=(f"size={size}",) if size else ()))
        elif kind == pb.MountType.SECRET:
            secret = stack.enter_context(_secret_file(ctx, info, mount))
            if secret is not None:
                specs.append(MountSpec(mount.dest, str(secret), readonly=True))
        elif kind == pb.MountType.SSH:
            from solver.solve.ops_ssh import ssh_socket
            sock = stack.enter_context(ssh_socket(ctx, info, mount))
            if sock is not None:
                specs.append(MountSpec(mount.dest, str(sock)))
    return specs


def _process(exec_op: pb.ExecOp):
    from solver.executor.base import (NETWORK_HOST, NETWORK_NONE, NETWORK_SANDBOX, SECURITY_INSECURE,
                                      SECURITY_SANDBOX, ProcessSpec)
    meta = exec_op.meta or pb.Meta()
    env = list(meta.env)
    if meta.proxy_env is not None:
        for var in _PROXY_VARS:
            value = getattr(meta.proxy_env, var, "")
            if value:
                env += [f"{var}={value}", f"{var.upper()}={value}"]
    network = {pb.NetMode.NONE: NETWORK_NONE, pb.NetMode.HOST: NETWORK_HOST}.get(exec_op.network,
                                                                              NETWORK_SANDBOX)
    security = SECURITY_INSECURE if exec_op.security == pb.SecurityMode.INSECURE else SECURITY_SANDBOX
    return ProcessSpec(args=list(meta.args), env=env, cwd=meta.cwd or "/", user=meta.user,
                       hostname=meta.hostname or "buildkitsandbox", network=network, security=security,
                       valid_exit_codes=list(meta.valid_exit_codes),
                       extra_hosts=[(h.host, h.ip) for h in meta.extra_hosts],
                       ulimits=[(u.name.lower(), u.soft, u.hard) for u in meta.ulimit])


def execute_exec(ctx: OpContext, info: VertexInfo, inputs: list[Ref]) -> list[OutputResult]:
    from solver.executor.base import ExecCancelledError
    exec_op: pb.ExecOp = info.op.op
    process = _process(exec_op)
    tail = LogTail()
    stdout = VertexLogWriter(ctx.emit, info.digest, 1, tail)
    stderr = VertexLogWriter(ctx.emit, info.digest, 2, tail)
    outputs = _Outputs()
    with ExitStack() as stack:
        specs = _mount_specs(ctx, info, stack, inputs, outputs)
        if outputs.root is None:
            raise BuildError("exec op has no root mount", vertex=info.digest, name=info.name)
        ctx.check_canceled()
        executor = ctx.executor_factory()
        try:
            code = executor.run(outputs.root, process, specs, stdout=stdout.write,
                                stderr=stderr.write, cancel=ctx.cancel)
        except ExecCancelledError as error:
            raise Canceled(str(error)) from error
        if ctx.cancel.is_set():
            raise Canceled("build canceled")
        if not process.exit_ok(code):
            raise BuildError(
                f'process "{" ".join(process.args)}" did not complete successfully: exit code: {code}',
                vertex=info.digest, name=info.name, exit_code=code, log_tail=tail.lines(20),
                filename=info.filename, line=info.line)
    return [layer_result(ctx, outputs.layers[i]) if i in outputs.layers else
            OutputResult(Ref.scratch()) for i in range(max(outputs.layers, default=-1) + 1)]
