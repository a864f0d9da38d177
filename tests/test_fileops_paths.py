"""Confined path resolution, Go path helpers, wildcard resolution and chmod mode strings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from solver.errors import FileOpError
from solver.solve.fileops_mode import ModeSet, ModeSyntaxError
from solver.solve.fileops_paths import clean_action_path, resolve_wildcards, root_path, root_path_parent, split_wildcards


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text("inside\n")
    (r / "usr" / "lib").mkdir(parents=True)
    return r


def test_root_path_plain(root: Path) -> None:
    assert root_path(root, "/usr/lib") == root / "usr/lib"
    assert root_path(root, "usr/lib/") == root / "usr/lib"
    assert root_path(root, "") == root
    assert root_path(root, "/") == root


def test_root_path_dotdot_cannot_climb(root: Path) -> None:
    assert root_path(root, "../../etc/passwd") == root / "etc/passwd"
    assert root_path(root, "/usr/../../../../x") == root / "x"


def test_root_path_absolute_symlink_resolved_in_root(root: Path) -> None:
    os.symlink("/etc", root / "cfg")
    assert root_path(root, "/cfg/passwd") == root / "etc/passwd"
    assert root_path(root, "/cfg") == root / "etc"


def test_root_path_relative_symlink_escape_clamped(root: Path) -> None:
    os.symlink("../../../../../etc", root / "usr" / "up")
    assert root_path(root, "/usr/up/passwd") == root / "etc/passwd"


def test_root_path_symlink_chain_and_missing_tail(root: Path) -> None:
    os.symlink("b", root / "a")
    os.symlink("/usr/lib", root / "b")
    assert root_path(root, "/a/new/file") == root / "usr/lib/new/file"


def test_root_path_dangling_symlink_target_kept_inside(root: Path) -> None:
    os.symlink("/nonexistent/dir", root / "dangling")
    assert root_path(root, "/dangling") == root / "nonexistent/dir"


def test_root_path_loop_is_an_error(root: Path) -> None:
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    with pytest.raises(FileOpError, match="too many links"):
        root_path(root, "/loop1/x")


def test_root_path_parent_keeps_last_symlink(root: Path) -> None:
    os.symlink("/etc", root / "cfg")
    assert root_path_parent(root, "/cfg", follow_links=False) == root / "cfg"
    assert root_path_parent(root, "/cfg", follow_links=True) == root / "etc"
    assert root_path_parent(root, "/", follow_links=False) == root


@pytest.mark.parametrize("given, expected", [
    ("foo", "/foo"), ("/foo/", "/foo/"), ("foo/.", "/foo/."), ("/", "/"), ("/.", "/."),
    ("a/../b", "/b"), ("", "/"), ("../x/", "/x/"),
])
def test_clean_action_path(given: str, expected: str) -> None:
    assert clean_action_path(given) == expected


def test_go_base_and_dir() -> None:
    from solver.llb.gopath import base as go_base, dir as go_dir
    assert go_base("/a/b/") == "b"
    assert go_base("/") == "/"
    assert go_base("") == "."
    assert go_base("/a/.") == "."
    assert go_dir("/a/b") == "/a"
    assert go_dir("a") == "."


@pytest.mark.parametrize("given, literal, pattern", [
    ("/a/b/*.txt", "/a/b", "*.txt"),
    ("/a/b*/c", "/a", "b*/c"),
    ("/plain/path", "/plain/path", ""),
    ("/x/\\*y", "/x/\\*y", ""),
    ("/[ab]", "/", "[ab]"),
])
def test_split_wildcards(given: str, literal: str, pattern: str) -> None:
    assert split_wildcards(given) == (literal, pattern)


def _tree(root: Path, files: list[str]) -> None:
    for f in files:
        p = root / f
        p.parent.mkdir(parents=True, exist_ok=True)
        if f.endswith("/"):
            p.mkdir(exist_ok=True)
        else:
            p.write_text(f)


def test_resolve_wildcards_matches_in_lexical_order(tmp_path: Path) -> None:
    _tree(tmp_path, ["b.txt", "a.txt", "c.go", "sub/d.txt", "sub2/e.txt"])
    assert resolve_wildcards(tmp_path, "/*.txt", False) == ["a.txt", "b.txt"]
    assert resolve_wildcards(tmp_path, "/sub*/*.txt", False) == ["sub/d.txt", "sub2/e.txt"]
    assert resolve_wildcards(tmp_path, "/s?b", False) == ["sub"]
    assert resolve_wildcards(tmp_path, "/[ab].txt", False) == ["a.txt", "b.txt"]
    assert resolve_wildcards(tmp_path, "/*.none", False) == []


def test_resolve_wildcards_without_wildcard_is_cleaned_self(tmp_path: Path) -> None:
    assert resolve_wildcards(tmp_path, "/a/../nope/", False) == ["/nope"]


def test_resolve_wildcards_does_not_descend_into_matches(tmp_path: Path) -> None:
    _tree(tmp_path, ["dir1/inner1/x", "dir2/"])
    assert resolve_wildcards(tmp_path, "/dir*", False) == ["dir1", "dir2"]


def test_resolve_wildcards_missing_base_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileOpError, match="/nodir"):
        resolve_wildcards(tmp_path, "/nodir/*.txt", False)


def test_resolve_wildcards_follows_literal_prefix_symlink_only_when_asked(tmp_path: Path) -> None:
    _tree(tmp_path, ["real/f.txt"])
    os.symlink("real", tmp_path / "link")
    assert resolve_wildcards(tmp_path, "/link/*.txt", True) == ["real/f.txt"]
    assert resolve_wildcards(tmp_path, "/link/*.txt", False) == []


def test_resolve_wildcards_bad_pattern_matches_nothing(tmp_path: Path) -> None:
    _tree(tmp_path, ["a"])
    assert resolve_wildcards(tmp_path, "/[", False) == []


@pytest.mark.parametrize("mode, perm, is_dir, expected", [
    ("u+x", 0o644, False, 0o744),
    ("u+x,g-w", 0o664, False, 0o744),
    ("go-w", 0o777, False, 0o755),
    ("a=r", 0o4777, False, 0o444),
    ("=rw,+X", 0o640, False, 0o666),
    ("=rw,+X", 0o740, False, 0o777),
    ("+X", 0o644, True, 0o755),
    ("+X", 0o644, False, 0o644),
    ("go=u-w", 0o700, False, 0o755),
    ("u=rwx,go=rx", 0o000, False, 0o755),
    ("o=", 0o777, False, 0o770),
    ("u+s", 0o755, False, 0o4755),
    ("+t", 0o755, True, 0o1755),
    ("g+s,o-rwx", 0o775, True, 0o2770),
    ("0750", 0o4644, False, 0o750),
    ("4755", 0o644, False, 0o4755),
    ("u-x+w", 0o500, False, 0o600),
])
def test_mode_set_apply(mode: str, perm: int, is_dir: bool, expected: int) -> None:
    assert oct(ModeSet.parse(mode).apply(perm, is_dir)) == oct(expected)


@pytest.mark.parametrize("bad", ["", "u+x,", "z+x", "u", "0x755", "8", "77777", "u+x;"])
def test_mode_set_syntax_errors(bad: str) -> None:
    with pytest.raises(ModeSyntaxError):
        ModeSet.parse(bad)


# ----------------------------------------------------------------- property: confinement

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_COMPONENT = st.sampled_from(["a", "b", "..", ".", "", "etc", "link", "up", "abs"])
_LINK_TARGET = st.lists(_COMPONENT, min_size=1, max_size=6).map("/".join).filter(bool) | st.sampled_from(
    ["/", "/etc", "../../..", "/../../etc", "/proc/self/root", "link", "a/../.."])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(links=st.dictionaries(st.sampled_from(["link", "up", "abs", "a/link", "a/b"]), _LINK_TARGET,
                             max_size=4),
       path=st.lists(_COMPONENT, max_size=8).map("/".join))
def test_root_path_always_stays_inside(tmp_path_factory: pytest.TempPathFactory, links: dict[str, str],
                                       path: str) -> None:
    root = tmp_path_factory.mktemp("prop") / "root"
    (root / "a").mkdir(parents=True)
    for name, target in links.items():
        if not os.path.lexists(root / name):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, root / name)
    try:
        resolved = root_path(root, path)
    except FileOpError as exc:
        assert "too many links" in str(exc)
        return
    real_root = os.path.realpath(root)
    assert str(resolved) == str(root) or str(resolved).startswith(str(root) + "/")
    # whatever exists of the result, followed by the kernel, is inside the root too
    probe = resolved
    while not os.path.lexists(probe) and probe != root:
        probe = probe.parent
    real = os.path.realpath(probe)
    assert real == real_root or real.startswith(real_root + "/")
