"""Docker's default seccomp profile: the conversion's conditions, and real containers under it."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers_rootfs import busybox_available, make_busybox_rootfs, make_debian_rootfs, private_tmp_dir
from solver.executor.base import MountSpec, ProcessSpec
from solver.executor.ocispec import DEFAULT_CAPS
from solver.executor.runc import RuncExecutor
from solver.executor.seccomp import DOCKER_PROFILE, convert, kernel_version, load_profile

needs_profile = pytest.mark.skipif(not DOCKER_PROFILE.exists(),
                                   reason="golang-github-docker-docker-dev is not installed")


def _allowed(section: dict) -> set[str]:
    """Names allowed without an argument condition."""
    return {name for rule in section["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW" and not rule.get("args")
            for name in rule["names"]}


def _docker() -> dict:
    path, profile = load_profile()
    assert path == DOCKER_PROFILE
    return profile


@needs_profile
def test_default_deny_with_eperm_and_this_machines_architectures() -> None:
    section = convert(_docker(), DEFAULT_CAPS, machine="x86_64", kernel=(6, 1))
    assert section["defaultAction"] == "SCMP_ACT_ERRNO"
    assert "defaultErrnoRet" not in section  # runc's default errno for ERRNO is EPERM
    assert section["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    allowed = _allowed(section)
    assert {"read", "openat", "execve", "wait4", "chroot", "arch_prctl"} <= allowed
    assert len(allowed) > 300
    assert not {"unshare", "setns", "mount", "keyctl", "add_key", "bpf", "kexec_load",
                "init_module", "reboot"} & allowed
    arm = convert(_docker(), DEFAULT_CAPS, machine="aarch64", kernel=(6, 1))
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "arch_prctl" not in _allowed(arm) and "set_tls" in _allowed(arm)


@needs_profile
def test_rules_follow_the_capabilities_as_docker_conditions_them() -> None:
    plain = convert(_docker(), DEFAULT_CAPS, machine="x86_64", kernel=(6, 1))
    admin = convert(_docker(), (*DEFAULT_CAPS, "CAP_SYS_ADMIN", "CAP_SYS_PTRACE"), machine="x86_64",
                    kernel=(6, 1))
    assert {"unshare", "setns", "mount", "bpf", "clone", "clone3"} <= _allowed(admin)
    assert "pidfd_getfd" in _allowed(admin) and "pidfd_getfd" not in _allowed(plain)
    # without CAP_SYS_ADMIN: clone only without namespace flags, clone3 answers ENOSYS
    clone = [r for r in plain["syscalls"] if r["names"] == ["clone"]]
    assert len(clone) == 1 and clone[0]["args"][0]["op"] == "SCMP_CMP_MASKED_EQ"
    clone3 = [r for r in plain["syscalls"] if r["names"] == ["clone3"]]
    assert clone3 == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
    assert not [r for r in admin["syscalls"] if r["names"] == ["clone3"] and r["action"] != "SCMP_ACT_ALLOW"]


@needs_profile
def test_min_kernel_conditions() -> None:
    new = convert(_docker(), DEFAULT_CAPS, machine="x86_64", kernel=(4, 8))
    old = convert(_docker(), DEFAULT_CAPS, machine="x86_64", kernel=(4, 7))
    assert "ptrace" in _allowed(new) and "ptrace" not in _allowed(old)
    assert kernel_version("6.18.44-fc-v1252") == (6, 18)
    assert kernel_version("3.12-1-amd64") == (3, 12)


# -- real containers --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def executor() -> Iterator[RuncExecutor]:
    if os.geteuid() != 0 or shutil.which("runc") is None or not busybox_available():
        pytest.skip("runc tests run as root with runc and a static busybox")
    if not DOCKER_PROFILE.exists():
        pytest.skip("golang-github-docker-docker-dev is not installed")
    for base in private_tmp_dir():
        yield RuncExecutor(state_root=base / "state", bundle_parent=base)


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    yield from private_tmp_dir()


def _run(executor: RuncExecutor, rootfs: Path, script: str, mounts: tuple[MountSpec, ...] = (),
         **kw) -> tuple[int, str]:
    out = bytearray()
    code = executor.run(rootfs, ProcessSpec(["/bin/sh", "-c", script], **kw), mounts,
                        stdout=out.extend, stderr=out.extend)
    return code, out.decode(errors="replace")


@pytest.mark.root
def test_calls_outside_the_allowlist_fail_with_eperm(executor: RuncExecutor, tmp_path: Path) -> None:
    rootfs = make_busybox_rootfs(tmp_path / "rootfs")
    # unshare(CLONE_NEWUSER) needs no capability from the kernel: only seccomp refuses it
    code, text = _run(executor, rootfs, "unshare -U true; echo code=$?")
    assert "Operation not permitted" in text and "code=1" in text
    code, text = _run(executor, rootfs, "nsenter -t 1 -m true; echo code=$?")
    assert "Operation not permitted" in text and "code=1" in text
    code, text = _run(executor, rootfs, "grep Seccomp: /proc/self/status")
    assert code == 0 and text.split()[1] == "2"
    # --security=insecure runs unconfined, as BuildKit does
    code, text = _run(executor, rootfs, "grep Seccomp: /proc/self/status; unshare -U true && echo unshared",
                      security="insecure")
    assert code == 0 and text.split() == ["Seccomp:", "0", "unshared"]


@pytest.mark.root
def test_busybox_workloads_pass(executor: RuncExecutor, tmp_path: Path) -> None:
    rootfs = make_busybox_rootfs(tmp_path / "rootfs")
    script = ("set -e; mkdir -p /var/lib/x/y && cd /var/lib/x && echo data > y/f && "
              "ln -s y/f l && ln y/f h && chmod 640 h && chown 1000:1000 y/f && mv y z && "
              "tar -cf /tmp/t.tar z && rm -rf z && tar -xf /tmp/t.tar && cat z/f && "
              "gzip -c /tmp/t.tar | gunzip -c | wc -c && (sleep 0 & wait) && "
              "find /var/lib/x | sort | tr '\\n' ' ' && echo && su app -c 'id -u' && "
              "date -u +%Y >/dev/null && sha256sum z/f | cut -c1-8 && touch -d 2020-01-01 z/f && "
              "stat -c %Y z/f")
    code, text = _run(executor, rootfs, script)
    assert code == 0, text
    lines = text.splitlines()
    assert lines[0] == "data" and int(lines[1]) >= 2048
    assert lines[2].split() == ["/var/lib/x", "/var/lib/x/h", "/var/lib/x/l", "/var/lib/x/z", "/var/lib/x/z/f"]


@pytest.mark.root
def test_debian_userland_passes(executor: RuncExecutor, tmp_path: Path) -> None:
    """The machine's own Debian programs (glibc, dpkg, python3 with threads) under the profile."""
    if shutil.which("dpkg") is None or not Path("/var/lib/dpkg/status").exists():
        pytest.skip("not a Debian machine")
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    mounts = []
    for host_dir in ("/bin", "/sbin", "/lib", "/lib64", "/usr", "/etc", "/var/lib/dpkg"):
        if os.path.islink(host_dir):
            os.symlink(os.readlink(host_dir), rootfs / host_dir.lstrip("/"))
        elif os.path.isdir(host_dir):
            mounts.append(MountSpec(host_dir, host_dir, readonly=True))
    mounts.append(MountSpec("/tmp", type="tmpfs"))
    script = ("dpkg --version | head -1; dpkg -s dpkg | grep -c '^Status: install ok installed'; "
              "python3 -c 'import threading, subprocess, tempfile, os; "
              "t = threading.Thread(target=print, args=(\"thread\",)); t.start(); t.join(); "
              "print(subprocess.run([\"true\"]).returncode); "
              "d = tempfile.mkdtemp(); os.rename(d, d + \".x\"); print(\"files\")'")
    code, text = _run(executor, rootfs, script, tuple(mounts))
    assert code == 0, text
    lines = text.splitlines()
    assert lines[0].startswith("Debian 'dpkg' package management program version")
    assert lines[1:] == ["1", "thread", "0", "files"]


