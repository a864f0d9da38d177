"""Parsing: directives, continuations, comments, flags, heredocs, line numbers, parse errors."""

import pytest

from solver.errors import DockerfileError
from solver.frontend import dockerfile_to_llb
from solver.frontend.heredoc import chomp_content, parse_heredoc
from solver.frontend.instructions import (CopyInstruction, EnvInstruction, RunInstruction, parse_instruction,
                                          parse_instructions)
from solver.frontend.parser import extract_builder_flags, parse_dockerfile, parse_words


def nodes(text, filename="Dockerfile"):
    return parse_dockerfile(text, filename).nodes


def test_lines_are_one_based_and_keep_filename():
    parsed = nodes("# comment\n\nFROM busybox\n\nRUN echo a \\\n  b\nUSER app\n", "cell-3")
    assert [(n.keyword, n.start_line, n.end_line) for n in parsed] == [
        ("FROM", 3, 3), ("RUN", 5, 6), ("USER", 7, 7)]
    assert all(n.filename == "cell-3" for n in parsed)


def test_continuation_skips_comments_and_empty_lines():
    (node,) = nodes("RUN echo a \\\n# inner comment\n\n   \\\n  && echo b\n")
    assert node.original == "RUN echo a      && echo b"
    assert node.end_line == 5


def test_continuation_keeps_leading_whitespace_of_next_line():
    (node,) = nodes("ENV A=1 \\\n    B=2\n")
    assert node.original == "ENV A=1     B=2"
    assert node.args == ["A", "1", "B", "2"]


def test_escaped_escape_is_not_a_continuation():
    parsed = nodes("RUN echo a\\\\\nRUN echo b\n")
    assert [n.original for n in parsed] == ["RUN echo a\\\\", "RUN echo b"]


def test_directives_syntax_and_escape():
    parsed = parse_dockerfile("# syntax=docker/dockerfile:1\n# escape=`\nFROM scratch\nRUN echo a `\n  b\n")
    assert parsed.directives == {"syntax": "docker/dockerfile:1", "escape": "`"}
    assert parsed.escape == "`"
    assert parsed.nodes[1].original == "RUN echo a   b"
    assert parsed.nodes[1].start_line == 4


def test_directive_after_instruction_is_a_comment():
    parsed = parse_dockerfile("FROM scratch\n# escape=`\nRUN a \\\n b\n")
    assert parsed.escape == "\\"
    assert parsed.nodes[1].original == "RUN a  b"


def test_bad_and_repeated_directive():
    with pytest.raises(DockerfileError) as err:
        parse_dockerfile("# escape=x\nFROM scratch\n")
    assert err.value.line == 1
    with pytest.raises(DockerfileError) as err:
        parse_dockerfile("# escape=`\n# escape=\\\nFROM scratch\n")
    assert "only one escape parser directive" in err.value.message
    assert err.value.line == 2


def test_bom_and_crlf():
    parsed = nodes("\ufeffFROM scratch\r\nRUN echo a \\\r\n b\r\n")
    assert [n.original for n in parsed] == ["FROM scratch", "RUN echo a  b"]


def test_builder_flags():
    rest, flags = extract_builder_flags('--mount=type=cache,target=/x --network="none" echo hi', "\\")
    assert flags == ["--mount=type=cache,target=/x", "--network=none"]
    assert rest == "echo hi"
    rest, flags = extract_builder_flags("-- --not-a-flag", "\\")
    assert (rest, flags) == (" --not-a-flag", [])


def test_parse_words_keeps_quotes():
    assert parse_words('a "b c" d\\ e', "\\") == ["a", '"b c"', "d\\ e"]


def test_exec_form_and_shell_form():
    run_json, run_shell = parse_instructions(parse_dockerfile('RUN ["echo", "hi"]\nRUN echo hi\n'))
    assert run_json.cmd.args == ["echo", "hi"] and not run_json.cmd.prepend_shell
    assert run_shell.cmd.args == ["echo hi"] and run_shell.cmd.prepend_shell


