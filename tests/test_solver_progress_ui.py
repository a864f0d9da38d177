"""The plain and tty printers render the event stream like BuildKit."""

from __future__ import annotations

import io

from solver.cli.progress import PlainPrinter, TtyPrinter, make_printer
from solver.solve.progress import (ProgressBus, VertexCached, VertexCompleted, VertexFailed, VertexLog,
                                   VertexStarted)


def _events():
    return [
        VertexCached("sha256:a", "[1/3] FROM busybox", 10.0, 10.0),
        VertexStarted("sha256:b", "[2/3] RUN echo hi", 10.0),
        VertexLog("sha256:b", 1, b"hi\npartial", 10.25),
        VertexLog("sha256:b", 1, b" line\n", 10.3),
        VertexCompleted("sha256:b", "[2/3] RUN echo hi", 10.0, 10.5),
        VertexStarted("sha256:c", "[3/3] RUN exit 1", 10.5),
        VertexFailed("sha256:c", "[3/3] RUN exit 1", "process did not complete: exit code: 1", 10.5, 11.0),
    ]


def test_plain_printer_uses_buildkit_format():
    out = io.StringIO()
    bus = ProgressBus()
    bus.subscribe(PlainPrinter(out))
    for event in _events():
        bus.emit(event)
    text = out.getvalue()
    assert "#1 [1/3] FROM busybox\n#1 CACHED\n" in text
    assert "#2 [2/3] RUN echo hi\n" in text
    assert "#2 0.250 hi\n" in text
    assert "#2 0.300 partial line\n" in text
    assert "#2 DONE 0.5s\n" in text
    assert "#3 ERROR: process did not complete: exit code: 1\n" in text


def test_tty_printer_draws_cached_done_and_error_lines():
    out = io.StringIO()
    printer = TtyPrinter(out, refresh=10)
    for event in _events():
        printer(event)
    printer.close()
    text = out.getvalue()
    assert "[+] Building" in text and "FINISHED" in text
    assert "=> CACHED [1/3] FROM busybox" in text
    assert "=> [2/3] RUN echo hi" in text and "0.5s" in text
    assert "=> ERROR [3/3] RUN exit 1" in text


def test_auto_is_plain_without_a_terminal():
    assert isinstance(make_printer("auto", io.StringIO()), PlainPrinter)


def test_a_failing_subscriber_is_dropped_not_fatal():
    seen = []
    bus = ProgressBus()
    bus.subscribe(lambda e: 1 / 0)
    bus.subscribe(seen.append)
    for event in _events():
        bus.emit(event)
    assert len(seen) == len(_events())
