"""The persistent stat memo: record digests of regular files, reused while their stat is unchanged.

``StatMemo`` remembers the record digest of each regular file by (path, size,
mtime_ns, inode, mode and the header), so re-checking a large unchanged tree costs one
``lstat`` per file and no reads. It can be saved to and loaded from a JSON file.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence


@dataclass(frozen=True)
class Fingerprint:
    """What must be unchanged for a memoised file record to be reused.

    ``ctime_ns`` moves on every change of the inode (content, mode, owner, xattrs,
    links) and, unlike mtime, cannot be set back: a rewrite that keeps the size and puts
    the mtime back is still a miss. With it unchanged, ``StatMemo.quick_lookup`` may skip
    listing xattrs and hashing the header. Entries saved before ctime was recorded
    (``-1``) miss once.
    """

    size: int
    mtime_ns: int
    inode: int
    device: int
    mode: int
    header: str  # sha256 of the tarsum header: uid, gid, xattrs, ...
    ctime_ns: int = -1

    def as_list(self) -> list[int | str]:
        return [self.size, self.mtime_ns, self.inode, self.device, self.mode, self.header, self.ctime_ns]

    @classmethod
    def from_list(cls, raw: Sequence[int | str]) -> "Fingerprint":
        size, mtime_ns, inode, device, mode, header = raw[:6]
        ctime_ns = int(raw[6]) if len(raw) > 6 else -1
        return cls(int(size), int(mtime_ns), int(inode), int(device), int(mode), str(header), ctime_ns)

    def same_inode_state(self, st: os.stat_result) -> bool:
        """Nothing of the file changed since this fingerprint (ctime moves on every change
        of content, mode, owner, xattrs or links, and cannot be set back by users)."""
        return (self.ctime_ns == st.st_ctime_ns and self.ctime_ns >= 0 and self.size == st.st_size
                and self.mtime_ns == st.st_mtime_ns and self.inode == st.st_ino
                and self.device == st.st_dev and self.mode == st.st_mode)


class StatMemo:
    """Record digests of regular files, keyed by path and checked against their stat.

    A hit costs an ``lstat`` (plus listing xattrs); a miss reads the file. ``hits`` and
    ``misses`` count lookups since the memo was created or loaded. One memo can be
    shared by threads; several processes saving the same file keep the last write.
    """

    FILE_NAME = "contenthash-memo.json"
    VERSION = 2  # 2: local contexts hash their entries as 0:0 (BuildKit client owner reset)

    def __init__(self, path: str | Path | None = None) -> None:
        self.path: Path | None = Path(path) if path is not None else None
        self._entries: dict[str, tuple[Fingerprint, str]] = {}
        self.hits = 0
        self.misses = 0
        self._dirty = False
        self._lock = threading.Lock()

    @classmethod
    def in_dir(cls, cache_dir: str | Path) -> "StatMemo":
        """The memo persisted in ``cache_dir`` (created empty if there is none yet)."""
        return cls.load(Path(cache_dir) / cls.FILE_NAME)

    @classmethod
    def load(cls, path: str | Path) -> "StatMemo":
        """Load a saved memo; a missing or unreadable file gives an empty memo."""
        memo = cls(path)
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            return memo
        if not isinstance(raw, dict) or raw.get("version") != cls.VERSION:
            return memo
        for key, (fingerprint, digest) in raw.get("entries", {}).items():
            memo._entries[key] = (Fingerprint.from_list(fingerprint), str(digest))
        return memo

    def save(self, path: str | Path | None = None) -> Path:
        """Write the memo atomically (to ``path`` or the path it was loaded from)."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("StatMemo.save needs a path")
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            entries = sorted(self._entries.items())
            self._dirty = False
        payload = {
            "version": self.VERSION,
            "entries": {k: [fp.as_list(), d] for k, (fp, d) in entries},
        }
        fd, tmp = tempfile.mkstemp(prefix=".memo-", dir=target.parent)
        with os.fdopen(fd, "w") as out:
            json.dump(payload, out, separators=(",", ":"))
        os.replace(tmp, target)
        return target

    def save_if_changed(self) -> None:
        if self._dirty and self.path is not None:
            self.save()

    def __len__(self) -> int:
        return len(self._entries)

    def quick_lookup(self, path: str, st: os.stat_result) -> str | None:
        """The digest of ``path`` when its inode is unchanged since it was stored (no
        xattr listing or header hashing needed); None otherwise (then use ``lookup``)."""
        with self._lock:
            entry = self._entries.get(path)
            if entry is not None and entry[0].same_inode_state(st):
                self.hits += 1
                return entry[1]
            return None

    def lookup(self, path: str, fingerprint: Fingerprint) -> str | None:
        with self._lock:
            entry = self._entries.get(path)
            if entry is not None and entry[0] == fingerprint:
                self.hits += 1
                return entry[1]
            self.misses += 1
            return None

    def store(self, path: str, fingerprint: Fingerprint, digest: str) -> None:
        with self._lock:
            self._entries[path] = (fingerprint, digest)
            self._dirty = True

    def forget_under(self, root: str | Path) -> int:
        """Drop the entries below ``root`` whose files are gone; return how many."""
        prefix = os.path.abspath(root).rstrip("/") + "/"
        with self._lock:
            keys = [k for k in self._entries if k.startswith(prefix)]
        gone = [k for k in keys if not os.path.lexists(k)]
        with self._lock:
            for key in gone:
                self._entries.pop(key, None)
            self._dirty = self._dirty or bool(gone)
        return len(gone)
