"""The result filesystem as one tar (``type=tar``) or as files (``type=local``)."""

from __future__ import annotations

import os
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import BinaryIO

from solver.errors import shorten_middle
from solver.export.layer import COPY_BUFFER
from solver.export.tarentry import tar_info


def write_rootfs_tar(root: Path, out: BinaryIO, *, epoch: int | None = None) -> int:
    """Stream the tree at ``root`` into ``out`` as a tar with sorted entries; returns the count."""
    links: dict[tuple[int, int], str] = {}
    count = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=COPY_BUFFER,  # type: ignore[arg-type]
                      copybufsize=COPY_BUFFER) as tar:
        for rel, host in _walk_sorted(str(root)):
            st = os.lstat(host)
            info = tar_info(rel, host, st, epoch, links)
            if info.type == tarfile.REGTYPE:
                with open(host, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
            count += 1
    return count


def _walk_sorted(root: str, rel: str = ""):
    with os.scandir(os.path.join(root, rel) if rel else root) as it:
        names = sorted(e.name for e in it)
    for name in names:
        child = f"{rel}/{name}" if rel else name
        host = os.path.join(root, child)
        yield child, host
        if stat.S_ISDIR(os.lstat(host).st_mode):
            yield from _walk_sorted(root, child)


def write_local(root: Path, dest: Path) -> None:
    """Copy the tree at ``root`` into ``dest`` (created if missing, merged into if not),
    keeping modes, owners, links and xattrs."""
    dest.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["cp", "-a", "--", f"{root}/.", str(dest)], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"cp exited with {proc.returncode}"]
        cause = lines[-1].rsplit(": ", 1)[-1]  # cp's reason ("File name too long") goes first
        raise OSError(f"{cause}: copying the result into {dest} failed: {shorten_middle(lines[-1])}")
