""".dockerignore rules (Docker's documentation) and the patternmatcher semantics."""

from __future__ import annotations

from pathlib import Path

import pytest

from solver.llb.patternmatch import BadPatternError, MatchInfo, PatternMatcher, clean_path, path_match
from solver.source.dockerignore import DockerIgnore, read_ignore_lines


def ignored(patterns: list[str], path: str) -> bool:
    return DockerIgnore.from_lines(patterns).excluded(path)


# ------------------------------------------------------------------ file reading


def test_reading_cleans_and_skips() -> None:
    text = "\ufeff# header comment\nbuild\n/abs/dir\n./rel//x/\n\n   \n  spaced  \n! /inverted/abs\n  # not a comment\n"
    assert read_ignore_lines(text.splitlines()) == [
        "build",
        "abs/dir",
        "rel/x",
        "spaced",
        "!inverted/abs",
        "# not a comment",
    ]


def test_crlf_and_missing_file(tmp_path: Path) -> None:
    f = tmp_path / ".dockerignore"
    f.write_bytes(b"node_modules\r\n*.log\r\n")
    assert DockerIgnore.from_file(f).patterns == ("node_modules", "*.log")
    assert DockerIgnore.from_file(tmp_path / "nope").patterns == ()
    assert not DockerIgnore.from_file(tmp_path / "nope")


