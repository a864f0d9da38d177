"""`llbook debug` and `llbook build --on-error=shell` driven through a real pty (pty.fork):
the shell sees the step's state (pid 1 is the shell, its workdir, env, files, cache mount),
the failing RUN's command is in the history, and afterwards the cache is unchanged (index
records and snapshot directories), no file the shell wrote is in any snapshot, and no
process of the run is left."""

from __future__ import annotations

import os
import pty
import select
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from test_build_cli import LLBOOK, _env, build, write

pytestmark = pytest.mark.root

if os.geteuid() != 0:
    pytest.skip("llbook debug with runc needs root here", allow_module_level=True)

PROMPT = b"dbg-prompt# "


class PtySession:
    """A child process on a pty: type into it, read its output until a marker appears."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.output = b""
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: a session leader with the pty as controlling terminal
            os.execvpe(argv[0], argv, env)

    def read_until(self, marker: bytes, timeout: float = 120, start: int = 0) -> bytes:
        """Read until ``marker`` appears in the output after offset ``start``."""
        deadline = time.monotonic() + timeout
        while marker not in self.output[start:]:
            if time.monotonic() > deadline:
                raise AssertionError(f"{marker!r} not seen; output so far:\n{self.text()}")
            ready, _, _ = select.select([self.fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:  # EIO: the child closed the pty
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"pty closed before {marker!r}:\n{self.text()}")
                self.output += chunk
        return self.output

    def type(self, data: bytes) -> None:
        os.write(self.fd, data)

    def wait(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.2)
                if ready:
                    self.output += os.read(self.fd, 65536)
            except OSError:
                pass
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError(f"the child did not exit:\n{self.text()}")

    def text(self) -> str:
        return self.output.decode("utf-8", "replace")

    def lines(self) -> list[str]:
        """The output's lines, stripped (the NULs of /proc/*/cmdline dropped)."""
        return [line.strip() for line in self.text().replace("\0", "").replace("\r", "").splitlines()]


