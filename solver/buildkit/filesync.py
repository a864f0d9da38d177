"""fsutil's DiffCopy protocol, both directions, over gRPC message iterators.

Sending (FileSync.DiffCopy, the daemon pulls a local context; fsutil `send.go`):
the client sends one STAT packet per entry in walk order (byte order, parents first; paths
slash-separated, `mode` as Go's os.FileMode bits), then an empty STAT. The daemon asks for
regular files with REQ packets naming the entry's index; the client answers with DATA
packets and an empty DATA packet to end each file. FIN from the daemon is answered by FIN.

Receiving (FileSend.DiffCopy for `type=local` outputs; fsutil `receive.go`) is the mirror
image; `type=tar` (and oci/docker) outputs arrive as raw BytesMessage chunks instead.
"""

from __future__ import annotations

import os
import queue
import stat as st
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from solver.buildkit import messages as m
from solver.buildkit.messages import PacketType
from solver.source.context_entries import ContextEntry, EntryKind
from solver.source.local import LocalContext

DATA_CHUNK = 32 * 1024

# Go's os.FileMode type bits
GO_DIR = 1 << 31
GO_SYMLINK = 1 << 27
GO_DEVICE = 1 << 26
GO_NAMED_PIPE = 1 << 25
GO_SOCKET = 1 << 24
GO_SETUID = 1 << 23
GO_SETGID = 1 << 22
GO_CHAR_DEVICE = 1 << 21
GO_STICKY = 1 << 20


def go_mode(mode: int) -> int:
    """A unix st_mode as Go's os.FileMode (what fsutil puts in Stat.mode)."""
    out = st.S_IMODE(mode) & 0o777
    if mode & st.S_ISUID:
        out |= GO_SETUID
    if mode & st.S_ISGID:
        out |= GO_SETGID
    if mode & st.S_ISVTX:
        out |= GO_STICKY
    if st.S_ISDIR(mode):
        out |= GO_DIR
    elif st.S_ISLNK(mode):
        out |= GO_SYMLINK
    elif st.S_ISFIFO(mode):
        out |= GO_NAMED_PIPE
    elif st.S_ISCHR(mode):
        out |= GO_DEVICE | GO_CHAR_DEVICE
    elif st.S_ISBLK(mode):
        out |= GO_DEVICE
    return out


def unix_mode(gomode: int) -> int:
    """Go's os.FileMode bits back to a unix st_mode."""
    out = gomode & 0o777
    if gomode & GO_SETUID:
        out |= st.S_ISUID
    if gomode & GO_SETGID:
        out |= st.S_ISGID
    if gomode & GO_STICKY:
        out |= st.S_ISVTX
    if gomode & GO_DIR:
        return out | st.S_IFDIR
    if gomode & GO_SYMLINK:
        return out | st.S_IFLNK
    if gomode & GO_NAMED_PIPE:
        return out | st.S_IFIFO
    if gomode & GO_DEVICE:
        return out | (st.S_IFCHR if gomode & GO_CHAR_DEVICE else st.S_IFBLK)
    return out | st.S_IFREG


def stat_of(entry: ContextEntry) -> m.FsStat:
    """fsutil's Stat of one context entry (no xattrs; hard links sent as separate files)."""
    stat = m.FsStat(path=entry.path, mode=go_mode(entry.mode), uid=entry.uid, gid=entry.gid,
                    mod_time=entry.mtime_ns, linkname=entry.linkname)
    if entry.kind != EntryKind.DIR:
        stat.size = entry.size
    if entry.kind in (EntryKind.CHAR, EntryKind.BLOCK):
        stat.devmajor, stat.devminor = os.major(entry.rdev), os.minor(entry.rdev)
    return stat


@dataclass(frozen=True)
class SyncRequest:
    """What the daemon asks for in the DiffCopy metadata."""

    dir_name: str
    include_patterns: tuple[str, ...] = ()
    exclude_patterns: tuple[str, ...] = ()
    follow_paths: tuple[str, ...] = ()


def _reader(requests: Iterator[m.Packet], inbox: queue.Queue[m.Packet | BaseException | None]) -> None:
    try:
        for packet in requests:
            inbox.put(packet)
        inbox.put(None)
    except BaseException as error:  # the stream broke; the sender stops
        inbox.put(error)


def send_dir(context: LocalContext, requests: Iterator[m.Packet]) -> Iterator[m.Packet]:
    """The sender side of DiffCopy for one local directory, as a response iterator."""
    selection = context.select()
    entries = list(selection)
    inbox: queue.Queue[m.Packet | BaseException | None] = queue.Queue()
    threading.Thread(target=_reader, args=(requests, inbox), daemon=True, name="llbook-bk-diffcopy").start()
    for entry in entries:
        yield m.Packet(type=PacketType.PACKET_STAT, stat=stat_of(entry))
    yield m.Packet(type=PacketType.PACKET_STAT)
    while True:
        packet = inbox.get()
        if packet is None or isinstance(packet, BaseException):
            return
        if packet.type == PacketType.PACKET_REQ:
            if packet.id >= len(entries) or entries[packet.id].kind != EntryKind.FILE:
                yield m.Packet(type=PacketType.PACKET_ERR, data=f"invalid file id {packet.id}".encode())
                return
            yield from _file_data(context, selection, entries[packet.id].path, packet.id)
        elif packet.type == PacketType.PACKET_FIN:
            yield m.Packet(type=PacketType.PACKET_FIN)
            return
        elif packet.type == PacketType.PACKET_ERR:
            return


