"""The client ↔ server wire format: length-prefixed ``marshal`` messages, file descriptors
passed with ``SCM_RIGHTS``, and the peer's uid from ``SO_PEERCRED``.

``marshal`` is safe here because both ends are the same user: the server reads nothing
before ``peer_uid`` matched its own uid, and the client talks only to a socket in its own
0700 directory. Messages are dicts of str, int, bool, bytes, lists and dicts.
"""

from __future__ import annotations

import marshal
import sys
TYPE_CHECKING = False  # typing is only for the checker: the client path does not import it
if TYPE_CHECKING:
    from typing import Any

import _socket

MAX_MESSAGE = 64 << 20
MAX_FDS = 8


class ProtocolError(Exception):
    """The other end sent something that is not a message, or went away mid-message."""


def send(sock: Any, message: dict[str, Any], fds: list[int] = ()) -> None:
    """One message; ``fds`` travel with its first byte."""
    data = marshal.dumps(message)
    frame = len(data).to_bytes(4, "big") + data
    if fds:
        packed = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)
        sent = sock.sendmsg([frame], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, packed)])
        frame = frame[sent:]
    if frame:
        sock.sendall(frame)


def send_request(sock: Any, message: dict[str, Any], fds: list[int] = ()) -> None:
    """Send a client's first message. A server that answers before reading (a refusal,
    "stale") may have closed already, so the send fails with EPIPE; its answer is still in
    our receive queue, for the ``receive`` that follows."""
    try:
        send(sock, message, fds)
    except (BrokenPipeError, ConnectionResetError):
        pass


def _recv_exactly(sock: Any, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ProtocolError("connection closed mid-message")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive(sock: Any) -> tuple[dict[str, Any] | None, list[int]]:
    """The next message and the fds that came with it; ``(None, [])`` at end of stream."""
    space = _socket.CMSG_SPACE(MAX_FDS * 4)
    head, ancillary, _flags, _addr = sock.recvmsg(4, space)
    fds = _fds_of(ancillary)
    if not head:
        close_all(fds)
        return None, []
    if len(head) < 4:
        head += _recv_exactly(sock, 4 - len(head))
    size = int.from_bytes(head, "big")
    if size > MAX_MESSAGE:
        close_all(fds)
        raise ProtocolError(f"message of {size} bytes")
    try:
        message = marshal.loads(_recv_exactly(sock, size))
    except (EOFError, ValueError, TypeError) as error:
        close_all(fds)
        raise ProtocolError(f"not a message: {error}") from error
    if not isinstance(message, dict):
        close_all(fds)
        raise ProtocolError("not a message: expected a dict")
    return message, fds


def _fds_of(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            fds += [int.from_bytes(data[i:i + 4], sys.byteorder, signed=True) for i in range(0, usable, 4)]
    return fds


def close_all(fds: list[int]) -> None:
    import os
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def peer_uid(sock: Any) -> int:
    """The uid of the process at the other end (the kernel's record from connect time)."""
    creds = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    return int.from_bytes(creds[4:8], sys.byteorder)
