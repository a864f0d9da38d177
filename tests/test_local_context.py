"""The local build context: selection, safe materialisation, checksums."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from solver.cache.contenthash import checksum, checksum_many, file_digests
from solver.cache.statmemo import StatMemo
from solver.buildkit.filesync import stat_of
from solver.source.context_entries import ContextError, EntryKind
from solver.source.context_follow import resolve_follow_paths
from solver.source.local import LocalContext


def make_context(root: Path) -> Path:
    """A small project with things a .dockerignore usually drops."""
    files = {
        "Dockerfile": "FROM busybox\n",
        "README.md": "readme\n",
        "NOTES.md": "notes\n",
        "src/app.py": "print('app')\n",
        "src/util/helpers.py": "x = 1\n",
        "src/util/__pycache__/helpers.cpython-311.pyc": "bytecode",
        "node_modules/lib/index.js": "js",
        "node_modules/keep/index.js": "kept",
        "build/out.o": "obj",
        "logs/a.log": "log",
        "logs/keep.log": "keep",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    os.chmod(root / "src/app.py", 0o755)
    os.symlink("app.py", root / "src/current")
    return root


IGNORE = [
    "**/__pycache__",
    "node_modules",
    "!node_modules/keep",
    "build/",
    "*.md",
    "!README.md",
    "logs/*.log",
    "!logs/keep.log",
]


def test_selection_follows_dockerignore(tmp_path: Path) -> None:
    root = make_context(tmp_path / "ctx")
    (root / ".dockerignore").write_text("\n".join(IGNORE) + "\n")
    ctx = LocalContext.with_dockerignore(root)
    assert ctx.paths() == [
        ".dockerignore",
        "Dockerfile",
        "README.md",
        "logs",
        "logs/keep.log",
        "node_modules",  # kept as the parent of an exception, without its other children
        "node_modules/keep",
        "node_modules/keep/index.js",
        "src",
        "src/app.py",
        "src/current",
        "src/util",
        "src/util/helpers.py",
    ]
    assert "src/current" in ctx.files() and "src" not in ctx.files()


def test_include_patterns_and_wildcard_includes(tmp_path: Path) -> None:
    root = make_context(tmp_path / "ctx")
    assert LocalContext(root, include_patterns=["src/util"]).paths() == [
        "src",
        "src/util",
        "src/util/__pycache__",
        "src/util/__pycache__/helpers.cpython-311.pyc",
        "src/util/helpers.py",
    ]
    assert LocalContext(root, include_patterns=["**/*.py"], exclude_patterns=["src/util"]).files() == [
        "src/app.py"
    ]


def test_follow_paths_pull_in_symlink_targets(tmp_path: Path) -> None:
    root = make_context(tmp_path / "ctx")
    os.symlink("src/util", root / "lib")
    assert resolve_follow_paths(root, ["lib/helpers.py"]) == ["lib", "src/util/helpers.py"]
    ctx = LocalContext(root, include_patterns=["lib"], follow_paths=["lib"])
    assert ctx.files() == [
        "lib",
        "src/util/__pycache__/helpers.cpython-311.pyc",
        "src/util/helpers.py",
    ]
    assert resolve_follow_paths(root, ["."]) is None  # the whole context: no filter


def test_follow_paths_stay_inside(tmp_path: Path) -> None:
    root = make_context(tmp_path / "ctx")
    os.symlink("/etc", root / "etc-link")
    os.symlink("../../../../etc/passwd", root / "up")
    # Targets become patterns relative to the context, never host paths.
    assert resolve_follow_paths(root, ["etc-link/passwd", "up"]) == ["etc-link", "etc/passwd", "up"]
    assert "etc" not in LocalContext(root, follow_paths=["etc-link/passwd"]).paths()


def test_materialise_keeps_metadata(tmp_path: Path) -> None:
    root = make_context(tmp_path / "ctx")
    os.link(root / "src/app.py", root / "src/app-hardlink.py")
    os.chmod(root / "src/util", 0o750)
    os.utime(root / "README.md", ns=(10**18, 10**18))
    if os.geteuid() == 0:
        os.chown(root / "NOTES.md", 1234, 5678)
    os.mkfifo(root / "pipe")
    dest = tmp_path / "out"
    copied = LocalContext(root, exclude_patterns=["node_modules", "build"]).materialise(dest)
    assert len(copied) == len(LocalContext(root, exclude_patterns=["node_modules", "build"]).select())
    assert (dest / "src/app.py").read_text() == "print('app')\n"
    assert stat.S_IMODE(os.stat(dest / "src/app.py").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(dest / "src/util").st_mode) == 0o750
    assert os.readlink(dest / "src/current") == "app.py"
    assert os.stat(dest / "README.md").st_mtime_ns == 10**18
    assert os.stat(dest / "src/app.py").st_ino == os.stat(dest / "src/app-hardlink.py").st_ino
    assert stat.S_ISFIFO(os.lstat(dest / "pipe").st_mode)
    assert not (dest / "node_modules").exists()
    if os.geteuid() == 0:  # BuildKit's client sends every context entry as 0:0
        st = os.stat(dest / "NOTES.md")
        assert (st.st_uid, st.st_gid) == (0, 0)
    # The copy hashes exactly like the selected context does in place.
    ctx = LocalContext(root, exclude_patterns=["node_modules", "build"])
    assert checksum(dest, "/") == ctx.checksum("/")
    assert checksum(dest, "src") == ctx.checksum("src")


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_context_owner_is_reset_to_root(tmp_path: Path) -> None:
    """fsutil's send resets uid/gid (resetUIDAndGID): owners on disk reach neither the
    entries, the checksums nor the daemon-bound stats."""
    root = make_context(tmp_path / "ctx")
    ctx = LocalContext(root)
    before = ctx.checksum("/")
    os.chown(root / "NOTES.md", 1234, 5678)
    entries = {e.path: e for e in LocalContext(root).select()}
    assert all((e.uid, e.gid) == (0, 0) for e in entries.values())
    assert stat_of(entries["NOTES.md"]).uid == 0 and stat_of(entries["NOTES.md"]).gid == 0
    assert LocalContext(root).checksum("/") == before


def test_hostile_symlink_is_copied_not_followed(tmp_path: Path) -> None:
    root = make_context(tmp_path / "ctx")
    os.symlink("/etc", root / "evil")
    os.symlink("/etc/passwd", root / "passwd")
    os.symlink("../../..", root / "src/up")
    dest = tmp_path / "out"
    LocalContext(root).materialise(dest)
    assert os.readlink(dest / "evil") == "/etc"
    assert os.readlink(dest / "passwd") == "/etc/passwd"
    assert os.readlink(dest / "src/up") == "../../.."
    copied = {str(p.relative_to(dest)) for p in dest.rglob("*")}
    assert not any(p.startswith("evil/") for p in copied)
    assert "hostname" not in {p.name for p in dest.rglob("*")}
    # Checksums resolve the link inside the context, where /etc does not exist.
    with pytest.raises(FileNotFoundError):
        LocalContext(root).checksum("evil/passwd", follow_symlinks=True)


def test_materialise_never_writes_through_destination_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "ctx"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("pwned\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "out"
    dest.mkdir()
    os.symlink(outside, dest / "etc")  # a trap left in the destination
    os.symlink(outside / "file", dest / "single")
    (root / "single").write_text("data")
    LocalContext(root).materialise(dest)
    assert list(outside.iterdir()) == []
    assert (dest / "etc").is_dir() and not (dest / "etc").is_symlink()
    assert (dest / "etc/passwd").read_text() == "pwned\n"
    assert not (dest / "single").is_symlink()


def test_materialise_into_itself_is_refused(tmp_path: Path) -> None:
    root = make_context(tmp_path / "ctx")
    with pytest.raises(ContextError):
        LocalContext(root).materialise(root / "copy")


def test_read_only_directories_are_filled(tmp_path: Path) -> None:
    root = tmp_path / "ctx"
    (root / "ro").mkdir(parents=True)
    (root / "ro/f").write_text("x")
    os.chmod(root / "ro", 0o555)
    dest = tmp_path / "out"
    LocalContext(root).materialise(dest)
    assert (dest / "ro/f").read_text() == "x"
    assert stat.S_IMODE(os.stat(dest / "ro").st_mode) == 0o555


def test_checksum_ignores_excluded_files(tmp_path: Path) -> None:
    root = make_context(tmp_path / "ctx")
    ctx = LocalContext(root, exclude_patterns=IGNORE)
    before = ctx.checksum("/", wildcard=True)
    (root / "build/out.o").write_text("rebuilt")
    (root / "node_modules/lib/index.js").write_text("changed")
    os.utime(root / "src/app.py", ns=(5, 5))
    assert ctx.checksum("/", wildcard=True) == before
    (root / "src/app.py").write_text("print('changed')\n")
    assert ctx.checksum("/", wildcard=True) != before
    # Without the context's excludes the excluded files count.
    assert checksum(root, "/", wildcard=True) != ctx.checksum("/", wildcard=True)


def test_checksum_many_and_changed_files(tmp_path: Path) -> None:
    root = make_context(tmp_path / "ctx")
    ctx = LocalContext(root, exclude_patterns=["node_modules", "build", "logs"])
    dest = tmp_path / "out"
    ctx.materialise(dest)
    assert ctx.checksum_many(["src", "README.md"]) == checksum_many(dest, ["src", "README.md"])
    before = ctx.file_digests("/")
    assert before == file_digests(dest, "/") | {".": before["."]}
    (root / "src/util/helpers.py").write_text("x = 2\n")
    after = ctx.file_digests("/")
    assert [k for k in after if after[k] != before.get(k)] == ["src/util/helpers.py"]


def test_memo_makes_warm_checks_cheap(tmp_path: Path) -> None:
    root = make_context(tmp_path / "ctx")
    memo = StatMemo.in_dir(tmp_path / "cache")
    ctx = LocalContext(root, exclude_patterns=["node_modules"], memo=memo)
    first = ctx.checksum("/")
    files = sum(1 for e in ctx.select() if e.kind == EntryKind.FILE)
    assert memo.misses == files and memo.hits == 0
    memo.save()
    warm_memo = StatMemo.in_dir(tmp_path / "cache")
    warm = LocalContext(root, exclude_patterns=["node_modules"], memo=warm_memo)
    assert warm.checksum("/") == first
    assert warm_memo.hits == files and warm_memo.misses == 0


def test_open_file_is_confined(tmp_path: Path) -> None:
    root = make_context(tmp_path / "ctx")
    os.symlink("/etc", root / "evil")
    ctx = LocalContext(root, exclude_patterns=["build"])
    with ctx.open_file("src/app.py") as f:
        assert f.read() == b"print('app')\n"
    for bad in ("evil/passwd", "build/out.o", "../ctx/README.md"):
        with pytest.raises((ContextError, OSError)):
            ctx.open_file(bad)
    with pytest.raises(OSError):
        ctx.open_file("evil")  # a symlink is never opened through


def test_context_must_be_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ContextError):
        LocalContext(tmp_path / "file")
    with pytest.raises(ContextError):
        LocalContext(tmp_path, exclude_patterns=["["])


# ------------------------------------------------------------ property checks

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from solver.source.dockerignore import DockerIgnore  # noqa: E402

_NAMES = st.sampled_from(["a", "b", "c.md", "d.py", "keep"])
_TREES = st.lists(st.lists(_NAMES, min_size=1, max_size=3), min_size=1, max_size=12)
_PATTERN_ATOMS = st.sampled_from(["a", "b", "*", "**", "*.md", "keep", "c.md", "?"])
_PATTERNS = st.lists(
    st.tuples(st.booleans(), st.lists(_PATTERN_ATOMS, min_size=1, max_size=3)).map(
        lambda t: ("!" if t[0] else "") + "/".join(t[1])
    ),
    max_size=4,
)


def _build_tree(root: Path, paths: list[list[str]]) -> list[str]:
    """Files at the given paths (a path that is already a file stays one)."""
    made: list[str] = []
    for parts in paths:
        current = root
        ok = True
        for part in parts[:-1]:
            current = current / part
            if current.exists() and not current.is_dir():
                ok = False
                break
            current.mkdir(exist_ok=True)
        target = current / parts[-1]
        if ok and not target.exists():
            target.write_text("/".join(parts))
            made.append(str(target.relative_to(root)))
    return made


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(paths=_TREES, patterns=_PATTERNS)
def test_selection_agrees_with_dockerignore(
    tmp_path_factory: pytest.TempPathFactory, paths: list[list[str]], patterns: list[str]
) -> None:
    """A file is transferred exactly when .dockerignore matching says it is not excluded,
    and hashing the selection in place equals hashing its copy."""
    root = tmp_path_factory.mktemp("ctx")
    files = _build_tree(root, paths)
    ignore = DockerIgnore.from_lines(patterns)
    ctx = LocalContext(root, exclude_patterns=ignore.patterns)
    selection = ctx.select()
    for f in files:
        assert (f in selection) == (not ignore.excluded(f)), f
    dest = tmp_path_factory.mktemp("out")
    ctx.materialise(dest, selection)
    assert checksum(dest, "/", wildcard=True) == ctx.checksum("/", wildcard=True, selection=selection)
    for entry in selection:
        if entry.kind == EntryKind.DIR:
            assert checksum(dest, entry.path) == ctx.checksum(entry.path, selection=selection)


def test_excluded_entries_stay_hidden_with_the_walks_stats(tmp_path: Path) -> None:
    root = make_context(tmp_path / "ctx")
    ctx = LocalContext(root, exclude_patterns=["node_modules", "build", "logs"])
    selection = ctx.select()
    assert selection.stats is not None and any(p.startswith("build") for p in selection.stats)
    dest = tmp_path / "out"
    ctx.materialise(dest, selection)
    assert ctx.checksum_many(["/"], selection) == checksum_many(dest, ["/"])
    assert ctx.checksum("/", wildcard=True, selection=selection) == checksum(dest, "/", wildcard=True)
    with pytest.raises(FileNotFoundError):
        ctx.checksum("build", selection=selection)
