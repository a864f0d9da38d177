"""The OCI runtime spec (config.json) of a RUN, as BuildKit generates it.

containerd's default Unix spec (``pkg/oci/spec.go``) with BuildKit's changes
(``executor/oci/spec.go``, ``spec_linux.go``, ``mounts.go``): hostname
``buildkitsandbox``, new privileges allowed, no rlimits, no ``/run`` mount, read-only
binds of the generated ``/etc/resolv.conf`` and ``/etc/hosts``, a read-only cgroup mount;
``insecure`` makes the container privileged (all capabilities this process holds, no masked or read-only
paths, writable sysfs and cgroupfs). The network namespace is the host's for ``host``,
new for ``none``, and for ``sandbox`` the one of ``netns.py``, joined by path. Rootless
specs add a user namespace with
id mappings, bind the host's /sys and leave cgroups alone.

Sandbox mode gets Docker's default seccomp profile (``seccomp.py``), converted for the
container's bounding capabilities, when asked; insecure mode runs unconfined, as
BuildKit does. No AppArmor profile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solver.executor.base import NETWORK_NONE, SECURITY_INSECURE, MountSpec, ProcessSpec
from solver.executor.seccomp import convert as convert_seccomp
from solver.executor.user import ResolvedUser

OCI_VERSION = "1.0.2"

DEFAULT_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

ALL_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)



def current_capabilities(status: Path = Path("/proc/self/status")) -> tuple[str, ...]:
    """The capabilities this process holds (containerd's WithAllCurrentCapabilities);
    ``ALL_CAPS`` is in bit order."""
    try:
        for line in status.read_text().splitlines():
            if line.startswith("CapEff:"):
                bits = int(line.split()[1], 16)
                return tuple(name for i, name in enumerate(ALL_CAPS) if bits >> i & 1)
    except OSError:
        pass
    return ALL_CAPS


MASKED_PATHS = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
    "/sys/devices/virtual/powercap", "/proc/scsi",
)

READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# host device nodes bound into the container's /dev tmpfs
DEVICE_NODES = ("null", "zero", "full", "random", "urandom", "tty")


@dataclass(frozen=True)
class IdMapping:
    container_id: int
    host_id: int
    size: int

    def to_json(self) -> dict[str, int]:
        return {"containerID": self.container_id, "hostID": self.host_id, "size": self.size}


@dataclass(frozen=True)
class SpecInputs:
    """Everything ``build_spec`` needs beyond the process itself."""

    rootfs: Path
    resolv_conf: Path
    hosts: Path
    user: ResolvedUser
    mounts: Sequence[MountSpec] = ()
    cgroups_path: str = ""
    rootless: bool = False
    uid_mappings: Sequence[IdMapping] = field(default_factory=tuple)
    gid_mappings: Sequence[IdMapping] = field(default_factory=tuple)
    held_capabilities: Sequence[str] = ()  # what the runtime can grant; () = all
    seccomp_profile: dict[str, Any] | None = None  # a Docker-format profile for sandbox mode
    netns_path: str = ""  # the network namespace to join (the sandbox network)


def _mount(dest: str, type_: str, source: str, options: Sequence[str]) -> dict[str, Any]:
    return {"destination": dest, "type": type_, "source": source, "options": list(options)}


def default_mounts(*, rootless: bool, insecure: bool) -> list[dict[str, Any]]:
    """BuildKit's GetMounts: /proc, minimal /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys."""
    sys_ro = () if insecure else ("ro",)
    pts = ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
    if not rootless:
        pts.append("gid=5")
    mounts = [
        _mount("/proc", "proc", "proc", ("nosuid", "noexec", "nodev")),
        _mount("/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
        _mount("/dev/pts", "devpts", "devpts", pts),
        _mount("/dev/shm", "tmpfs", "shm", ("nosuid", "noexec", "nodev", "mode=1777", "size=65536k")),
        _mount("/dev/mqueue", "mqueue", "mqueue", ("nosuid", "noexec", "nodev")),
    ]
    if rootless:  # sysfs of the host network namespace cannot be mounted from a userns
        mounts.append(_mount("/sys", "bind", "/sys", ("rbind", "nosuid", "noexec", "nodev", *sys_ro)))
    else:
        mounts.append(_mount("/sys", "sysfs", "sysfs", ("nosuid", "noexec", "nodev", *sys_ro)))
    if rootless:
        return mounts  # runc binds the host's device nodes itself inside a user namespace
    for node in DEVICE_NODES:
        mounts.append(_mount(f"/dev/{node}", "bind", f"/dev/{node}", ("rbind", "nosuid", "noexec")))
    return mounts


def user_mounts(mounts: Sequence[MountSpec]) -> list[dict[str, Any]]:
    out = []
    for m in mounts:
        ro = ("ro",) if m.readonly else ("rw",)
        if m.type == "tmpfs":
            out.append(_mount(m.dest, "tmpfs", "tmpfs", ("nosuid", "nodev", *ro, *m.options)))
        else:
            out.append(_mount(m.dest, "bind", m.source, ("rbind", *ro, *m.options)))
    return out


def _namespaces(process: ProcessSpec, rootless: bool, netns_path: str) -> list[dict[str, str]]:
    out = [{"type": kind} for kind in ("pid", "ipc", "uts", "mount")]
    if netns_path:
        out.append({"type": "network", "path": netns_path})
    elif process.network == NETWORK_NONE:
        out.append({"type": "network"})
    if rootless:
        out.append({"type": "user"})
    return out


def capabilities(insecure: bool, held: Sequence[str]) -> list[str]:
    """The container's capabilities: Docker's default set, or all for insecure mode,
    of those the runtime can grant."""
    return [c for c in (ALL_CAPS if insecure else DEFAULT_CAPS) if c in held]


def _process(process: ProcessSpec, user: ResolvedUser, caps: Sequence[str]) -> dict[str, Any]:
    caps = list(caps)
    user_json: dict[str, Any] = {"uid": user.uid, "gid": user.gid}
    if user.additional_gids:
        user_json["additionalGids"] = list(user.additional_gids)
    out: dict[str, Any] = {
        "terminal": process.terminal,
        "user": user_json,
        "args": list(process.args),
        "env": process.env_with_defaults(),
        "cwd": process.cwd or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": False,
    }
    if process.ulimits:  # BuildKit leaves rlimits unset unless the op asks
        out["rlimits"] = [{"type": f"RLIMIT_{name.upper()}", "soft": soft, "hard": hard}
                          for name, soft, hard in process.ulimits]
    return out


def build_spec(process: ProcessSpec, inputs: SpecInputs) -> dict[str, Any]:
    """The config.json dictionary for ``process``."""
    insecure = process.security == SECURITY_INSECURE
    mounts = default_mounts(rootless=inputs.rootless, insecure=insecure)
    if not inputs.rootless:
        cgroup_opts = ("nosuid", "noexec", "nodev", "rw" if insecure else "ro")
        mounts.append(_mount("/sys/fs/cgroup", "cgroup", "cgroup", cgroup_opts))
    ro_bind = ("nosuid", "noexec", "nodev", "rbind", "ro")
    mounts.append(_mount("/etc/resolv.conf", "bind", str(inputs.resolv_conf), ro_bind))
    mounts.append(_mount("/etc/hosts", "bind", str(inputs.hosts), ro_bind))
    mounts += user_mounts(inputs.mounts)
    linux: dict[str, Any] = {
        "namespaces": _namespaces(process, inputs.rootless, inputs.netns_path),
        "maskedPaths": [] if insecure else list(MASKED_PATHS),
        "readonlyPaths": [] if insecure else list(READONLY_PATHS),
    }
    caps = capabilities(insecure, inputs.held_capabilities or ALL_CAPS)
    if inputs.seccomp_profile is not None and not insecure:
        linux["seccomp"] = convert_seccomp(inputs.seccomp_profile, caps)
    if not inputs.rootless:
        linux["resources"] = {"devices": [{"allow": insecure, "access": "rwm"}]}
        if inputs.cgroups_path:
            linux["cgroupsPath"] = inputs.cgroups_path
    if inputs.rootless:
        linux["uidMappings"] = [m.to_json() for m in inputs.uid_mappings]
        linux["gidMappings"] = [m.to_json() for m in inputs.gid_mappings]
    return {
        "ociVersion": OCI_VERSION,
        "process": _process(process, inputs.user, caps),
        "root": {"path": str(inputs.rootfs), "readonly": False},
        "hostname": process.hostname,
        "mounts": dedupe_mounts(mounts),
        "linux": linux,
    }


def dedupe_mounts(mounts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Later mounts at the same destination replace earlier ones (BuildKit's dedupMounts)."""
    last = {m["destination"]: i for i, m in enumerate(mounts)}
    return [m for i, m in enumerate(mounts) if last[m["destination"]] == i]


def rootless_mappings(uid: int, gid: int) -> tuple[list[IdMapping], list[IdMapping]]:
    """Single-id mappings: container root is the calling user (runc without newuidmap)."""
    return [IdMapping(0, uid, 1)], [IdMapping(0, gid, 1)]
