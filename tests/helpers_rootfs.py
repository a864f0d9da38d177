"""A tiny busybox root filesystem for the executor and snapshot tests.

``make_busybox_rootfs(dest)`` copies the machine's static /bin/busybox, links every applet
in /bin, and writes /etc/passwd and /etc/group with root and ``app`` (uid/gid 1000, also a
member of ``staff``, gid 50).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

BUSYBOX = Path("/bin/busybox")

PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
GROUP = "root:x:0:\nstaff:x:50:app\napp:x:1000:\n"


def busybox_available() -> bool:
    if not BUSYBOX.exists():
        return False
    out = subprocess.run(["file", "-L", str(BUSYBOX)], capture_output=True, text=True)
    return out.returncode != 0 or "dynamically" not in out.stdout


def applets() -> list[str]:
    out = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True)
    return [name for name in out.stdout.split() if name and "/" not in name]


def make_busybox_rootfs(dest: str | Path) -> Path:
    """Create the rootfs in ``dest`` (created if missing) and return it."""
    root = Path(dest)
    for sub in ("bin", "etc", "root", "tmp", "home/app", "usr/bin", "var", "proc", "sys", "dev"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    os.chmod(root / "root", 0o700)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for name in applets():
        link = root / "bin" / name
        if name != "busybox" and not link.exists():
            link.symlink_to("busybox")
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    if os.geteuid() == 0:
        os.chown(root / "home" / "app", 1000, 1000)
    return root


def unique_number() -> str:
    """A number no concurrent test session uses, for ``sleep N`` markers found via /proc."""
    return str(secrets.randbelow(9_000_000) + 1_000_000)


def private_tmp_dir() -> Iterator[Path]:
    """A temporary directory outside pytest's basetemp (which a concurrent pytest session
    may delete while this one still uses it), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="llbook-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def make_debian_rootfs(dest: str | Path) -> Path:
    """A Debian minbase rootfs (benchmarks/debian_rootfs.py: debootstrap from the machine's
    own apt source once, cached as a tarball under /var/tmp) unpacked into ``dest``."""
    import importlib.util
    import sys

    module_path = Path(__file__).resolve().parents[1] / "benchmarks" / "debian_rootfs.py"
    spec = importlib.util.spec_from_file_location("debian_rootfs", module_path)
    assert spec is not None and spec.loader is not None
    module = sys.modules.setdefault("debian_rootfs", importlib.util.module_from_spec(spec))
    spec.loader.exec_module(module)
    tarball = module.debian_rootfs_tarball()
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "--numeric-owner", "-xzf", str(tarball), "-C", str(root)], check=True)
    return root
