"""BuildKit word expansion (shell/lex.go): every substitution form, quotes, escapes, splitting."""

import pytest

from solver.errors import DockerfileError
from solver.frontend import dockerfile_to_llb
from solver.frontend.shell_words import Lexer, WordError

ENV = {"A": "apple", "EMPTY": "", "PATH_ISH": "/usr/local/bin/tool.tar.gz", "SP": "a b  c"}


@pytest.mark.parametrize("word,expected", [
    ("$A", "apple"),
    ("${A}", "apple"),
    ("x${A}y", "xappley"),
    ("$UNSET", ""),
    ("${UNSET}", ""),
    ("$A$A", "appleapple"),
    ("$", "$"),
    ("a$", "a$"),
    ("$1", ""),
    ("${A:-x}", "apple"),
    ("${EMPTY:-x}", "x"),
    ("${UNSET:-x}", "x"),
    ("${A-x}", "apple"),
    ("${EMPTY-x}", ""),
    ("${UNSET-x}", "x"),
    ("${A:+x}", "x"),
    ("${EMPTY:+x}", ""),
    ("${UNSET:+x}", ""),
    ("${A+x}", "x"),
    ("${EMPTY+x}", "x"),
    ("${UNSET+x}", ""),
    ("${A:?oops}", "apple"),
    ("${EMPTY?oops}", ""),
    ("${UNSET:-$A}", "apple"),
    ("${UNSET:-${EMPTY:-nested}}", "nested"),
    ("${PATH_ISH#*/}", "usr/local/bin/tool.tar.gz"),
    ("${PATH_ISH##*/}", "tool.tar.gz"),
    ("${PATH_ISH%.*}", "/usr/local/bin/tool.tar"),
    ("${PATH_ISH%%.*}", "/usr/local/bin/tool"),
    ("${A/p/P}", "aPple"),
    ("${A//p/P}", "aPPle"),
])
def test_expansion_forms(word, expected):
    assert Lexer().process_word(word, ENV) == expected


@pytest.mark.parametrize("word,expected", [
    ("'$A'", "$A"),
    ('"$A"', "apple"),
    ('"a\\"b"', 'a"b'),
    ('"\\$A"', "$A"),
    ("\\$A", "$A"),
    ('"it\'s"', "it's"),
    ("'a\\b'", "a\\b"),
    ('"a\\b"', "a\\b"),
    ("a\\ b", "a b"),
    ('"${A:-"x"}"', "apple"),
])
def test_quotes_and_escapes(word, expected):
    assert Lexer().process_word(word, ENV) == expected


def test_backtick_escape_token():
    lexer = Lexer(escape_token="`")
    assert lexer.process_word("`$A", ENV) == "$A"
    assert lexer.process_word("C:\\path\\$A", ENV) == "C:\\path\\apple"


@pytest.mark.parametrize("word,words", [
    ("a b  c", ["a", "b", "c"]),
    ("$SP", ["a", "b", "c"]),
    ('"$SP"', ["a b  c"]),
    ("x$SP", ["xa", "b", "c"]),
    ("'a b' c", ["a b", "c"]),
    ("a\\ b c", ["a b", "c"]),
    ("", []),
])
def test_word_splitting(word, words):
    assert Lexer().process_words(word, ENV) == words


@pytest.mark.parametrize("word,message", [
    ("${UNSET:?}", "UNSET: is not allowed to be unset"),
    ("${UNSET?}", "UNSET: is not allowed to be unset"),
    ("${EMPTY:?}", "EMPTY: is not allowed to be empty"),
    ("${UNSET:?custom message}", "UNSET: custom message"),
    ("${A", "missing '}'"),
    ("${}", "bad substitution"),
    ("${A:x}", "unsupported modifier"),
    ("'abc", "single-quote"),
    ('"abc', "double-quote"),
])
def test_expansion_errors(word, message):
    with pytest.raises(WordError) as err:
        Lexer().process_word(word, ENV)
    assert message in str(err.value)


def test_skip_unset_env_keeps_text():
    lexer = Lexer(skip_unset_env=True)
    assert lexer.process_word("$UNSET ${UNSET} ${UNSET:-x} $A", ENV) == "$UNSET ${UNSET} ${UNSET:-x} apple"


def test_matches_are_reported():
    _, matched, unmatched = Lexer().process_word_with_matches("$A ${B:-x}", ENV)
    assert matched == {"A"}
    assert unmatched == {"B"}


def test_required_build_arg_error_names_variable_and_line():
    text = 'FROM scratch\nARG VERSION\nENV V="${VERSION:?VERSION must be set}"\n'
    with pytest.raises(DockerfileError) as err:
        dockerfile_to_llb(text)
    assert err.value.line == 3
    assert "VERSION: VERSION must be set" in err.value.message
    ok = dockerfile_to_llb(text, build_args={"VERSION": "1.2"})
    assert "V=1.2" in ok.image_config["config"]["Env"]


def test_env_expansion_uses_the_env_before_the_instruction():
    text = "FROM scratch\nENV A=1 B=${A}2\nENV C=\"$B 3\" D='$A'\nLABEL l=${C:+set}\n"
    cfg = dockerfile_to_llb(text).image_config["config"]
    assert "B=2" in cfg["Env"]
    assert "C=2 3" in cfg["Env"]
    assert "D=$A" in cfg["Env"]
    assert cfg["Labels"] == {"l": "set"}
