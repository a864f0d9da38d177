"""Pathological Dockerfiles (issue 13 point 4, issue 18 points 3, 4, 6, 8): huge lines (a
1 MB RUN line, a 10 MB single line), deep nesting (``${a:-${a:-...}}`` 5,000 deep, nested
heredocs, 200,000 continuation lines), thousands of stages (3,000 chained, 3,000
independent, one stage copying from 3,000), 10,000 ENV lines, 2,000 build args, binary,
non-UTF-8 and NUL-byte Dockerfiles.

Each case goes through the frontend in this process (``dockerfile_to_llb`` and the
marshalled Definition) and through ``llbook dump-llb`` and ``llbook build`` in
subprocesses, each with a 60 s timeout as a hang guard (not a check: no wall-clock time
is asserted). Every outcome must be success or a DockerfileError / one error line naming
the Dockerfile and its line, with no traceback and a bounded message. Measured per case:
the outcome of each path, the error's line, the error message's length, the stderr's size.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from adv_helpers import llbook, report
from solver.errors import DockerfileError
from solver.frontend import dockerfile_to_llb
from solver.frontend.textutil import decode_dockerfile

HANG_GUARD = 60.0  # seconds a subprocess may take before it counts as hung (a guard, not a check)
MESSAGE_BOUND = 5_000  # characters an error line may have (hostile text is shortened in messages)
STDERR_BOUND = 50_000  # bytes of stderr a failed command may print (issue 18 point 8: 5.2 MB was printed)


def _nested(depth: int) -> str:
    return "${a:-" * depth + "x" + "}" * depth


def _heredocs_nested(depth: int) -> str:
    """A heredoc whose body opens ``depth`` more heredocs, each closed in reverse."""
    body = "".join(f"cat <<E{i}\n" for i in range(1, depth)) + "".join(f"E{i}\n" for i in reversed(range(1, depth)))
    return f"FROM busybox\nRUN <<E0\n{body}E0\n"


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    expect: str  # "ok", "error" (a DockerfileError at ``line``) or "either" (ok, or a clear error)
    line: int | None = None  # the line a DockerfileError names
    words: str = ""  # must be in the error's message
    build: str = "either"  # what `llbook build` must end in: "ok", "error", "either" or "skip"
    build_words: str = ""  # must be in the build's error line, when it fails
    build_args: tuple[str, ...] = ()  # --build-arg values for the CLI

    @property
    def text(self) -> str | None:
        """The Dockerfile as text for the frontend, None when it is not UTF-8."""
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError:
            return None


def _cases() -> list[Case]:
    b = str.encode
    stages_chain = "FROM scratch AS s0\nENV N=0\n" + "".join(f"FROM s{i - 1} AS s{i}\nENV N={i}\n"
                                                            for i in range(1, 3000))
    stages_apart = "".join(f"FROM scratch AS s{i}\nENV N={i}\n" for i in range(3000))
    stages_copied = stages_apart + "FROM scratch\n" + "".join(f"COPY --from=s{i} / /s{i}\n" for i in range(3000))
    stages_copied_300 = "".join(f"FROM scratch AS s{i}\nENV N={i}\n" for i in range(300)) + "FROM scratch\n" + \
        "".join(f"COPY --from=s{i} / /s{i}\n" for i in range(300))
    args = "".join(f"ARG A{i}=d{i}\n" for i in range(2000)) + "FROM busybox\n" + \
        "".join(f"ARG A{i}\n" for i in range(2000)) + "RUN echo " + " ".join(f"$A{i}" for i in range(2000)) + \
        " > /args && wc -w /args\n"
    binary = Path("/bin/true").read_bytes()[:65536]
    return [
        Case("run-line-1MB", b("FROM busybox\nRUN echo " + "x" * 1_000_000 + "\n"), "ok",
             build="error", build_words="argument list too long"),
        Case("label-line-10MB", b("FROM scratch\nLABEL big=" + "y" * 10_000_000 + "\n"), "ok", build="ok"),
        Case("single-line-10MB", b("z" * 10_000_000), "error", 1, "unknown instruction", build="error"),
        Case("word-1MB-instruction", b("FROM scratch\n" + "Q" * 1_000_000 + " arg\n"), "error", 2,
             "unknown instruction", build="error"),
        Case("env-nested-5000", b(f"FROM scratch\nENV a=\nENV b={_nested(5000)}\n"), "error", 3,
             "nested more than", build="error"),
        Case("arg-nested-5000", b(f"ARG a={_nested(5000)}\nFROM scratch\n"), "error", 1, "nested more than",
             build="error"),
        Case("from-nested-5000", b(f"FROM {_nested(5000)}\n"), "error", 1, "nested more than", build="error"),
        Case("run-nested-5000", b(f"FROM busybox\nRUN echo {_nested(5000)} | wc -c\n"), "ok"),
        Case("heredocs-nested-2000", b(_heredocs_nested(2000)), "ok"),
        Case("heredocs-3000-on-one-line", b("FROM busybox\nRUN cat " + " ".join(f"<<H{i}" for i in range(3000)) +
                                            " | wc -l\n" + "".join(f"h{i}\nH{i}\n" for i in range(3000))), "ok",
             build="ok"),
        Case("heredoc-unterminated-1MB", b("FROM busybox\nRUN <<EOF\n" + "a\n" * 500_000), "either"),
        # one 400 KB argument of sh -c: more than the kernel's 128 KiB for one argument
        Case("continuations-200000", b("FROM busybox\nRUN echo \\\n" + "a \\\n" * 200_000 + "end | wc -c\n"), "ok",
             build="error", build_words="argument list too long"),
        Case("continuations-20000", b("FROM busybox\nRUN echo \\\n" + "a \\\n" * 20_000 + "end | wc -c\n"), "ok",
             build="ok"),
        Case("continuations-empty-200000", b("FROM scratch\nENV a=\\\n" + "\\\n" * 200_000 + "b\n"), "ok",
             build="ok"),
        Case("continuations-comments-200000", b("FROM scratch\nENV a=\\\n" + "# c\n" * 200_000 + "b\n"), "ok",
             build="ok"),
        Case("continuation-at-eof", b("FROM scratch\nENV a=b \\"), "ok", build="ok"),
        Case("blank-lines-1000000", b("FROM scratch\n" + "\n" * 1_000_000 + "ENV a=b\n"), "ok", build="ok"),
        Case("stages-3000-chained", b(stages_chain), "ok", build="ok"),
        Case("stages-3000-independent", b(stages_apart), "ok", build="ok"),
        # 3,000 COPY steps take a few minutes to build (each a file op and a snapshot, ~50 ms):
        # lowered here, built with 300
        Case("stages-3000-copied-into-one", b(stages_copied), "ok", build="skip"),
        Case("stages-300-copied-into-one", b(stages_copied_300), "ok", build="ok"),
        Case("stage-name-cycle", b("FROM s1 AS s0\nFROM s0 AS s1\nFROM s1\n"), "either"),
        Case("env-10000", b("FROM scratch\n" + "".join(f"ENV V{i}=v{i}\n" for i in range(10_000))), "ok", build="ok"),
        Case("label-expose-10000", b("FROM scratch\n" + "".join((f"LABEL l{i}=x\n", f"EXPOSE {i % 60000 + 1}\n")[i % 2]
                                                                 for i in range(10_000))), "ok", build="ok"),
        Case("build-args-2000", b(args), "ok", build="ok", build_args=tuple(f"A{i}=v{i}" for i in range(0, 2000, 2))),
        Case("json-nested-5000", b("FROM busybox\nRUN " + "[" * 5000 + "]" * 5000 + "\n"), "ok"),
        Case("binary-elf", binary, "error", 1, "not a UTF-8 text file", build="error"),
        Case("latin-1", b"FROM scratch\nLABEL a=caf\xe9\n", "error", 2, "not a UTF-8 text file", build="error"),
        Case("utf-16", "FROM scratch\nLABEL a=b\n".encode("utf-16"), "error", 1, "not a UTF-8 text file",
             build="error"),
        Case("utf-8-bom", b"\xef\xbb\xbfFROM scratch\nLABEL a=b\n", "ok", build="ok"),
        Case("nul-in-run", b"FROM busybox\nRUN echo a\0b\n", "error", 2, "not a UTF-8 text file", build="error"),
        Case("nul-in-from", b"FROM scr\0atch\n", "error", 1, "not a UTF-8 text file", build="error"),
        Case("nul-1MB", b"\0" * 1_000_000, "error", 1, "not a UTF-8 text file", build="error"),
        Case("cr-only-line-ends", b"FROM scratch\r" + b"ENV a=b\r" * 1000, "either", build="either"),
        Case("control-characters", b("FROM scratch\nLABEL a=\x1b[31m\x07\x08\x7f\nENV \x01=\x02\n"), "either",
             build="either"),
    ]


CASES = _cases()


def _frontend(case: Case) -> tuple[str, int | None, str]:
    """(outcome, error line, error message) of the frontend in this process, on the
    decoded text as the CLI gives it (a binary file is decode_dockerfile's error)."""
    try:
        text = decode_dockerfile(case.data, "Dockerfile")
        lowered = dockerfile_to_llb(text)
        definition = lowered.definition()
    except DockerfileError as err:
        return "error", err.line, err.message
    return f"ok ({len(definition.def_)} ops, {len(lowered.stages)} stages)", None, ""


def _check_error(case: Case, where: str, line: int | None, message: str) -> None:
    assert line is not None, f"{case.name} {where}: the error names no line: {message[:300]}"
    assert len(message) < MESSAGE_BOUND, f"{case.name} {where}: a {len(message):,}-character message"
    if case.line is not None:
        assert line == case.line, (case.name, where, line, message[:300])
    if case.words:
        assert case.words in message, (case.name, where, message[:300])


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_frontend_ends_in_success_or_a_dockerfile_error_with_a_line(case: Case) -> None:
    start = time.perf_counter()
    outcome, line, message = _frontend(case)
    took = time.perf_counter() - start
    print(f"  {case.name}: {len(case.data):,} bytes -> {outcome}"
          + (f" at line {line}: {message[:160]!r} ({len(message):,} chars)" if line or message else "")
          + f" [{took:.2f} s, not asserted]")
    report("pathological Dockerfiles (frontend)", f"{case.name} through dockerfile_to_llb",
           hostile_inputs=1, successes=int(outcome.startswith("ok")), clear_errors=int(outcome == "error"))
    if case.expect == "ok":
        assert outcome.startswith("ok"), (case.name, line, message[:500])
    elif case.expect == "error":
        assert outcome == "error", (case.name, outcome)
    if outcome == "error":
        _check_error(case, "frontend", line, message)


def _cli(args: list[str], env: dict[str, str]) -> tuple[str, subprocess.CompletedProcess | None]:
    try:
        return "", llbook(env, *args, timeout=HANG_GUARD)
    except subprocess.TimeoutExpired:
        return "hung", None


def _cli_outcome(case: Case, where: str, proc: subprocess.CompletedProcess | None, hung: str,
                 dockerfile: Path, expect: str, words: str) -> str:
    """Check one CLI run; returns its outcome ("ok" or "error") for the report."""
    assert not hung, f"{case.name} {where}: no answer within the {HANG_GUARD:.0f} s hang guard"
    assert proc is not None
    assert "Traceback" not in proc.stderr, (case.name, where, proc.stderr[-3000:])
    if proc.returncode == 0:
        assert expect != "error", (case.name, where, "succeeded")
        return "ok"
    assert expect != "ok", (case.name, where, proc.stderr[-3000:])
    assert proc.returncode == 1, (case.name, where, proc.returncode, proc.stderr[-3000:])
    assert len(proc.stderr) < STDERR_BOUND, (case.name, where, f"{len(proc.stderr):,} bytes of stderr")
    error = [line for line in proc.stderr.splitlines() if not line.startswith("#")]
    located = [line for line in error if f"{dockerfile}:" in line]
    assert located, (case.name, where, proc.stderr[-3000:])  # the Dockerfile and its line
    first = located[0]
    line = int(first.split(f"{dockerfile}:", 1)[1].split(":", 1)[0])
    if case.expect == "error":  # the frontend's error: the same line and words on the CLI
        _check_error(case, where, line, first)
    if words:
        assert words in "\n".join(error).lower(), (case.name, where, error[:20])
    return "error"


@pytest.mark.root
@pytest.mark.timeout(600)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_dump_llb_and_build_end_in_success_or_one_clear_error(adv, case: Case) -> None:
    ctx = adv.base / "ctx"
    ctx.mkdir()
    dockerfile = ctx / "Dockerfile"
    dockerfile.write_bytes(case.data)
    build_args = [a for value in case.build_args for a in ("--build-arg", value)]
    dump_hung, dump = _cli(["dump-llb", "-f", str(dockerfile), *build_args, str(ctx)], adv.env)
    build_hung, built = ("", None) if case.build == "skip" else \
        _cli(["build", "--progress", "plain", "--cache-dir", str(adv.cache), *build_args, str(ctx)], adv.env)
    hung = int(bool(dump_hung)) + int(bool(build_hung))
    tracebacks = sum(1 for p in (dump, built) if p is not None and "Traceback" in p.stderr)
    for where, proc in (("dump-llb", dump), ("build", built)):
        if proc is not None:
            err = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("#")]
            print(f"  {case.name} {where}: exit {proc.returncode}, stderr {len(proc.stderr):,} bytes"
                  + (f", error {err[0][:200]!r}" if proc.returncode and err else ""))
        else:
            print(f"  {case.name} {where}: {'hung' if (dump_hung if where == 'dump-llb' else build_hung) else 'skipped'}")
    report("pathological Dockerfiles (CLI)", f"{case.name} through llbook dump-llb and llbook build",
           dockerfiles=1, runs=2 - (built is None and not build_hung), hung=hung, tracebacks=tracebacks,
           successes=sum(1 for p in (dump, built) if p is not None and p.returncode == 0))
    dump_expect = "error" if case.expect == "error" else "ok" if case.expect == "ok" else "either"
    _cli_outcome(case, "dump-llb", dump, dump_hung, dockerfile, dump_expect, "")
    if case.build != "skip":
        _cli_outcome(case, "build", built, build_hung, dockerfile, case.build, case.build_words)
