"""The ssh agent protocol, relayed read-only as BuildKit's ``readOnlyAgent``: listing keys, signing and
unlocking reach the agent; adding, removing, locking and extensions are answered SSH_AGENT_FAILURE."""

from __future__ import annotations

import socket
import struct

FAILURE = 5  # SSH_AGENT_FAILURE
# SSH_AGENTC_REQUEST_IDENTITIES, SSH_AGENTC_SIGN_REQUEST, SSH_AGENTC_UNLOCK
READ_ONLY_REQUESTS = frozenset({11, 13, 23})
MAX_MESSAGE = 256 * 1024  # the protocol's own limit


class AgentProtocolError(OSError):
    """A message the relay cannot pass on (empty, too long, or the agent hung up)."""


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def split_frames(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The complete messages at the start of ``buffer`` and what is left of it."""
    bodies = []
    while len(buffer) >= 4:
        (size,) = struct.unpack(">I", buffer[:4])
        if size == 0 or size > MAX_MESSAGE:
            raise AgentProtocolError(f"agent message of {size} bytes")
        if len(buffer) < 4 + size:
            break
        bodies.append(buffer[4:4 + size])
        buffer = buffer[4 + size:]
    return bodies, buffer


def _read_exact(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_message(conn: socket.socket) -> bytes | None:
    """One message body from a socket, or None at EOF."""
    head = _read_exact(conn, 4)
    if head is None:
        return None
    (size,) = struct.unpack(">I", head)
    if size == 0 or size > MAX_MESSAGE:
        raise AgentProtocolError(f"agent message of {size} bytes")
    return _read_exact(conn, size)


def answer(body: bytes, agent: socket.socket) -> bytes:
    """The reply body to one request: the agent's for a read-only request, else a failure."""
    if body[0] not in READ_ONLY_REQUESTS:
        return bytes([FAILURE])
    agent.sendall(frame(body))
    reply = read_message(agent)
    if reply is None:
        raise AgentProtocolError("the agent closed the connection")
    return reply
