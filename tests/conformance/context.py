"""The build contexts the conformance cases share, made on disk with exact modes and owners."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

# path -> (content, mode); directories end with "/"
_FILES: dict[str, tuple[bytes, int]] = {
    "hello.txt": (b"hello\n", 0o644),
    "exec.sh": (b"#!/bin/sh\necho run\n", 0o755),
    "private.txt": (b"private\n", 0o600),
    "setuid-bin": (b"suid\n", 0o4755),
    "with space.txt": (b"space\n", 0o644),
    "secret.txt": (b"s3cr3t-value", 0o600),
    "dir/": (b"", 0o755),
    "dir/a.txt": (b"a\n", 0o644),
    "dir/sub/": (b"", 0o750),
    "dir/sub/b.txt": (b"b\n", 0o640),
    "dir/sub/deep/": (b"", 0o700),
    "dir/sub/deep/c.sh": (b"c\n", 0o755),
    "empty_dir/": (b"", 0o755),
    "glob/": (b"", 0o755),
    "glob/a1.txt": (b"a1\n", 0o644),
    "glob/a2.txt": (b"a2\n", 0o644),
    "glob/b1.log": (b"b1\n", 0o644),
    "glob/nested/": (b"", 0o755),
    "glob/nested/n.txt": (b"n\n", 0o644),
    "links/": (b"", 0o755),
    "links/target.txt": (b"target\n", 0o644),
    "hard/": (b"", 0o755),
    "hard/one": (b"linked\n", 0o644),
    "owned.txt": (b"owned by 1234\n", 0o664),
    "parents/": (b"", 0o755),
    "parents/x/": (b"", 0o755),
    "parents/x/file.txt": (b"x\n", 0o644),
    "parents/y/": (b"", 0o711),
    "parents/y/file.txt": (b"y\n", 0o644),
    "archives/": (b"", 0o755),
    "odd/": (b"", 0o2775),
    "odd/ro-file": (b"ro\n", 0o400),
    "odd/ro-dir/": (b"", 0o555),
    "odd/ro-dir/inner": (b"in\n", 0o444),
    "odd/sticky/": (b"", 0o1777),
    "odd/\u00fcnicode name.txt": (b"u\n", 0o644),
}
_SYMLINKS: dict[str, str] = {
    "link-to-hello": "hello.txt",
    "link-to-dir": "dir",
    "link-chain": "link-to-hello",
    "links/rel": "target.txt",
    "links/up": "../hello.txt",
    "links/abs": "/etc/passwd",
    "links/dangling": "nowhere",
    "links/dirlink": "../dir",
    "archives/link.tar": "../archive.tar",
}
_HARDLINKS: dict[str, str] = {"hard/two": "hard/one"}
_OWNERS: dict[str, tuple[int, int]] = {"owned.txt": (1234, 1234)}
_IGNORE = "*.log\nglob/nested\n!glob/nested/keep.txt\nprivate.txt\n"
# `**`, a leading `/`, `./`, comments, blank lines, a re-include under an excluded dir's
# pattern, a trailing `/`, `?`, and excluding .dockerignore itself
_IGNORE_PATTERNS = ("# a comment\n\n**/*.txt\n!dir/a.txt\n/exec.sh\n./setuid-bin\ndir/sub/deep/\n"
                    "links/*\n!links/rel\nglob/a?.*\n.dockerignore\narchive.tar*\n")
_IGNORES = {"ignore": _IGNORE, "patterns": _IGNORE_PATTERNS}

_ARCHIVE_MEMBERS: list[tuple[str, bytes | None, int, int]] = [  # name, data (None = dir), mode, uid
    ("arch/", None, 0o755, 0),
    ("arch/one.txt", b"one\n", 0o644, 0),
    ("arch/owned-by-7.txt", b"seven\n", 0o600, 7),
    ("arch/bin/", None, 0o700, 0),
    ("arch/bin/tool", b"tool\n", 0o755, 0),
]


def _archive(compress: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compress}" if compress else "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode, uid in _ARCHIVE_MEMBERS:
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mode, info.uid, info.gid, info.mtime = mode, uid, uid, 1_700_000_000
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_context(root: Path, *, ignore: bool | str = False) -> Path:
    """Write the shared context at `root` (with a .dockerignore when `ignore`: True or
    "ignore" for the first set of patterns, "patterns" for the second)."""
    root.mkdir(parents=True)
    for path, (data, mode) in _FILES.items():
        target = root / path
        if path.endswith("/"):
            target.mkdir()
        else:
            target.write_bytes(data)
    for path, dest in _SYMLINKS.items():
        os.symlink(dest, root / path)
    for path, dest in _HARDLINKS.items():
        os.link(root / dest, root / path)
    (root / "archive.tar").write_bytes(_archive(""))
    (root / "archive.tar.gz").write_bytes(_archive("gz"))
    (root / "archives/a.tar.bz2").write_bytes(_archive("bz2"))
    (root / "archives/a.tar.xz").write_bytes(_archive("xz"))
    (root / "archives/tar-without-suffix").write_bytes(_archive(""))
    (root / "archives/plain.txt.gz").write_bytes(gzip.compress(b"not a tar\n", mtime=0))
    if ignore:
        (root / ".dockerignore").write_text(_IGNORES["ignore" if ignore is True else ignore])
        (root / "glob/nested/keep.txt").write_text("kept\n")
    for path, (uid, gid) in _OWNERS.items():
        os.lchown(root / path, uid, gid)
    for path, (_data, mode) in sorted(_FILES.items(), key=lambda kv: -kv[0].count("/")):
        os.chmod(root / path, mode)
    return root
