"""RUN --mount=type=ssh: a read-only forwarding socket to the client's ssh agent, as BuildKit's sshforward.

BuildKit makes a socket in a private 0711 directory (``MountSSHSocket``), owned and
moded as the mount says, and serves each connection with a read-only view of the
client's agent (``readOnlyAgent``, in ``agent_relay.py``). The exec op binds that socket at the mount's
target. It never enters a cache key (only the mount's id, target and mode are in the
op) and it is not in the image: the socket's mount point is a file stub the executor
removes.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from solver.errors import BuildError
from solver.llb import pb
from solver.solve.agent_relay import answer, frame, read_message
from solver.solve.ops_common import OpContext, VertexInfo, private_tmp_base

DEFAULT_ID = "default"
SOCKET_NAME = "ssh_auth_sock"


class AgentForward:
    """A socket at ``path`` whose connections reach ``upstream`` (an agent socket) read-only."""

    def __init__(self, upstream: str, uid: int = 0, gid: int = 0, mode: int = 0o600) -> None:
        self.upstream = upstream
        self.directory = Path(tempfile.mkdtemp(prefix="llbook-ssh-", dir=private_tmp_base()))  # a short path
        os.chmod(self.directory, 0o711)
        self.path = self.directory / SOCKET_NAME
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.path))
        _set_owner(self.path, uid, gid)
        os.chmod(self.path, mode & 0o777)
        self._listener.listen(16)
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        self._threads = [threading.Thread(target=self._accept, name="ssh-forward", daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                if self._closed:
                    conn.close()
                    return
                self._conns.append(conn)
                thread = threading.Thread(target=self._serve, args=(conn,), name="ssh-forward-conn", daemon=True)
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as agent:
                agent.connect(self.upstream)
                while (request := read_message(conn)) is not None:
                    conn.sendall(frame(answer(request, agent)))
        except OSError:
            return
        finally:
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns = list(self._conns)
        for sock in (self._listener, *conns):
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes accept() and recv() in the threads
            except OSError:
                pass
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)
        shutil.rmtree(self.directory, ignore_errors=True)


def _set_owner(path: Path, uid: int, gid: int) -> None:
    """chown as BuildKit does; without root, our own uid is the container's root (0:0)."""
    if os.geteuid() != 0 and (uid, gid) == (0, 0):
        return
    os.chown(path, uid, gid, follow_symlinks=False)


@contextmanager
def ssh_socket(ctx: OpContext, info: VertexInfo, mount: pb.Mount) -> Iterator[Path | None]:
    """The forwarding socket of one ssh mount for the length of the RUN (None: optional, not forwarded)."""
    opt = mount.ssh_opt or pb.SSHOpt()
    ssh_id = opt.id or DEFAULT_ID
    upstream = ctx.ssh.get(ssh_id)
    if upstream is None:
        if opt.optional:
            yield None
            return
        raise BuildError(f'no SSH key "{ssh_id}" forwarded from the client (pass --ssh '
                         f'{ssh_id}[=SOCKET|KEY,...])', vertex=info.digest, name=info.name,
                         filename=info.filename, line=info.line)
    forward = AgentForward(str(upstream), opt.uid, opt.gid, opt.mode)
    try:
        yield forward.path
    finally:
        forward.close()
