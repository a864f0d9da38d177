"""RUN logs with terminal control output (issue 13 point 3): apt- and pip-style progress
(``\\r`` overwrites, ANSI colours, cursor movement, erase-line), wide characters, UTF-8
split across chunks; through the tty view's per-vertex terminal, the plain view and the
notebook view."""

from __future__ import annotations

import io

from kernel_ext.progress_view import ProgressModel
from solver.cli.progress import PlainPrinter, TtyPrinter, _fit
from solver.cli.termlog import LogScreen, columns, fit_columns, strip_controls
from solver.solve.progress import VertexCompleted, VertexLog, VertexStarted

D = "sha256:run"

# What `apt-get install` prints on a terminal-less pipe and with a progress bar (Dpkg::Progress-Fancy).
APT = [b"Reading package lists... 0%\r", b"Reading package lists... 100%\r", b"Reading package lists... Done\n",
       b"Building dependency tree... 50%\rBuilding dependency tree... Done\n",
       b"\n\x1b7\x1b[0;23r\x1b8\x1b[1A", b"Progress: [ 20%] [\x1b[33m#####.....\x1b[0m]\r",
       b"\x1b[2KProgress: [ 60%] [\x1b[33m############\x1b[0m]\r", b"\x1b[2KSetting up curl (8.5.0-2) ...\n"]
# pip's rich progress bar: colour, carriage returns, a bar of U+2501, erase-line, split UTF-8.
BAR = "\u2501" * 10
PIP = [b"Collecting numpy\n", f"\x1b[?25l   \x1b[90m{BAR}\x1b[0m 0.0/18.3 MB\r".encode(),
       f"\x1b[2K   \x1b[38;5;197m{BAR}\x1b[0m 9.1/18.3 MB \x1b[31m45.2 MB/s\x1b[0m".encode()[:25],
       f"\x1b[2K   \x1b[38;5;197m{BAR}\x1b[0m 9.1/18.3 MB \x1b[31m45.2 MB/s\x1b[0m".encode()[25:] + b"\r",
       f"\x1b[2K   \x1b[32m{BAR}\x1b[0m 18.3/18.3 MB\n\x1b[?25h".encode(), "安装完成 numpy-2.0\n".encode()]


def _screen(chunks: list[bytes], width: int = 60) -> list[str]:
    screen = LogScreen(width, 6)
    for chunk in chunks:
        screen.feed(chunk)
    return screen.lines()


def test_apt_progress_on_the_vertex_terminal():
    lines = _screen(APT)
    print("apt tail:", lines)
    assert lines[:2] == ["Reading package lists... Done", "Building dependency tree... Done"]
    assert lines[-1] == "Setting up curl (8.5.0-2) ..."
    assert not any("\x1b" in line or "\r" in line or "%" in line for line in lines)


def test_pip_progress_on_the_vertex_terminal():
    lines = _screen(PIP)
    print("pip tail:", lines)
    assert lines == ["Collecting numpy", f"   {BAR} 18.3/18.3 MB", "安装完成 numpy-2.0"]


def test_plain_and_notebook_views_strip_what_they_cannot_draw():
    out = io.StringIO()
    plain = PlainPrinter(out)
    model = ProgressModel()
    events = [VertexStarted(D, "[2/2] RUN apt-get install curl", 1.0)]
    events += [VertexLog(D, 1, chunk, 1.5) for chunk in APT + PIP] + [VertexCompleted(D, "x", 1.0, 2.0)]
    for event in events:
        plain(event)
        model.apply(event)
    model.flush_partial()
    text = out.getvalue()
    logged = [line.split(" ", 2)[2] for line in text.splitlines() if line.startswith("#1 0.500")]
    print(f"plain: {len(logged)} log lines; notebook: {len(model.rows[D].log)}")
    for lines in (logged, model.rows[D].log):
        assert not any(ch in line for line in lines for ch in "\x1b\r\b"), lines
        assert "Reading package lists... Done" in lines and "Setting up curl (8.5.0-2) ..." in lines
        assert f"   {BAR} 18.3/18.3 MB" in lines and "安装完成 numpy-2.0" in lines


def test_tty_view_draws_the_emulated_tail_with_wide_characters():
    out = io.StringIO()
    tty = TtyPrinter(out, refresh=3600)  # drawn by hand below
    tty(VertexStarted(D, "[2/2] RUN pip install numpy", 1.0))
    for chunk in PIP:
        tty(VertexLog(D, 1, chunk, 1.5))
    drawn = tty._lines(final=False)
    tty.close()
    tails = [line for line in drawn if line.startswith(" => => # ")]
    print("tty:", drawn)
    assert tails[-1] == " => => # 安装完成 numpy-2.0"
    assert all("\x1b" not in line and "\r" not in line for line in tails)


def test_columns_follow_wcwidth():
    assert columns("abc") == 3 and columns("安装") == 4 and columns("e\u0301") == 1
    assert fit_columns("安装完成", 5) == "安装…" and columns(fit_columns("安装完成 numpy", 7)) <= 7
    line = _fit(" => RUN 安装完成完成完成", "1.2s", 20)
    assert columns(line) == 20 and line.endswith(" 1.2s")


def test_strip_controls_keeps_what_a_terminal_shows():
    assert strip_controls("50%\r100%") == "100%"
    assert strip_controls("long line\rshort") == "shortline"
    assert strip_controls("\x1b[1;31merror\x1b[0m: x\x1b]0;title\x07") == "error: x"
    assert strip_controls("abc\b\bX\x07") == "aXc"  # backspace moves, as on a terminal
