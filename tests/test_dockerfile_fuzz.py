"""Property test: generated and mutated Dockerfiles either lower or fail with DockerfileError
(with a line number where one makes sense); no other exception escapes."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solver.errors import DockerfileError
from solver.frontend import Lowering, LoweringOptions, dockerfile_to_llb
from solver.frontend.checks import RULES, CheckInputs, check_dockerfile, format_check_report

# Errors about the file as a whole, which have no single line.
WHOLE_FILE_ERRORS = ("the Dockerfile cannot be empty", "could not be found", "invalid SOURCE_DATE_EPOCH",
                     "failed to parse check options")

NAMES = st.sampled_from(["a", "b", "build", "base", "A", "x1", "my.stage", "1bad", "scratch"])
VARS = st.sampled_from(["A", "B", "PATH", "HOME", "UNSET", "TARGETARCH", "X_Y"])
IMAGES = st.sampled_from(["busybox", "alpine:3.19", "scratch", "docker.io/library/debian:12", "$IMG",
                          "${IMG:-busybox}", "Bad:Ref", "localhost:5000/x/y", "a@sha256:" + "0" * 64, ""])
PATHS = st.sampled_from(["/app", "app", ".", "./", "/", "a/b/", "*.txt", "src/./pkg", "$DIR", "${DIR:-/d}",
                         "/tmp/x y", "~", "..", "https://example.com/f.tgz", "http://h/", "<<EOF"])

WORD_CHARS = st.sampled_from(list("abcxyz019_-./:=,@ ") + ["$A", "${A}", "${A:-d}", "${A:+s}", "${A-x}",
                                                        "${A+y}", "${U:?need U}", "'q'", '"dq"', "\\ ",
                                                        "\\$", "${", "}", "$", "\\", "'", '"', "[", "]",
                                                        "<<", "<<-", "é", "\t"])
WORDS = st.lists(WORD_CHARS, min_size=0, max_size=8).map("".join)


def _json_array(items):
    return json.dumps(items)


MOUNT = st.builds(
    lambda kind, target, extra: f"--mount=type={kind},target={target}{extra}",
    st.sampled_from(["bind", "cache", "tmpfs", "secret", "ssh", "nfs", "CACHE"]),
    st.sampled_from(["/x", "rel", "/", "$D", "/run/s"]),
    st.sampled_from(["", ",ro", ",rw", ",readonly=false", ",source=src", ",from=a", ",from=build", ",id=c1",
                     ",sharing=locked", ",sharing=bogus", ",uid=1000,gid=2,mode=0750", ",size=10m",
                     ",required", ",mode=9", ",env=TOKEN", ",bogus=1", ",uid=-1", ',"source=a,b"']),
)
RUN_FLAGS = st.lists(st.one_of(MOUNT, st.sampled_from(["--network=none", "--network=host", "--network=x",
                                                        "--security=insecure", "--security=sandbox",
                                                        "--device=foo", "--unknown", "--", "--mount"])),
                     max_size=3).map(" ".join)
COPY_FLAGS = st.lists(st.sampled_from(["--from=a", "--from=0", "--from=7", "--from=alpine", "--from=Bad:Ref",
                                       "--from=$X", "--chown=1000:1000", "--chown=app", "--chmod=0755",
                                       "--chmod=u+x", "--chmod=99", "--chmod=", "--link", "--link=false",
                                       "--exclude=*.md", "--parents", "--checksum=sha256:abc", "--unpack",
                                       "--keep-git-dir", "--nope"]), max_size=3).map(" ".join)


def _heredoc(name="EOF", dash=False, quoted=False, body="echo hi\n"):
    word = f"'{name}'" if quoted else name
    return f"<<{'-' if dash else ''}{word}", f"{body}{chr(9) if dash else ''}{name}\n"


HEREDOC = st.builds(_heredoc, st.sampled_from(["EOF", "END", "script.sh", "X"]), st.booleans(), st.booleans(),
                    st.sampled_from(["echo hi\n", "#!/bin/sh\necho $A\n", "", "line1\n\tline2\n", "RUN x\n"]))


@st.composite
def run_line(draw):
    flags = draw(RUN_FLAGS)
    if draw(st.booleans()):
        head, body = draw(HEREDOC)
        return f"RUN {flags} {head}\n{body}"
    if draw(st.booleans()):
        return f"RUN {flags} {_json_array(draw(st.lists(WORDS, max_size=3)))}\n"
    return f"RUN {flags} {draw(WORDS)}\n"


@st.composite
def copy_line(draw):
    keyword = draw(st.sampled_from(["COPY", "ADD", "copy"]))
    flags = draw(COPY_FLAGS)
    srcs = draw(st.lists(PATHS, min_size=0, max_size=3))
    dest = draw(PATHS)
    if draw(st.booleans()):
        head, body = draw(HEREDOC)
        return f"{keyword} {flags} {head} {' '.join(srcs)} {dest}\n{body}"
    return f"{keyword} {flags} {' '.join(srcs)} {dest}\n"


@st.composite
def simple_line(draw):
    kind = draw(st.sampled_from(["ENV", "ARG", "LABEL", "EXPOSE", "USER", "WORKDIR", "CMD", "ENTRYPOINT",
                                 "VOLUME", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "ONBUILD", "MAINTAINER",
                                 "BOGUS", "env"]))
    if kind in ("ENV", "env", "LABEL"):
        pairs = draw(st.lists(st.tuples(VARS, WORDS), max_size=3))
        if draw(st.booleans()):
            return f"{kind} " + " ".join(f"{k}={v}" for k, v in pairs) + "\n"
        return f"{kind} {draw(VARS)} {draw(WORDS)}\n"
    if kind == "ARG":
        return "ARG " + " ".join(draw(st.lists(st.one_of(VARS, st.tuples(VARS, WORDS).map("=".join)),
                                                max_size=2))) + "\n"
    if kind == "EXPOSE":
        return "EXPOSE " + " ".join(draw(st.lists(st.sampled_from(
            ["80", "443/udp", "8000-8002", "1/sctp", "x", "70000", "80/ftp", "$PORT", "1.2.3.4:80:80"]),
            max_size=3))) + "\n"
    if kind in ("CMD", "ENTRYPOINT", "SHELL"):
        if draw(st.booleans()):
            return f"{kind} {_json_array(draw(st.lists(WORDS, max_size=3)))}\n"
        return f"{kind} {draw(WORDS)}\n"
    if kind == "HEALTHCHECK":
        opts = draw(st.lists(st.sampled_from(["--interval=30s", "--timeout=1m", "--retries=3", "--retries=-1",
                                              "--start-period=5x", "--start-interval=1ns", "--bad=1"]),
                             max_size=2))
        tail = draw(st.sampled_from(["NONE", "CMD curl x", 'CMD ["a","b"]', "CMD", "RUN x", "NONE x"]))
        return f"HEALTHCHECK {' '.join(opts)} {tail}\n"
    if kind == "ONBUILD":
        return "ONBUILD " + draw(st.sampled_from(["RUN echo x", "ONBUILD RUN x", "FROM x", "COPY a b", ""])) + "\n"
    if kind == "STOPSIGNAL":
        return "STOPSIGNAL " + draw(st.sampled_from(["SIGTERM", "9", "KILL", "NOPE", "$SIG", ""])) + "\n"
    return f"{kind} {draw(WORDS)}\n"


@st.composite
def from_line(draw):
    platform = draw(st.sampled_from(["", "--platform=linux/arm64 ", "--platform=$BUILDPLATFORM ",
                                     "--platform=bad/x/y/z ", "--platform= "]))
    image = draw(IMAGES)
    alias = draw(st.one_of(st.just(""), NAMES.map(lambda n: f" AS {n}"), NAMES.map(lambda n: f" as {n}")))
    return f"FROM {platform}{image}{alias}\n"


LINE = st.one_of(from_line(), run_line(), copy_line(), simple_line(), simple_line(),
                 st.sampled_from(["# comment\n", "\n", "   \n", "# syntax=docker/dockerfile:1\n",
                                  "# escape=`\n", "RUN echo a \\\n", "  && echo b\n", "\\\n", "EOF\n"]))


@st.composite
def dockerfile(draw):
    head = draw(st.lists(st.sampled_from(["# syntax=x\n", "# escape=`\n", "# escape=\\\n", "ARG IMG=busybox\n",
                                          "ARG DIR=/srv\n", "# check=skip=all\n"]), max_size=2))
    lines = draw(st.lists(LINE, min_size=0, max_size=12))
    if draw(st.booleans()):
        lines.insert(0, draw(from_line()))
    return "".join(head + lines)


MUTATION_CHARS = st.sampled_from(list("\\`\"'${}[]<>-=,:/ \t\n#*?") + ["\r", "\x00", "é", "\u2028", "\ufeff"])


@st.composite
def mutated(draw):
    text = draw(dockerfile())
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "dup_line", "swap_lines", "truncate"]))
        if op == "insert":
            pos = draw(st.integers(0, len(text)))
            text = text[:pos] + draw(MUTATION_CHARS) + text[pos:]
        elif op in ("delete", "replace") and text:
            pos = draw(st.integers(0, len(text) - 1))
            text = text[:pos] + (draw(MUTATION_CHARS) if op == "replace" else "") + text[pos + 1:]
        elif op == "truncate" and text:
            text = text[:draw(st.integers(0, len(text)))]
        else:
            lines = text.split("\n")
            if len(lines) > 1:
                i = draw(st.integers(0, len(lines) - 1))
                j = draw(st.integers(0, len(lines) - 1))
                if op == "dup_line":
                    lines.insert(j, lines[i])
                else:
                    lines[i], lines[j] = lines[j], lines[i]
                text = "\n".join(lines)
    return text


BUILD_ARGS = st.dictionaries(st.sampled_from(["A", "IMG", "DIR", "U", "SOURCE_DATE_EPOCH", "HTTP_PROXY"]),
                             st.sampled_from(["1", "busybox", "/x", "", "1700000000", "http://p", "notanumber"]),
                             max_size=3)


def check_error(err: DockerfileError, text: str) -> None:
    assert isinstance(err.message, str) and err.message
    if err.line is None:
        assert any(fragment in err.message for fragment in WHOLE_FILE_ERRORS), err.message
        return
    assert isinstance(err.line, int) and err.line >= 1, err
    assert err.line <= text.count("\n") + 1, (err.line, text)


def lower_or_error(text: str, build_args: dict[str, str], target: str | None) -> None:
    try:
        lowered = dockerfile_to_llb(text, build_args=build_args, target=target, platform="linux/amd64",
                                    session_id="fuzz")
    except DockerfileError as err:
        check_error(err, text)
        return
    lowered.definition().to_bytes()
    assert lowered.image_config["config"]["Env"]


def checks_or_error(text: str, build_args: dict[str, str], target: str | None) -> None:
    """The build checks end in warnings (each with a rule, a message and a line of the file),
    nothing, or a DockerfileError; never another exception."""
    for all_stages in (True, False):
        inputs = CheckInputs(build_args=build_args, target=target, all_stages=all_stages, platform="linux/amd64",
                             ignore_patterns=["*.tmp", "secret", "**/cache"])
        try:
            result = check_dockerfile(text, inputs)
        except DockerfileError as err:  # the checks report errors in the result instead
            raise AssertionError(f"check_dockerfile raised {err!r}") from err
        if result.error is not None:
            assert isinstance(result.error, DockerfileError)
            if not result.violation:
                check_error(result.error, text)
        lines = text.count("\n") + 1
        for warning in result.warnings:
            assert warning.rule in RULES and warning.message, warning
            assert 1 <= warning.start_line <= warning.end_line <= lines, (warning, text)
        format_check_report(result)


def incremental_or_error(text: str) -> None:
    lowering = Lowering(LoweringOptions(session_id="fuzz"))
    try:
        records = lowering.add_snippet(text, "cell")
    except DockerfileError as err:
        check_error(err, text)
        return
    for record in records:
        record.state.marshal("linux/amd64").to_bytes()


@settings(max_examples=1200, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=dockerfile(), build_args=BUILD_ARGS, target=st.sampled_from([None, None, "a", "build"]))
def test_generated_dockerfiles(text, build_args, target):
    lower_or_error(text, build_args, target)
    checks_or_error(text, build_args, target)


@settings(max_examples=800, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=mutated())
def test_mutated_dockerfiles(text):
    lower_or_error(text, {}, None)
    incremental_or_error(text)
    checks_or_error(text, {}, None)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=300))
def test_random_bytes(data):
    lower_or_error(data.decode("utf-8", errors="surrogateescape"), {}, None)
    checks_or_error(data.decode("utf-8", errors="surrogateescape"), {}, None)