def test_malformed_json_is_shell_form():
    """BuildKit's parseMaybeJSON: text that is not a JSON array (unterminated, NaN, which Go's
    encoding/json rejects) is the shell form, also when it starts with '["'."""
    text = 'RUN ["echo", "unterminated\nENTRYPOINT ["x", NaN]\nCMD [echo, hi]\n'
    run, entrypoint, cmd = parse_instructions(parse_dockerfile(text))
    assert run.cmd.prepend_shell and run.cmd.args == ['["echo", "unterminated']
    assert entrypoint.cmd.prepend_shell and entrypoint.cmd.args == ['["x", NaN]']
    assert cmd.cmd.prepend_shell and cmd.cmd.args == ["[echo, hi]"]


def test_shell_test_bracket_is_shell_form():
    (run,) = parse_instructions(parse_dockerfile("RUN [ -f /etc/passwd ] && echo ok\n"))
    assert run.cmd.prepend_shell and run.cmd.args == ["[ -f /etc/passwd ] && echo ok"]


def test_env_forms():
    new, legacy = parse_instructions(parse_dockerfile('ENV A=1 B="x y"\nENV C hello world\n'))
    assert isinstance(new, EnvInstruction)
    assert [(p.key, p.value, p.no_delim) for p in new.pairs] == [("A", "1", False), ("B", '"x y"', False)]
    assert [(p.key, p.value, p.no_delim) for p in legacy.pairs] == [("C", "hello world", True)]


# -- heredocs --------------------------------------------------------------------------

def test_run_heredoc_body_and_lines():
    text = "FROM scratch\nRUN <<EOF\necho a\necho b\nEOF\nUSER x\n"
    parsed = nodes(text)
    run = parsed[1]
    assert (run.start_line, run.end_line) == (2, 5)
    assert run.heredocs[0].name == "EOF" and run.heredocs[0].content == "echo a\necho b\n"
    assert parsed[2].keyword == "USER" and parsed[2].start_line == 6


def test_heredoc_body_is_not_parsed_as_instructions():
    parsed = nodes("RUN <<EOF\nFROM nothing\nBOGUS line \\\nEOF\n")
    assert len(parsed) == 1
    assert parsed[0].heredocs[0].content == "FROM nothing\nBOGUS line \\\n"


def test_several_heredocs_in_one_instruction():
    (copy_node,) = nodes("COPY <<A <<B /dst/\nfirst\nA\nsecond\nB\n")
    assert [(h.name, h.content) for h in copy_node.heredocs] == [("A", "first\n"), ("B", "second\n")]
    (copy,) = parse_instructions(parse_dockerfile("COPY <<A <<B /dst/\nfirst\nA\nsecond\nB\n"))
    assert isinstance(copy, CopyInstruction)
    assert [(c.path, c.data) for c in copy.contents] == [("A", "first\n"), ("B", "second\n")]
    assert copy.dest == "/dst/"


def test_chomp_strips_tabs_and_terminator_may_be_indented():
    (node,) = nodes("RUN <<-EOF\n\techo a\n\t\techo b\n\tEOF\n")
    assert node.heredocs[0].chomp
    assert chomp_content(node.heredocs[0].content) == "echo a\necho b\n"


def test_quoted_delimiter_disables_expansion():
    assert parse_heredoc("<<EOF").expand
    assert not parse_heredoc("<<'EOF'").expand
    assert not parse_heredoc('<<"EOF"').expand
    assert parse_heredoc('<<"EOF"').name == "EOF"
    assert parse_heredoc("3<<EOF").file_descriptor == 3
    assert parse_heredoc("<<") is None
    assert parse_heredoc("a<<EOF") is None


def test_heredoc_only_for_run_copy_add():
    parsed = nodes("FROM scratch\nLABEL a=<<EOF\nUSER x\n")
    assert [n.keyword for n in parsed] == ["FROM", "LABEL", "USER"]


def test_unterminated_heredoc():
    with pytest.raises(DockerfileError) as err:
        parse_dockerfile("FROM scratch\nRUN <<EOF\necho\n", "snippet")
    assert err.value.line == 2
    assert err.value.filename == "snippet"
    assert "unterminated heredoc" in err.value.message