def _file_data(context: LocalContext, selection: object, path: str, file_id: int) -> Iterator[m.Packet]:
    with context.open_file(path, selection) as handle:  # type: ignore[arg-type]
        while True:
            data = handle.read(DATA_CHUNK)
            if not data:
                break
            yield m.Packet(type=PacketType.PACKET_DATA, id=file_id, data=data)
    yield m.Packet(type=PacketType.PACKET_DATA, id=file_id)


# ------------------------------------------------------------------ receiving outputs


def receive_bytes(requests: Iterator[m.BytesMessage], target: BinaryIO) -> Iterator[m.BytesMessage]:
    """FileSend for tar/oci/docker outputs: raw chunks into `target`; nothing is sent back."""
    for message in requests:
        target.write(message.data)
    target.flush()
    return iter(())


def _confined(root: Path, relpath: str) -> Path:
    """`root/relpath`, refusing absolute paths and `..` components."""
    parts = [p for p in relpath.split("/") if p not in ("", ".")]
    if not parts or ".." in parts or relpath.startswith("/"):
        raise ValueError(f"unsafe path in local output: {relpath!r}")
    return root.joinpath(*parts)


class DirReceiver:
    """The receiver side of DiffCopy: writes the daemon's tree under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._files: dict[int, tuple[Path, m.FsStat]] = {}
        self._open: dict[int, BinaryIO] = {}
        self._dirs: list[tuple[Path, m.FsStat]] = []

    def run(self, requests: Iterator[m.Packet]) -> Iterator[m.Packet]:
        self.root.mkdir(parents=True, exist_ok=True)
        index = 0
        it = iter(requests)
        for packet in it:
            if packet.type != PacketType.PACKET_STAT:
                continue
            if packet.stat is None or not packet.stat.path:
                break
            self._entry(index, packet.stat)
            index += 1
        for file_id in sorted(self._files):
            yield m.Packet(type=PacketType.PACKET_REQ, id=file_id)
        pending = set(self._files)
        for packet in it if pending else ():
            if packet.type == PacketType.PACKET_ERR:
                raise OSError(f"error from sender: {packet.data.decode('utf-8', 'replace')}")
            if packet.type != PacketType.PACKET_DATA or packet.id not in pending:
                continue
            if packet.data:
                self._write(packet.id, packet.data)
            else:
                self._finish(packet.id)
                pending.discard(packet.id)
                if not pending:
                    break
        for path, stat in reversed(self._dirs):
            _apply_meta(path, stat)
        yield m.Packet(type=PacketType.PACKET_FIN)
        for packet in it:
            if packet.type == PacketType.PACKET_FIN:
                break

    def _entry(self, index: int, stat: m.FsStat) -> None:
        path = _confined(self.root, stat.path)
        mode = unix_mode(stat.mode)
        if st.S_ISDIR(mode):
            path.mkdir(exist_ok=True)
            self._dirs.append((path, stat))
        elif st.S_ISLNK(mode):
            if path.is_symlink() or path.exists():
                path.unlink()
            os.symlink(stat.linkname, path)
            _apply_meta(path, stat)
        elif st.S_ISREG(mode) and stat.linkname:
            if path.exists():
                path.unlink()
            os.link(_confined(self.root, stat.linkname), path)
        elif st.S_ISREG(mode):
            self._files[index] = (path, stat)
        elif st.S_ISFIFO(mode):
            os.mkfifo(path, st.S_IMODE(mode))
            _apply_meta(path, stat)
        # device nodes are skipped: they cannot be created without privileges everywhere

    def _write(self, file_id: int, data: bytes) -> None:
        handle = self._open.get(file_id)
        if handle is None:
            path = self._files[file_id][0]
            handle = self._open[file_id] = open(path, "wb")
        handle.write(data)

    def _finish(self, file_id: int) -> None:
        handle = self._open.pop(file_id, None)
        path, stat = self._files[file_id]
        if handle is None:
            path.write_bytes(b"")
        else:
            handle.close()
        _apply_meta(path, stat)


def _apply_meta(path: Path, stat: m.FsStat) -> None:
    mode = unix_mode(stat.mode)
    if os.geteuid() == 0:
        os.lchown(path, stat.uid, stat.gid)
    if not st.S_ISLNK(mode):
        os.chmod(path, st.S_IMODE(mode))
    if stat.mod_time:
        os.utime(path, ns=(stat.mod_time, stat.mod_time), follow_symlinks=False)
