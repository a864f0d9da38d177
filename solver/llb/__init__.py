"""LLB: BuildKit's op model, canonical protobuf bytes, digests, Definitions, and the State API.

    from solver import llb
    st = llb.image("busybox").run("echo hi > /x", shell=True).root()
    definition = st.marshal(platform="linux/amd64")
    definition.to_bytes()            # what `buildctl build` reads on stdin
"""

from solver.llb import pb
from solver.llb.definition import Edge, Graph, InvalidDefinitionError, Vertex, load
from solver.llb.digest import digest_of
from solver.llb.exec import (BindMount, CacheMount, SecretMount, SSHMount, TmpfsMount, bind, cache_mount,
                             secret, ssh, tmpfs)
from solver.llb.fileop import Chown, FileAction, UserSpec, copy, mkdir, mkfile, rm, symlink
from solver.llb.pb import (EMPTY, ROOT_MOUNT, SKIP_OUTPUT, CacheSharingOpt, Definition, MountContentCache,
                           MountType, NetMode, Op, OpMetadata, SecurityMode)
from solver.llb.platform import Platform
from solver.llb.reference import InvalidReferenceError, normalize as normalize_reference
from solver.llb.sources import ResolveMode, git, http, image, local, oci_layout
from solver.llb.state import ExecState, State, diff, merge, new_state, scratch

__all__ = [
    "EMPTY", "ROOT_MOUNT", "SKIP_OUTPUT", "BindMount", "CacheMount", "CacheSharingOpt", "Chown", "Definition",
    "Edge", "ExecState", "FileAction", "Graph", "InvalidDefinitionError", "InvalidReferenceError",
    "MountContentCache", "MountType", "NetMode", "Op", "OpMetadata", "Platform", "ResolveMode", "SSHMount",
    "SecretMount", "SecurityMode", "State", "TmpfsMount", "UserSpec", "Vertex", "bind", "cache_mount", "copy",
    "diff", "digest_of", "git", "http", "image", "load", "local", "merge", "mkdir", "mkfile", "new_state",
    "normalize_reference", "oci_layout", "pb", "rm", "scratch", "secret", "ssh", "symlink", "tmpfs",
]