def cache_listing(cache: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """The index's records (key, snapshot) and every snapshot directory's name."""
    with sqlite3.connect(cache / "index.db") as db:
        records = sorted(db.execute("SELECT cache_key, COALESCE(snapshot, '') FROM records"))
    snapshots = sorted(str(p.relative_to(cache / "snapshots"))
                       for p in (cache / "snapshots").glob("*/*"))
    return records, snapshots


def files_named(root: Path, name: str) -> list[Path]:
    return [Path(d) / name for d, _, files in os.walk(root) if name in files]


def processes_with(marker: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def shell_env(registry_config) -> dict[str, str]:
    env = _env(registry_config)
    env["TERM"] = "dumb"
    return env


DOCKERFILE = """\
FROM busybox
WORKDIR /work
ENV GREETING=hello-from-step PS1="dbg-prompt# "
RUN --mount=type=cache,target=/cache echo built > /work/built.txt && echo cached-data > /cache/c
RUN echo second > /work/second.txt
"""


@pytest.mark.timeout(300)
def test_debug_step_shell_sees_the_state_and_leaves_the_cache(registry_config, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    write(context / "Dockerfile", DOCKERFILE)
    cache = tmp_path / "cache"
    build(registry_config, context, cache)
    before = cache_listing(cache)
    assert before[0] and before[1]

    session = PtySession([*LLBOOK, "debug", "--progress", "plain", "--cache-dir", str(cache),
                          "--step", "3", str(context)], shell_env(registry_config))
    session.read_until(PROMPT)
    session.type(b"cat /proc/1/cmdline; echo; echo $PWD; echo $GREETING; ls /work; cat /cache/c; "
                 b"echo scribble > /work/shell-was-here; exit\r")
    assert session.wait() == 0, session.text()
    lines = session.lines()
    assert "/bin/sh" in lines  # pid 1 of the sandbox is the shell
    assert "/work" in lines  # WORKDIR of the step
    assert "hello-from-step" in lines  # ENV in force at the step
    assert "built.txt" in lines and "second.txt" not in lines  # after step 3, before step 4
    assert "cached-data" in lines  # the RUN's cache mount

    assert cache_listing(cache) == before
    assert files_named(cache, "shell-was-here") == []
    assert processes_with(str(cache)) == []
    proc, meta = build(registry_config, context, cache)  # everything still cached
    assert all(v["cached"] for v in meta["llbook.vertices"] if v["name"].startswith("["))


@pytest.mark.timeout(300)
def test_debug_step_of_a_copy_uses_the_config_in_force(registry_config, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    write(context / "Dockerfile", "FROM busybox\nENV PS1=\"dbg-prompt# \"\nUSER app\nWORKDIR /home/app/w\nCOPY note.txt .\nRUN true\n")
    write(context / "note.txt", "a note\n")
    cache = tmp_path / "cache"
    build(registry_config, context, cache)
    before = cache_listing(cache)
    session = PtySession([*LLBOOK, "debug", "--progress", "quiet", "--cache-dir", str(cache),
                          "--step", "3", str(context)], shell_env(registry_config))
    session.read_until(PROMPT)
    session.type(b"id -un; echo $PWD; cat note.txt; exit 4\r")
    assert session.wait() == 4  # the shell's exit code
    lines = session.lines()
    assert "app" in lines and "/home/app/w" in lines and "a note" in lines
    assert cache_listing(cache) == before


@pytest.mark.timeout(300)
def test_build_on_error_shell_opens_before_the_failing_run(registry_config, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    write(context / "Dockerfile", "FROM busybox\nWORKDIR /srv\nRUN echo kept > /srv/kept.txt\n"
                                  "ENV PS1=\"dbg-prompt# \"\nRUN echo failing-marker-$((6*7)) && touch /srv/half-done && false\n")
    cache = tmp_path / "cache"
    proc, _ = build(registry_config, context, cache, check=False)
    assert proc.returncode == 1
    before = cache_listing(cache)

    session = PtySession([*LLBOOK, "build", "--progress", "plain", "--on-error=shell", "--cache-dir",
                          str(cache), str(context)], shell_env(registry_config))
    session.read_until(PROMPT)
    shown = len(session.output)
    session.type(b"ls /srv; cat /proc/1/cmdline; echo; echo $PWD\r")
    session.read_until(PROMPT, start=shown)
    shown = len(session.output)
    # the failing command is in the shell's history file (bash and Alpine's ash load it: Up
    # brings it back; Debian's static busybox is built without history files)
    session.type(b"cat $HISTFILE\r")
    session.read_until(b"echo failing-marker-$((6*7)) && touch /srv/half-done && false\r\n", timeout=30,
                       start=shown + len(b"cat $HISTFILE"))
    session.read_until(PROMPT, start=shown)
    session.type(b"exit\r")
    code = session.wait()
    assert code == 1  # the build still failed
    lines = session.lines()
    assert "kept.txt" in lines and "half-done" not in lines  # the state before the failing RUN
    assert "/bin/sh" in lines and "/srv" in lines
    assert cache_listing(cache) == before
    assert files_named(cache, "half-done") == []
    assert processes_with(str(cache)) == []


def test_debug_without_a_terminal_says_so(registry_config, tmp_path: Path) -> None:
    import subprocess
    context = tmp_path / "ctx"
    write(context / "Dockerfile", "FROM busybox\nRUN true\n")
    cache = tmp_path / "cache"
    build(registry_config, context, cache)
    proc = subprocess.run([*LLBOOK, "debug", "--progress", "quiet", "--cache-dir", str(cache), "--step", "9",
                           str(context)], env=_env(registry_config), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)
    assert proc.returncode == 1 and "no step 9" in proc.stderr
    proc = subprocess.run([*LLBOOK, "debug", "--progress", "quiet", "--cache-dir", str(cache), "--step", "2",
                           str(context)], env=_env(registry_config), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)
    assert proc.returncode == 1 and "needs a terminal" in proc.stderr


def mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as table:
        return [line.split()[4] for line in table if line.split()[4].startswith(str(path))]


@pytest.mark.timeout(300)
def test_closing_the_terminal_ends_the_shell_and_cleans_up(registry_config, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    write(context / "Dockerfile", DOCKERFILE)
    cache = tmp_path / "cache"
    build(registry_config, context, cache)
    before = cache_listing(cache)
    session = PtySession([*LLBOOK, "debug", "--progress", "quiet", "--cache-dir", str(cache),
                          "--step", "4", str(context)], shell_env(registry_config))
    session.read_until(PROMPT)
    session.type(b"sleep 1000 & echo started-$((40+2))\r")
    session.read_until(b"started-42")
    assert mounts_under(cache)  # the throwaway root is mounted while the shell runs
    os.close(session.fd)  # the terminal goes away: SIGHUP
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not os.waitpid(session.pid, os.WNOHANG)[0]:
        time.sleep(0.2)
    else:
        pass
    assert processes_with(str(cache)) == []
    assert [p for p in processes_with("sleep 1000")] == []
    assert mounts_under(cache) == []
    assert cache_listing(cache) == before