# x86_64 numbers of calls the profile leaves out without CAP_SYS_ADMIN; perl-base's syscall()
# calls them directly (no wrapper that might answer first)
DENIED_X86_64 = {"unshare": 272, "keyctl": 250, "bpf": 321}
DEB_CONTROL = "Package: llbook-probe\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@t>\nDescription: probe\n"


@pytest.mark.root
def test_a_debian_image_under_the_profile(executor: RuncExecutor, tmp_path: Path) -> None:
    """A debootstrap minbase image: dpkg --version, apt-get, and dpkg building, installing
    and removing a package (rename, fsync, chmod, symlinks, its database) all pass; unshare,
    keyctl and bpf answer EPERM, and answer otherwise unconfined (the control)."""
    if os.uname().machine != "x86_64":
        pytest.skip("the probe calls x86_64 system call numbers")
    try:
        rootfs = make_debian_rootfs(tmp_path / "debian")
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"no Debian rootfs: {exc}")
    probe = "perl -e 'for my $n (@ARGV) { $! = 0; my $r = syscall($n, 0, 0, 0, 0, 0); print \"$n $r \", $! + 0, \"\\n\" }' " + \
        " ".join(str(n) for n in DENIED_X86_64.values())
    script = ("set -e; dpkg --version | head -1; apt-get --version | head -1; "
              "mkdir -p /tmp/p/DEBIAN /tmp/p/usr/share/llbook-probe; "
              f"printf '{DEB_CONTROL}' > /tmp/p/DEBIAN/control; echo hello > /tmp/p/usr/share/llbook-probe/f; "
              "ln -s f /tmp/p/usr/share/llbook-probe/l; dpkg-deb --build /tmp/p /tmp/p.deb >/dev/null; "
              "dpkg -i /tmp/p.deb >/dev/null; dpkg -s llbook-probe | grep '^Status:'; "
              "cat /usr/share/llbook-probe/l; dpkg -r llbook-probe >/dev/null; "
              "test ! -e /usr/share/llbook-probe/f && echo removed; " + probe)
    code, text = _run(executor, rootfs, script, (MountSpec("/tmp", type="tmpfs"),))
    print(text)
    assert code == 0, text
    lines = text.splitlines()
    assert lines[0].startswith("Debian 'dpkg' package management program version"), lines
    assert lines[1].startswith("apt ") and lines[2] == "Status: install ok installed", lines
    assert lines[3:5] == ["hello", "removed"], lines
    answers = dict(zip(DENIED_X86_64, lines[5:8]))
    assert answers == {name: f"{n} -1 1" for name, n in DENIED_X86_64.items()}, answers  # EPERM each
    code, text = _run(executor, rootfs, probe, security="insecure")
    unconfined = dict(zip(DENIED_X86_64, text.splitlines()))
    print("unconfined:", unconfined)
    assert code == 0 and unconfined["unshare"] == "272 0 0", text  # unshare(0) succeeds
    assert not any(answer.endswith(" -1 1") for answer in unconfined.values()), unconfined


