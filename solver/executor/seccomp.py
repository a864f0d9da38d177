"""The seccomp filter of a sandboxed RUN: a denylist of kernel interfaces builds do not need.

BuildKit applies Docker's default profile, an allowlist of about 370 system calls. This
is our own, smaller filter with the same intent for the calls that matter most in a
container without CAP_SYS_ADMIN: everything else is allowed, and these fail with EPERM:
the kernel keyring, module loading, kexec, mounting, namespace creation (``unshare``,
``setns``, ``clone`` with a CLONE_NEW* flag), BPF, perf events, userfaultfd, io_uring,
raw I/O ports, clock setting, swap, reboot, quotas, and the cross-process memory and
handle calls (``process_vm_*``, ``kcmp``, ``open_by_handle_at``). ``clone3`` returns
ENOSYS, so that libc falls back to ``clone``, whose flags can be checked.
"""

from __future__ import annotations

import errno
import platform
from typing import Any

DENIED = (
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module",
    "delete_module", "finit_module", "fsconfig", "fsmount", "fsopen", "fspick",
    "get_kernel_syms", "init_module", "io_uring_enter", "io_uring_register", "io_uring_setup",
    "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie",
    "mount", "mount_setattr", "move_mount", "nfsservctl", "open_by_handle_at", "open_tree",
    "perf_event_open", "pivot_root", "process_vm_readv", "process_vm_writev", "query_module",
    "quotactl", "quotactl_fd", "reboot", "request_key", "setns", "settimeofday", "stime",
    "swapoff", "swapon", "_sysctl", "sysfs", "umount", "umount2", "unshare", "uselib",
    "userfaultfd", "ustat", "vm86", "vm86old",
)

# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
CLONE_NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000,
                         0x20000000, 0x40000000)

ARCHITECTURES = {
    "x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
    "armv7l": ["SCMP_ARCH_ARM"],
    "ppc64le": ["SCMP_ARCH_PPC64LE"],
    "s390x": ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"],
    "riscv64": ["SCMP_ARCH_RISCV64"],
}


def _clone_rules(machine: str) -> list[dict[str, Any]]:
    flags_arg = 1 if machine.startswith("s390") else 0  # s390 swaps clone's first arguments
    return [{
        "names": ["clone"],
        "action": "SCMP_ACT_ERRNO",
        "errnoRet": errno.EPERM,
        "args": [{"index": flags_arg, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}],
    } for flag in CLONE_NAMESPACE_FLAGS]


def sandbox_profile(machine: str | None = None) -> dict[str, Any]:
    """The ``linux.seccomp`` section of config.json for this machine's architecture."""
    machine = machine or platform.machine()
    rules: list[dict[str, Any]] = [
        {"names": list(DENIED), "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS},
        *_clone_rules(machine),
    ]
    profile: dict[str, Any] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}
    if machine in ARCHITECTURES:
        profile["architectures"] = ARCHITECTURES[machine]
    return profile
