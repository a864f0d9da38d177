"""Where a user's server lives: a private directory, one socket, lock and log per install."""

from __future__ import annotations

import os
import sys

ENV_DIR = "LLBOOK_SERVER_DIR"  # overrides the directory (tests; several servers side by side)


def server_dir() -> str:
    """``/run/llbook`` as root, else ``$XDG_RUNTIME_DIR/llbook`` (``/tmp/llbook-UID`` without one)."""
    explicit = os.environ.get(ENV_DIR)
    if explicit:
        return explicit
    if os.geteuid() == 0:
        return "/run/llbook"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return os.path.join(runtime, "llbook") if runtime else f"/tmp/llbook-{os.geteuid()}"


def install_tag() -> str:
    """A short digest of this interpreter and this copy of llbook: each install has its own
    server, so a client never talks to a server running other code."""
    import zlib  # built in; crc32 is enough to tell installs apart by name
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    text = f"{sys.executable}\0{sys.version}\0{here}".encode()
    return f"{zlib.crc32(text):08x}"


def ensure_private_dir(path: str) -> str:
    """Create ``path`` 0700 if missing; refuse one that is not a directory owned by this user
    with no access for others (someone else could otherwise plant a socket there)."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    import stat
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise PermissionError(f"{path} is not a private directory of uid {os.geteuid()}")
    return path


def socket_path(directory: str | None = None) -> str:
    return os.path.join(directory or server_dir(), f"server-{install_tag()}.sock")


def lock_path(directory: str | None = None) -> str:
    return os.path.join(directory or server_dir(), f"server-{install_tag()}.lock")


def log_path(directory: str | None = None) -> str:
    return os.path.join(directory or server_dir(), f"server-{install_tag()}.log")