@pytest.mark.root
def test_llbook_build_sandbox_and_insecure_with_the_entitlement(executor: RuncExecutor, tmp_path: Path) -> None:
    """End to end: a Dockerfile's RUN is confined; RUN --security=insecure with
    --allow security.insecure runs unconfined with all capabilities."""
    import subprocess
    import sys

    from helpers_rootfs import BUSYBOX

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    shutil.copy2(BUSYBOX, ctx / "busybox")
    (ctx / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
        "RUN grep Seccomp: /proc/self/status | sed 's/^/sandbox /'; unshare -U true || echo sandbox-refused\n"
        "RUN --security=insecure grep -E 'Seccomp:|CapEff:' /proc/self/status | sed 's/^/insecure /'; "
        "unshare -U true && echo insecure-unshared\n")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), LLBOOK_EXECUTOR="runc")
    args = [sys.executable, "-m", "solver.cli", "build", "--progress", "plain", "--no-cache",
            "--cache-dir", str(tmp_path / "cache"), str(ctx)]
    refused = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and "security.insecure" in refused.stderr
    proc = subprocess.run([*args, "--allow", "security.insecure"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stderr
    assert "sandbox Seccomp:\t2" in out and "sandbox-refused" in out and "Operation not permitted" in out
    assert "insecure Seccomp:\t0" in out and "insecure-unshared" in out
    cap_eff = [line for line in out.splitlines() if "insecure CapEff:" in line][0].split()[-1]
    assert int(cap_eff, 16) & (1 << 21)  # CAP_SYS_ADMIN: all capabilities
