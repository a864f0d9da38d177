"""The seccomp filter of a sandboxed RUN: Docker's default profile, converted as Docker does.

The profile is Docker's allowlist (default action ``SCMP_ACT_ERRNO``, so any system call
it does not name fails with EPERM), read at run time from the file Debian ships it in:
``profiles/seccomp/default.json`` of moby's source in the package
``golang-github-docker-docker-dev``. Where that is missing, the same-format profile of
``golang-github-containers-common`` (``/usr/share/containers/seccomp.json``, podman's
variant, pulled in by skopeo) is used instead; it allows more (``unshare``, ``mount``,
``keyctl``) and answers unknown calls with ENOSYS.

``convert`` is Docker's ``setupSeccomp`` (``profiles/seccomp/seccomp_linux.go``): the
``archMap`` entry of this machine's architecture, then every rule whose conditions hold:
``excludes``/``includes`` by architecture (Go's names: amd64, arm64, ...), by the
container's bounding capabilities, and by minimum kernel version (major.minor of
``uname -r``). runc adds an ENOSYS answer for system calls newer than the profile knows.
"""

from __future__ import annotations

import functools
import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from solver.executor.base import ExecutorUnavailableError

DOCKER_PROFILE = Path("/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json")
CONTAINERS_PROFILE = Path("/usr/share/containers/seccomp.json")
PROFILE_FILES = (DOCKER_PROFILE, CONTAINERS_PROFILE)
PROFILE_PACKAGE = "golang-github-docker-docker-dev"

# uname's machine -> Docker's native architecture name (Go's GOARCH through goToNative)
NATIVE_ARCH = {
    "x86_64": "amd64", "i386": "x86", "i686": "x86", "aarch64": "arm64", "arm64": "arm64",
    "armv7l": "arm", "armv6l": "arm", "ppc64le": "ppc64le", "ppc64": "ppc64", "s390x": "s390x",
    "mips64": "mips64",
}
# Docker's native name -> libseccomp's (nativeToSeccomp)
SECCOMP_ARCH = {
    "x86": "SCMP_ARCH_X86", "amd64": "SCMP_ARCH_X86_64", "arm": "SCMP_ARCH_ARM",
    "arm64": "SCMP_ARCH_AARCH64", "mips64": "SCMP_ARCH_MIPS64", "mips64n32": "SCMP_ARCH_MIPS64N32",
    "mipsel64": "SCMP_ARCH_MIPSEL64", "mips3l64n32": "SCMP_ARCH_MIPSEL64N32",
    "mipsle": "SCMP_ARCH_MIPSEL", "ppc": "SCMP_ARCH_PPC", "ppc64": "SCMP_ARCH_PPC64",
    "ppc64le": "SCMP_ARCH_PPC64LE", "s390": "SCMP_ARCH_S390", "s390x": "SCMP_ARCH_S390X",
}


class SeccompProfileError(ExecutorUnavailableError):
    """No seccomp profile file is installed, or it is not a valid Docker-format profile."""


@functools.lru_cache(maxsize=None)
def load_profile(paths: tuple[Path, ...] = PROFILE_FILES) -> tuple[Path, dict[str, Any]]:
    """The first installed profile file and its parsed contents."""
    for path in paths:
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise SeccompProfileError(f"cannot read the seccomp profile {path}: {exc}") from exc
        try:
            profile = json.loads(text)
        except ValueError as exc:
            raise SeccompProfileError(f"the seccomp profile {path} is not JSON: {exc}") from exc
        if not isinstance(profile, dict) or not isinstance(profile.get("syscalls", []), list):
            raise SeccompProfileError(f"the seccomp profile {path} is not in Docker's format")
        return path, profile
    raise SeccompProfileError(
        f"no seccomp profile found ({', '.join(map(str, paths))}); install the Debian package "
        f"{PROFILE_PACKAGE} for Docker's default profile")


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """(kernel, major) of a release string like ``6.1.0-13-amd64``, as Docker parses it."""
    release = release if release is not None else os.uname().release
    parts = release.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1].split("-")[0] if ch.isdigit()) or "0")
    except (IndexError, ValueError):
        raise SeccompProfileError(f"cannot parse the kernel version {release!r}") from None


def _parse_min_kernel(text: str) -> tuple[int, int]:
    kernel, _, major = str(text).partition(".")
    return int(kernel), int(major or 0)


def _applies(rule: dict[str, Any], arch: str, caps: frozenset[str], kernel: tuple[int, int]) -> bool:
    """Docker's condition checks of one rule, in Docker's order."""
    excludes = rule.get("excludes") or {}
    includes = rule.get("includes") or {}
    if arch in (excludes.get("arches") or ()):
        return False
    if any(cap in caps for cap in excludes.get("caps") or ()):
        return False
    if excludes.get("minKernel") and kernel >= _parse_min_kernel(excludes["minKernel"]):
        return False
    if includes.get("arches") and arch not in includes["arches"]:
        return False
    if any(cap not in caps for cap in includes.get("caps") or ()):
        return False
    if includes.get("minKernel") and kernel < _parse_min_kernel(includes["minKernel"]):
        return False
    return True


def _spec_rule(rule: dict[str, Any]) -> dict[str, Any]:
    if rule.get("name") and rule.get("names"):
        raise SeccompProfileError("a seccomp rule gives both 'name' and 'names'")
    out: dict[str, Any] = {"names": [rule["name"]] if rule.get("name") else list(rule.get("names") or ()),
                           "action": rule["action"]}
    if rule.get("errnoRet") is not None:
        out["errnoRet"] = int(rule["errnoRet"])
    if rule.get("args"):
        out["args"] = [{k: v for k, v in arg.items() if k in ("index", "value", "valueTwo", "op")}
                       for arg in rule["args"]]
    return out


def convert(profile: dict[str, Any], bounding_caps: Sequence[str], *, machine: str | None = None,
            kernel: tuple[int, int] | None = None) -> dict[str, Any]:
    """The ``linux.seccomp`` section of config.json for a container with these bounding
    capabilities, from a Docker-format profile."""
    if profile.get("architectures") and profile.get("archMap"):
        raise SeccompProfileError("a seccomp profile gives both 'architectures' and 'archMap'")
    arch = NATIVE_ARCH.get(machine or platform.machine(), "")
    out: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = int(profile["defaultErrnoRet"])
    arches = list(profile.get("architectures") or ())
    for entry in profile.get("archMap") or ():
        if arch in SECCOMP_ARCH and entry.get("architecture") == SECCOMP_ARCH[arch]:
            arches += [entry["architecture"], *(entry.get("subArchitectures") or ())]
            break
    if arches:
        out["architectures"] = arches
    caps = frozenset(bounding_caps)
    kernel = kernel or kernel_version()
    out["syscalls"] = [_spec_rule(rule) for rule in profile.get("syscalls") or ()
                       if _applies(rule, arch, caps, kernel)]
    return out


def default_profile(bounding_caps: Sequence[str]) -> dict[str, Any]:
    """Docker's default profile (or the installed fallback) for these capabilities."""
    _, profile = load_profile()
    return convert(profile, bounding_caps)