def test_dockerfile_specific_ignore_file_wins(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("a\n")
    (tmp_path / "build.Dockerfile.dockerignore").write_text("b\n")
    assert DockerIgnore.for_context(tmp_path, tmp_path / "build.Dockerfile").patterns == ("b",)
    assert DockerIgnore.for_context(tmp_path, tmp_path / "Dockerfile").patterns == ("a",)


def test_lone_exclamation_is_an_error() -> None:
    with pytest.raises(BadPatternError):
        DockerIgnore.from_lines(["!"])


def test_malformed_pattern_is_an_error() -> None:
    with pytest.raises(BadPatternError):
        PatternMatcher(["a/[b"])


# ------------------------------------------------- the examples of Docker's docs


def test_docs_example_levels() -> None:
    patterns = ["# comment", "*/temp*", "*/*/temp*", "temp?"]
    assert ignored(patterns, "somedir/temporary.txt")
    assert ignored(patterns, "somedir/temp")
    assert ignored(patterns, "somedir/subdir/temporary.txt")
    assert ignored(patterns, "tempa")
    assert ignored(patterns, "tempb")
    assert not ignored(patterns, "temp")
    assert not ignored(patterns, "temporary.txt")
    assert not ignored(patterns, "tempab")
    assert not ignored(patterns, "a/b/c/temp.txt")


def test_docs_double_star() -> None:
    assert ignored(["**/*.go"], "main.go")
    assert ignored(["**/*.go"], "cmd/tool/main.go")
    assert not ignored(["**/*.go"], "cmd/tool/main.go.txt")


def test_docs_exceptions() -> None:
    assert ignored(["*.md", "!README.md"], "CHANGES.md")
    assert not ignored(["*.md", "!README.md"], "README.md")

    readme_but_secret = ["*.md", "!README*.md", "README-secret.md"]
    assert ignored(readme_but_secret, "other.md")
    assert not ignored(readme_but_secret, "README-public.md")
    assert ignored(readme_but_secret, "README-secret.md")

    last_wins = ["*.md", "README-secret.md", "!README*.md"]
    assert not ignored(last_wins, "README-secret.md")
    assert ignored(last_wins, "other.md")


def test_leading_slash_and_dot_slash_are_the_same() -> None:
    for pattern in ["/foo/bar", "foo/bar", "./foo/bar", "foo//bar/"]:
        assert ignored([pattern], "foo/bar"), pattern
        assert ignored([pattern], "/foo/bar/baz"), pattern
        assert not ignored([pattern], "foo/barn"), pattern


def test_directory_excludes_children_unless_excepted() -> None:
    assert ignored(["docs"], "docs/guide/intro.md")
    assert not ignored(["docs", "!docs/README.md"], "docs/README.md")
    assert ignored(["docs", "!docs/README.md"], "docs/other.md")
    assert not ignored(["docs/*", "!docs/README.md"], "docs/README.md")
    # A later pattern re-excludes what an exception let through.
    assert ignored(["**", "!keep", "keep/tmp"], "keep/tmp/x")
    assert not ignored(["**", "!keep", "keep/tmp"], "keep/src/x")


def test_context_root_is_never_excluded() -> None:
    assert not ignored(["*"], ".")
    assert not ignored(["*"], "")
    assert ignored(["*"], "anything")


# ------------------------------------------------------------------- the grammar

CASES = [
    ("**", "file", True),
    ("**", "dir/file", True),
    ("**/", "dir/file", True),
    ("dir/**", "dir/file", True),
    ("dir/**", "dir", False),
    ("dir/**", "dir/a/b", True),
    ("**/dir", "dir", True),
    ("**/dir", "x/dir/file", True),
    ("**/dir2/*", "a/dir2/file", True),
    ("**file", "a/b/file", True),
    ("**/file*.txt", "a/b/file1.txt", True),
    ("**/**/*.txt", "f.txt", True),
    ("**/*.txt2", "a/f.txt", False),
    ("a**/*.txt", "a/x/y/f.txt", True),
    ("a/*.txt", "a/x/f.txt", False),
    ("a/*.txt", "a/f.txt", True),
    ("x[0-9]y", "x5y", True),
    ("x[0-9]y", "xay", False),
    ("x[^0-9]y", "xay", True),
    ("x?y", "x/y", False),
    ("x?y", "xzy", True),
    (".*", ".env", True),
    (".*", "env", False),
    ("a.b", "axb", False),
    ("a+(b)|{c}$", "a+(b)|{c}$", True),
    ("dist/*.whl", "dist/pkg-1.0+local-py3-none-any.whl", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "axb", False),
    ("**/.cache", ".cache", True),
    ("**/.cache", "x.cache", False),
]


@pytest.mark.parametrize("pattern,path,expected", CASES)
def test_pattern_grammar(pattern: str, path: str, expected: bool) -> None:
    pm = PatternMatcher([pattern])
    assert pm.matches_or_parent_matches(path) is expected


@pytest.mark.parametrize("pattern,path,expected", CASES)
def test_parent_results_agree(pattern: str, path: str, expected: bool) -> None:
    """Walking down with MatchInfo gives the same answer as checking all parents."""
    pm = PatternMatcher([pattern])
    info = MatchInfo()
    parts = path.split("/")
    for i in range(1, len(parts)):
        _, info = pm.matches_using_parent_results("/".join(parts[:i]), info)
    assert pm.matches_using_parent_results(path, info)[0] is expected
    assert pm.matches_using_parent_results(path)[0] is expected


def test_exclusions_flag_and_patterns() -> None:
    pm = PatternMatcher(["  a  ", "", "!b/*"])
    assert [str(p) for p in pm.patterns] == ["a", "b/*"]
    assert pm.exclusions
    assert [p.exclusion for p in pm.patterns] == [False, True]
    assert pm.patterns[1].without_trailing_glob() == "b"
    assert not PatternMatcher(["a"]).exclusions


# ---------------------------------------------------------------- Go path.Match


@pytest.mark.parametrize(
    "pattern,name,expected",
    [
        ("abc", "abc", True),
        ("*", "abc", True),
        ("*c", "abc", True),
        ("a*", "a", True),
        ("a*", "ab/c", False),
        ("a*/b", "abc/b", True),
        ("a*/b", "a/c/b", False),
        ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
        ("ab[c]", "abc", True),
        ("ab[b-d]", "abc", True),
        ("ab[^c]", "abc", False),
        ("a\\*b", "a*b", True),
        ("a?b", "a/b", False),
        ("[\\-]", "-", True),
        ("[x\\-]", "z", False),
        ("*x", "xxx", True),
        ("/x/d?", "/x/d0", True),
    ],
)
def test_go_path_match(pattern: str, name: str, expected: bool) -> None:
    assert path_match(pattern, name) is expected


@pytest.mark.parametrize("pattern", ["[", "a[", "[]a]", "[-]", "[a-]", "a\\", "*[x"])
def test_go_path_match_errors(pattern: str) -> None:
    with pytest.raises(BadPatternError):
        path_match(pattern, "a")


@pytest.mark.parametrize(
    "raw,cleaned",
    [("", "."), ("a/./b", "a/b"), ("a/../..", ".."), ("/../a", "/a"), ("a//b/", "a/b"), ("/", "/")],
)
def test_clean_path(raw: str, cleaned: str) -> None:
    assert clean_path(raw) == cleaned


def test_validation_is_filepath_match_not_path_match() -> None:
    # Go's filepath.Match stops at the first failing chunk, so patternmatcher accepts a
    # pattern whose malformed tail is never reached while matching "."...
    pm = PatternMatcher(["-**[**"])
    # ...and the bad part only fails when a path is matched against it.
    with pytest.raises(BadPatternError):
        pm.matches_or_parent_matches("a/[")
    # path.Match (used for wildcard COPY sources) validates the whole pattern.
    with pytest.raises(BadPatternError):
        path_match("-**[**", ".")


@pytest.mark.parametrize(
    "pattern,path,expected",
    [
        ("a\\\\b", "a\\b", True),  # an escaped backslash
        ("*\\d", "x5", True),  # RE2 keeps \d as a digit class
        ("end\\z*", "endx", False),  # \z is "end of text" in RE2
    ],
)
def test_regexp_escapes_follow_re2(pattern: str, path: str, expected: bool) -> None:
    assert PatternMatcher([pattern]).matches_or_parent_matches(path) is expected


def test_regexp_escape_re2_rejects() -> None:
    pm = PatternMatcher(["*[\\b]"])  # \b is not allowed in an RE2 class
    with pytest.raises(BadPatternError):
        pm.matches_or_parent_matches("x")


def test_excluded_follows_the_transfer_walk() -> None:
    # patternmatcher's two entry points disagree here; BuildKit's walk (the chained one)
    # decides what is sent, and excluded() answers that.
    patterns = ["a/a", "!a"]
    assert not PatternMatcher(patterns).matches_or_parent_matches("a/a")
    assert ignored(patterns, "a/a")