def test_heredoc_as_copy_destination_is_rejected():
    with pytest.raises(DockerfileError) as err:
        parse_instructions(parse_dockerfile("COPY a <<EOF\nx\nEOF\n"))
    assert "cannot accept a heredoc as a destination" in err.value.message


# -- parse errors ----------------------------------------------------------------------

@pytest.mark.parametrize("text,line,fragment", [
    ("", None, "cannot be empty"),
    ("# only a comment\n\n", 2, "no instructions"),
    ("FROM scratch\nFOO bar\n", 2, "unknown instruction: FOO"),
    ("FROM scratch\nRUN --bogus=1 true\n", 2, "unknown flag: --bogus"),
    ("FROM scratch\nCOPY --chown a b\n", 2, "missing a value on flag: --chown"),
    ("FROM scratch\nCOPY --link=maybe a b\n", 2, "expecting boolean value"),
    ("FROM scratch\nCOPY --from=a --from=b x y\n", 2, "duplicate flag specified"),
    ("FROM scratch\nRUN --network=bridge true\n", 2, 'invalid network mode "bridge"'),
    ("FROM scratch\nRUN --security=weird true\n", 2, "is not valid"),
    ('FROM scratch\nCMD ["a", 1]\n', 2, "arrays must be comprised of strings only"),
    ("FROM scratch\nSHELL /bin/bash -c\n", 2, "JSON form"),
    ("FROM scratch\nCOPY onlyone\n", 2, "requires at least two arguments"),
    ("FROM scratch\nUSER\n", 2, "USER requires exactly one argument"),
    ("FROM a b\n", 1, "either one or three arguments"),
    ("FROM busybox AS 1st\n", 1, "invalid name for build stage"),
    ("FROM scratch\nENV\n", 2, "ENV requires at least one argument"),
    ("FROM scratch\nENV onlykey\n", 2, "ENV must have two arguments"),
    ("FROM scratch\nLABEL a=1 b\n", 2, "can't find = in"),
    ("FROM scratch\nHEALTHCHECK --interval=fast CMD true\n", 2, "invalid duration"),
    ("FROM scratch\nHEALTHCHECK --retries=-1 CMD true\n", 2, "--retries cannot be negative"),
    ("FROM scratch\nHEALTHCHECK NONE extra\n", 2, "takes no arguments"),
    ("FROM scratch\nHEALTHCHECK CMD\n", 2, "Missing command after HEALTHCHECK CMD"),
    ("FROM scratch\nHEALTHCHECK RUN x\n", 2, "Unknown type"),
    ("FROM scratch\nONBUILD ONBUILD RUN x\n", 2, "Chaining ONBUILD"),
    ("FROM scratch\nONBUILD FROM x\n", 2, "isn't allowed as an ONBUILD trigger"),
    ("FROM scratch\nRUN --mount=type=nfs,target=/x true\n", 2, "unsupported mount type"),
    ("FROM scratch\nRUN --mount=type=bind,target=/x,mode=0600 true\n", 2, "mode not allowed"),
    ("FROM scratch\nRUN --mount=type=cache,target=/x,size=1m true\n", 2, "unexpected key 'size'"),
    ("FROM scratch\nRUN --mount=type=cache,target=/x,sharing=sometimes true\n", 2, "unsupported sharing"),
    ("FROM scratch\nRUN --mount=type=secret true\n", 2, "one of source, target required"),
    ("FROM scratch\nRUN --mount=type=cache,target=/x,uid=abc true\n", 2, "invalid value abc for uid"),
    ("FROM scratch\nRUN --mount=type=bind,target=/x,ro=maybe true\n", 2, "invalid value for ro"),
    ("FROM scratch\nRUN --mount=type=bind,target=/x,bogus=1 true\n", 2, "unexpected key 'bogus'"),
    ("FROM scratch\nRUN --mount=type=bind,target=/ true\n", 2, "invalid mount target"),
    ("FROM scratch\nCOPY --chmod=999 a /b\n", 2, "invalid chmod parameter"),
    ("FROM scratch\nCOPY --chmod=u+q a /b\n", 2, "invalid chmod parameter"),
    ("FROM scratch\nCOPY http://example.com/x /b\n", 2, "source can't be a URL for COPY"),
    ("FROM scratch\nADD --checksum=sha256:00 a /b\n", 2, "checksum requires HTTP(S)"),
    ("FROM scratch\nSTOPSIGNAL NOPE\n", 2, "Invalid signal"),
    ("FROM scratch\nEXPOSE 80/ftp\n", 2, "invalid proto"),
    ("FROM scratch\nEXPOSE 99999\n", 2, "invalid containerPort"),
    ("RUN true\n", 1, "no build stage in current context"),
    ("ARG A=1\n", 1, "no stages to build"),
    ("FROM scratch\nCOPY --from=$X a b\n", 2, "variable expansion is not supported for --from"),
    ("FROM scratch\nCOPY --from=Bad:Ref a b\n", 2, "not a build stage or a valid image reference"),
    ("FROM scratch\nCOPY --from=7 a b\n", 2, "invalid stage index 7"),
    ("FROM scratch AS a\nCOPY --from=b x y\nFROM scratch AS b\nCOPY --from=a x y\n", 4,
     "circular dependency detected on stage: a"),
    ("FROM scratch AS a\nRUN --mount=from=a,target=/x true\n", 2, "circular dependency detected on stage: a"),
    ('FROM scratch\nENV X="${Y:?Y is required}"\n', 2, "Y: Y is required"),
    ("FROM ${NOPE}\n", 1, "should not be blank"),
    ("FROM Busy:Box\n", 1, "failed to parse stage name"),
    ("FROM --platform=linux/amd64/v2/x scratch\n", 1, "failed to parse platform"),
])
def test_errors_have_file_line_and_message(text, line, fragment):
    with pytest.raises(DockerfileError) as err:
        dockerfile_to_llb(text, filename="Dockerfile.test")
    assert fragment in err.value.message
    assert err.value.line == line
    assert err.value.filename == "Dockerfile.test"


def test_target_not_found():
    with pytest.raises(DockerfileError) as err:
        dockerfile_to_llb("FROM scratch AS a\n", target="b")
    assert 'target stage "b" could not be found' in err.value.message


def test_instruction_keeps_code_and_lines():
    (node,) = nodes("  run --network=none \\\n   echo hi\n")
    run = parse_instruction(node)
    assert isinstance(run, RunInstruction)
    assert run.keyword == "RUN" and run.network == "none"
    assert run.code == "run --network=none    echo hi"
    assert (run.line, run.end_line) == (1, 2)


def test_continuation_at_end_of_file_is_kept():
    parsed = nodes("FROM alpine:3.5\n\nRUN something \\")
    assert [(n.original, n.start_line, n.end_line) for n in parsed] == [
        ("FROM alpine:3.5", 1, 1), ("RUN something ", 3, 3)]
    parsed = nodes("ENV a=1 \\\n  b=2 \\\n")
    assert parsed[0].args == ["a", "1", "b", "2"] and parsed[0].end_line == 2


def test_line_ranges_like_buildkit_testfile_line():
    text = ("\n\n\n# ESCAPE=\\\n\nFROM brimstone/ubuntu:14.04\n\n\n# TORUN -v /var/run/docker.sock:/var/run/docker.sock\n\n"
            "ENV GOPATH \\\n/go\n\n\n\n# Install the packages we need, clean up after them and us\nRUN apt-get update \\\n"
            "\t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.clean \\\n\n\n    && apt-get install -y --no-install-recommends git golang ca-certificates \\\n"
            "    && apt-get clean \\\n    && rm -rf /var/lib/apt/lists \\\n\n\t&& go get -v github.com/brimstone/consul-stress \\\n"
            "    && go get -v github.com/brimstone/docker-consul \\\n\n\t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.dirty \\\n"
            "\t&& apt-get remove --purge -y $(diff /tmp/dpkg.clean /tmp/dpkg.dirty | awk '/^>/ {print $2}') \\\n"
            "\t&& rm /tmp/dpkg.* \\\n\t&& rm -rf $GOPATH/pkg \\\n\t&& rm -rf $GOPATH/src\n")
    assert [(n.start_line, n.end_line) for n in nodes(text)] == [(6, 6), (11, 12), (17, 32)]
