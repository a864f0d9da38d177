"""Content checksums against the digests BuildKit's own tests pin (cache/contenthash).

Every tree is built on disk for real, owned by uid/gid 0, with the modes BuildKit's
test helper produces (files 0644, directories 0755).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import BinaryIO

import pytest

from solver.cache.contenthash import Selector, checksum, checksum_many, diff_digests, file_digests
from solver.cache.hashtree import ChecksumNotFoundError
from solver.cache.statmemo import StatMemo
from solver.cache.tarsum import EMPTY_DIGEST, open_nofollow, record_digest

DGST_FILE_DATA0 = "sha256:cd8e75bca50f2d695f220d0cb0997d8ead387e4f926e8669a92d7f104cc9885b"
DGST_FILE_DATA1 = "sha256:c2b5e234f5f38fc5864da7def04782f82501a40d46192e4207d5b3f0c3c4732b"
DGST_DIR_D0 = "sha256:d47454417d2c554067fbefe5f5719edc49f3cfe969c36b62e34a187a4da0cc9a"
DGST_DIR_D0_FILE_BY_FILE = "sha256:6b612ad5c13159112ae26357ef7bd34df29916941ba40ec2ce38dfb70c6c60c3"
DGST_DIR_D0_MODIFIED = "sha256:555ffa3028630d97ba37832b749eda85ab676fd64ffb629fbf0f4ec8c1e3bff1"
DGST_DOUBLE_STAR = "sha256:aa7448215bbf5b837b35ce64467857d8b9747965573d14d4b31b370586370971"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="vectors need files owned by uid/gid 0")


def build(root: Path, spec: list[str]) -> Path:
    """Create entries from lines like "foo file data0", "d dir", "l symlink target"."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    os.chown(root, 0, 0)
    for line in spec:
        fields = line.split()
        path, kind = root / fields[0], fields[1]
        if kind == "dir":
            path.mkdir()
            os.chmod(path, 0o755)
        elif kind == "symlink":
            os.symlink(fields[2], path)
        else:
            path.write_bytes(fields[2].encode() if len(fields) > 2 else b"")
            os.chmod(path, 0o644)
        os.chown(path, 0, 0, follow_symlinks=False)
    return root


D0 = ["d0 dir", "d0/abc file data0", "d0/def symlink abc", "d0/ghi symlink nosuchfile"]


@needs_root
def test_file_vector(tmp_path: Path) -> None:
    root = build(tmp_path / "t", ["foo file data0", "bar file data1"] + D0)
    assert checksum(root, "foo") == DGST_FILE_DATA0
    assert checksum(root, "foo", follow_symlinks=True) == DGST_FILE_DATA0
    assert checksum(root, "bar") == DGST_FILE_DATA1
    assert checksum(root, "d0/abc") == DGST_FILE_DATA0
    assert checksum(root, "d0/def", follow_symlinks=True) == DGST_FILE_DATA0
    assert record_digest(root / "foo") == DGST_FILE_DATA0


@needs_root
def test_dir_vector(tmp_path: Path) -> None:
    root = build(tmp_path / "t", ["foo file data0", "bar file data1"] + D0)
    assert checksum(root, "d0", follow_symlinks=True) == DGST_DIR_D0
    assert checksum(root, "/d0/") == DGST_DIR_D0  # trailing slash: same contents record
    assert checksum(root, "/", follow_symlinks=True) == (
        "sha256:427c9cf9ae98c0f81fb57a3076b965c7c149b6b0a85625ad4e884236649a42c6"
    )


@needs_root
def test_dir_vector_as_root_and_modified(tmp_path: Path) -> None:
    same = build(tmp_path / "same", ["abc file data0", "def symlink abc", "ghi symlink nosuchfile"])
    assert checksum(same, "/", follow_symlinks=True) == DGST_DIR_D0
    assert checksum(same, "") == DGST_DIR_D0
    fewer = build(tmp_path / "fewer", ["abc file data0", "def symlink abc"])
    assert checksum(fewer, "/") == DGST_DIR_D0_MODIFIED


@needs_root
def test_missing_and_broken_links(tmp_path: Path) -> None:
    root = build(tmp_path / "t", D0)
    with pytest.raises(ChecksumNotFoundError):
        checksum(root, "nosuch", follow_symlinks=True)
    with pytest.raises(ChecksumNotFoundError):
        checksum(root, "d0/ghi", follow_symlinks=True)
    # Not following: the broken link hashes as a link.
    assert checksum(root, "d0/ghi").startswith("sha256:")


@needs_root
def test_nested_file_vector(tmp_path: Path) -> None:
    root = build(tmp_path / "t", ["abc dir", "abc/aa dir", "abc/aa/foo file data2"] + D0)
    assert checksum(root, "abc/aa/foo", follow_symlinks=True) == (
        "sha256:1c67653c3cf95b12a0014e2c4cd1d776b474b3218aee54155d6ae27b9b999c54"
    )
    assert checksum(root, "d0", follow_symlinks=True) == DGST_DIR_D0


@needs_root
def test_unordered_names(tmp_path: Path) -> None:
    root = build(
        tmp_path / "t",
        ["d0 dir", "d0/foo dir", "d0/foo/bar file data0", "d0/foo-subdir dir", "d0/foo.subdir file data1"],
    )
    assert checksum(root, "d0", follow_symlinks=True) == (
        "sha256:14276c302c940a80f82ca5477bf766c98a24702d6a9948ee71bb277cdad3ae05"
    )


@needs_root
def test_update_directory_vectors(tmp_path: Path) -> None:
    root = build(
        tmp_path / "t",
        [
            "d0 dir",
            "d0/foo dir",
            "d0/foo/bar file data0",
            "d0/foo/subdir1 dir",
            "d0/foo/subdir1/baz file data1",
            "d0/foo/subdir2 dir",
        ],
    )
    before = checksum(root, "d0/foo")
    assert before == "sha256:e76717544f71725bd759a981554ca17c286b3d222598f46a671b983fd2b8172d"
    os.chmod(root / "d0/foo", 0o700)
    assert checksum(root, "d0/foo") == (
        "sha256:3a729f6ba0d3d74c6ade7d118b08b46e37e447afdad7fc6e258dbba12fa80141"
    )
    assert checksum(root, "d0/foo/bar") == DGST_FILE_DATA0


@needs_root
def test_noop_exclude_is_identical(tmp_path: Path) -> None:
    root = build(tmp_path / "t", ["test dir", "test/foo file data0"])
    expected = "sha256:8f36dfd60011a21345427f4d3177b1223e11fbb732c18dd07cd8b2a27a0b53ca"
    assert checksum(root, "test") == expected
    assert checksum(root, "test", exclude_patterns=["*.git"]) == expected


WILDCARD_TREE = [
    "bar file data1",
    "foo file data0",
    "fox file data2",
    "x dir",
    "x/d0 dir",
    "x/d0/abc file data0",
    "x/d0/def symlink abc",
    "x/d0/ghi symlink nosuchfile",
    "y1 symlink foo",
    "y2 symlink fox",
]


@needs_root
def test_wildcards(tmp_path: Path) -> None:
    root = build(tmp_path / "t", WILDCARD_TREE)
    single = "sha256:" + hashlib.sha256(b"\0foo" + DGST_FILE_DATA0.encode()).hexdigest()
    assert checksum(root, "f*o", wildcard=True) == single
    assert checksum(root, "f*", wildcard=True) == (
        "sha256:0b6731924f0a32a812bf8a729202e55e54ded331f9e4ff2397f681e43694e086"
    )
    assert checksum(root, "x/d?", wildcard=True) == DGST_DIR_D0_FILE_BY_FILE
    assert checksum(root, "x/d?/def", wildcard=True, follow_symlinks=True) == DGST_FILE_DATA0
    assert checksum(root, "y*", wildcard=True, follow_symlinks=True) == (
        "sha256:982153600b9653a1decb0f961e09e2bc1be335cfcaac9b39dbd1120b65fdf92c"
    )
    assert checksum(root, "nothing*", wildcard=True) == EMPTY_DIGEST


@needs_root
def test_symlinks_not_followed(tmp_path: Path) -> None:
    root = build(
        tmp_path / "t",
        [
            "target file data0",
            "sym symlink target",
            "sym2 symlink target2",
            "foo dir",
            "foo/ghi symlink target",
            "y1 symlink foo/ghi",
        ],
    )
    expected_sym = "sha256:a2ba571981f48ec34eb79c9a3ab091b6491e825c2f7e9914ea86e8e958be7fae"
    assert checksum(root, "sym", wildcard=True) == expected_sym
    assert checksum(root, "sym2", wildcard=True) != expected_sym
    assert checksum(root, "foo/ghi", wildcard=True) == expected_sym
    assert checksum(root, "sym") == expected_sym
    with pytest.raises(ChecksumNotFoundError):
        checksum(root, "foo/ghi", wildcard=True, follow_symlinks=True)
    with pytest.raises(ChecksumNotFoundError):
        checksum(root, "y1", wildcard=True, follow_symlinks=True)
    in_dir = "sha256:9b761577efcb1239cf4be971914c5d7404914dd32ff436401af1764dc5446b83"
    assert checksum(root, "foo", follow_symlinks=True) == in_dir
    assert checksum(root, "fo?", wildcard=True, follow_symlinks=True) == (
        "sha256:2797e710c6d1a89ff2d91c834b828b1dc500f2982430a58241df8e146f4c4bb4"
    )
    assert checksum(root, "foo", follow_symlinks=True, exclude_patterns=["*.git"]) == in_dir


@needs_root
@pytest.mark.parametrize("wildcard", [False, True])
def test_include_exclude(tmp_path: Path, wildcard: bool) -> None:
    first = build(
        tmp_path / "a",
        ["foo file data0", "bar file data1", "d0 dir", "d0/abc file abc", "d1 dir", "d1/def file def"],
    )

    def inc(root: Path, *patterns: str, exclude: tuple[str, ...] = (), sel: str = "") -> str:
        return checksum(root, sel, wildcard=wildcard, include_patterns=patterns, exclude_patterns=exclude)

    foo, foobar = inc(first, "foo"), inc(first, "foo", "bar")
    d0, d1 = inc(first, "d0"), inc(first, "d1")
    d0_star, d1_star = inc(first, "d0/*"), inc(first, "d1/*")
    assert EMPTY_DIGEST not in (foo, foobar, d0, d1, d0_star, d1_star)
    assert foo != foobar
    assert inc(first, "d0/a*") == d0_star
    assert inc(first, "d2/foo") == EMPTY_DIGEST

    second = build(
        tmp_path / "b",
        [
            "foo file data0",
            "bar file data1",
            "baz file data2",
            "d0 dir",
            "d0/abc file abc",
            "d0/xyz file xyz",
            "d1 dir",
            "d1/def file def",
            "d2 dir",
        ],
    )
    assert inc(second, "foo") == foo
    assert inc(second, "foo", "bar") == foobar
    assert inc(second, "d0") != d0
    assert inc(second, "d1") == d1
    assert inc(second, "d0/*") != d0_star
    assert inc(second, "d0/a*") == d0_star
    assert inc(second, "**/abc") == d0_star
    assert inc(second, "d1/*") == d1_star
    assert inc(second, "d0/*", exclude=("d0/xyz",)) == d0_star
    assert inc(second, "d2/foo") == EMPTY_DIGEST
    assert inc(second, "foo", sel="d2") == EMPTY_DIGEST


@needs_root
@pytest.mark.parametrize("wildcard", [False, True])
def test_include_double_star(tmp_path: Path, wildcard: bool) -> None:
    dirs = ["prefix dir", "prefix/a dir", "prefix/a/b dir", "prefix/a/b/c dir"]
    empty = build(tmp_path / "a", dirs)
    assert checksum(empty, "prefix/a", wildcard=wildcard, include_patterns=["**/foo/**"]) == EMPTY_DIGEST
    full = build(tmp_path / "b", dirs + ["prefix/a/b/c/foo dir", "prefix/a/b/c/foo/bar file abc"])
    for patterns in (["**/foo/**", "**/report"], ["**/foo", "**/report"]):
        assert checksum(full, "prefix/a", wildcard=wildcard, include_patterns=patterns) == DGST_DOUBLE_STAR


@needs_root
def test_include_through_symlinks(tmp_path: Path) -> None:
    root = build(
        tmp_path / "t",
        [
            "data dir",
            "data/d0 dir",
            "data/d0/d1 dir",
            "data/d0/d1/d2 dir",
            "mnt dir",
            "mnt/data symlink ../data",
            "data/d0/d1/d2/foo file abc",
            "data/symlink-to-d0 symlink d0",
        ],
    )
    foo = ["**/foo"]
    d0 = checksum(root, "data/d0", include_patterns=foo)
    d0_wild = checksum(root, "data/d*", include_patterns=foo, wildcard=True)
    d2 = checksum(root, "data/d0/d1/d2", include_patterns=foo)
    inner = checksum(root, "data/d0/d*/d2", include_patterns=foo, wildcard=True)
    assert EMPTY_DIGEST not in (d0, d0_wild, d2, inner)
    assert checksum(root, "mnt/data/d0", include_patterns=foo) == d0
    assert checksum(root, "mnt/data/d0/d1/d2", include_patterns=foo) == d2
    assert checksum(root, "mnt/data/d0", include_patterns=foo, wildcard=True) == d0
    assert checksum(root, "mnt/data/d*", include_patterns=foo, wildcard=True) == d0_wild
    assert checksum(root, "mnt/data/d0/d*/d2", include_patterns=foo, wildcard=True) == inner
    assert checksum(root, "mnt/data/symlink-to-d0/d*/d2", include_patterns=foo, wildcard=True) == inner


@needs_root
def test_symlinks_resolve_inside_root(tmp_path: Path) -> None:
    root = build(
        tmp_path / "t",
        [
            "target dir",
            "target/file file data0",
            "link1 dir",
            "link1/target_file symlink ../target/file",
            "link1/target_file_abs symlink /target/file",
            "link1/target_dir symlink ../target",
            "link2 dir",
            "link2/link1_rel symlink ../link1",
            "link2/link1_abs symlink /link1",
            "up symlink ../../../../target",
        ],
    )
    for path in [
        "link1/target_file",
        "link1/target_dir/file",
        "link2/link1_rel/target_file_abs",
        "link2/link1_abs/target_dir/file",
        "up/file",
    ]:
        assert checksum(root, path, follow_symlinks=True) == DGST_FILE_DATA0, path
    assert checksum(root, "link1/target_file") != DGST_FILE_DATA0
    assert checksum(root, "link2/link1_rel/target_file") == checksum(root, "link1/target_file")


# ------------------------------------------------------------------- invalidation


def _tree(tmp_path: Path) -> Path:
    return build(tmp_path / "ctx", ["src dir", "src/a.py file print(1)", "src/b.py file x", "README file hi"])


def test_touch_does_not_change_digest(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    before = checksum(root, "/")
    os.utime(root / "src/a.py", ns=(1, 1))
    os.utime(root / "src", ns=(2, 2))
    assert checksum(root, "/") == before


def test_content_mode_and_rename_change_digest(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    seen = {checksum(root, "/")}
    (root / "src/a.py").write_text("print(2)")
    seen.add(checksum(root, "/"))
    os.chmod(root / "src/b.py", 0o755)
    seen.add(checksum(root, "/"))
    os.rename(root / "README", root / "README.md")
    seen.add(checksum(root, "/"))
    os.chmod(root / "src", 0o700)
    seen.add(checksum(root, "/"))
    assert len(seen) == 5


def test_unrelated_change_keeps_selected_digest(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    before = checksum(root, "src")
    (root / "README").write_text("changed")
    assert checksum(root, "src") == before
    assert checksum(root, "src", exclude_patterns=["b.py"]) == checksum(
        root, "src", exclude_patterns=["b.py"]
    )
    excluded = checksum(root, "src", exclude_patterns=["b.py"])
    (root / "src/b.py").write_text("other")
    assert checksum(root, "src", exclude_patterns=["b.py"]) == excluded
    assert checksum(root, "src") != before


def test_checksum_many(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    a, b = checksum(root, "/src/a.py"), checksum(root, "/README")
    joined = "sha256:" + hashlib.sha256(a.encode() + b"\0" + b.encode()).hexdigest()
    assert checksum_many(root, ["src/a.py", "README"]) == joined
    assert checksum_many(root, [Selector("src/a.py"), Selector("README")]) == joined
    whole = checksum(root, "/")
    assert checksum_many(root, []) == "sha256:" + hashlib.sha256(whole.encode()).hexdigest()
    # A trailing slash is dropped by the join with "/", as NewContentHashFunc does.
    assert checksum_many(root, ["src/"], exclude_patterns=["x"]) == checksum_many(
        root, ["src"], exclude_patterns=["x"]
    )


def test_trailing_slash_drops_own_header_when_filtered(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    with_header = checksum(root, "src", exclude_patterns=["nothing"])
    without_header = checksum(root, "src/", exclude_patterns=["nothing"])
    assert with_header == checksum(root, "src")
    assert without_header != with_header
    digests = file_digests(root, "src")
    h = hashlib.sha256()
    for name in ("a.py", "b.py"):
        h.update(b"\0" + name.encode() + digests[f"src/{name}"].encode())
    assert without_header == "sha256:" + h.hexdigest()


def test_file_digests_name_changed_files(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    before = file_digests(root, "/")
    assert set(before) == {".", "src", "src/a.py", "src/b.py", "README"}
    assert before["src/a.py"] == checksum(root, "src/a.py")
    (root / "src/a.py").write_text("print(3)")
    (root / "src/c.py").write_text("new")
    os.remove(root / "README")
    after = file_digests(root, "/")
    diff = diff_digests(before, after)
    assert diff["added"] == ["src/c.py"]
    assert diff["removed"] == ["README"]
    assert diff["changed"] == ["src/a.py"]  # a directory's header has no mtime or size
    assert "." not in file_digests(root, "/", exclude_patterns=["nothing"])  # as BuildKit: "/" drops it
    filtered = file_digests(root, "src", exclude_patterns=["*.py", "!c.py"])
    assert sorted(filtered) == ["src", "src/c.py"]


# -------------------------------------------------------------------------- memo


class CountingOpener:
    """Opens files like the default opener and counts how often it was asked to."""

    def __init__(self) -> None:
        self.opened: list[str] = []

    def __call__(self, path: str) -> BinaryIO:
        self.opened.append(path)
        return open_nofollow(path)


def _big_tree(tmp_path: Path, count: int = 30) -> Path:
    root = tmp_path / "big"
    (root / "pkg").mkdir(parents=True)
    for i in range(count):
        (root / "pkg" / f"m{i}.py").write_text(f"value = {i}\n" * 50)
    return root


def test_memo_avoids_reads(tmp_path: Path) -> None:
    root = _big_tree(tmp_path)
    memo = StatMemo()
    cold = CountingOpener()
    first = checksum(root, "/", memo=memo, opener=cold)
    assert len(cold.opened) == 30 and memo.misses == 30 and memo.hits == 0
    warm = CountingOpener()
    assert checksum(root, "/", memo=memo, opener=warm) == first
    assert warm.opened == [] and memo.hits == 30
    (root / "pkg/m3.py").write_text("changed\n")
    third = CountingOpener()
    assert checksum(root, "/", memo=memo, opener=third) != first
    assert third.opened == [str(root / "pkg/m3.py")]


def test_memo_digest_equals_unmemoised(tmp_path: Path) -> None:
    root = _big_tree(tmp_path, 5)
    memo = StatMemo()
    checksum(root, "/", memo=memo)
    os.chmod(root / "pkg/m1.py", 0o600)  # same content, new header: no stale reuse
    assert checksum(root, "/", memo=memo) == checksum(root, "/")


def test_memo_persists_across_instances(tmp_path: Path) -> None:
    root = _big_tree(tmp_path, 10)
    cache_dir = tmp_path / "cache"
    memo = StatMemo.in_dir(cache_dir)
    digest = checksum(root, "/", memo=memo)
    memo.save()
    reloaded = StatMemo.in_dir(cache_dir)
    assert len(reloaded) == 10
    opener = CountingOpener()
    assert checksum(root, "/", memo=reloaded, opener=opener) == digest
    assert opener.opened == [] and reloaded.hits == 10
    (root / "pkg/m0.py").unlink()
    assert reloaded.forget_under(root) == 1


def test_memo_load_tolerates_garbage(tmp_path: Path) -> None:
    bad = tmp_path / "memo.json"
    bad.write_text("{not json")
    assert len(StatMemo.load(bad)) == 0
    assert len(StatMemo.load(tmp_path / "missing.json")) == 0


def test_large_file_streams(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    chunk = os.urandom(1 << 16)
    with open(root / "big.bin", "wb") as out:
        for _ in range(64):  # 4 MiB, read in 1 MiB pieces
            out.write(chunk)
    st = os.lstat(root / "big.bin")
    h = hashlib.sha256()
    h.update(
        b"name" + b"mode" + str(st.st_mode & 0o7777).encode() + b"uid" + str(st.st_uid).encode()
        + b"gid" + str(st.st_gid).encode() + b"size" + str(st.st_size).encode() + b"typeflag0"
        + b"linkname" + b"uname" + b"gname" + b"devmajor0" + b"devminor0"
    )
    for _ in range(64):
        h.update(chunk)
    assert checksum(root, "big.bin") == "sha256:" + h.hexdigest()


def test_user_xattrs_are_hashed(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    (root / "f").write_text("x")
    before = checksum(root, "f")
    try:
        os.setxattr(root / "f", "user.llbook", b"1")
    except OSError:
        pytest.skip("filesystem without user xattrs")
    assert checksum(root, "f") != before


def test_fifo_and_device_are_hashed_without_reading(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    os.mkfifo(root / "pipe")
    opener = CountingOpener()
    first = checksum(root, "/", opener=opener)  # opening a FIFO would block: it must not
    assert opener.opened == []
    if os.geteuid() == 0:
        os.mknod(root / "null", 0o666 | 0o020000, os.makedev(1, 3))
        assert checksum(root, "/", opener=opener) != first
        header = record_digest(root / "null")
        os.remove(root / "null")
        os.mknod(root / "null", 0o666 | 0o020000, os.makedev(1, 5))
        assert record_digest(root / "null") != header  # devminor is in the header


def test_required_paths(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    ok = Selector("/", include_patterns=("src/*.py",), required_paths=("/src/a.py",))
    assert checksum(root, ok) == checksum(root, "/", include_patterns=["src/*.py"])
    missing = Selector("/", include_patterns=("src/*.py",), required_paths=("/src/zzz.py",))
    with pytest.raises(ChecksumNotFoundError):
        checksum(root, missing)


def test_memo_shared_by_threads(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    root = _big_tree(tmp_path, 40)
    memo = StatMemo(tmp_path / "memo.json")
    expected = checksum(root, "/")
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(checksum, root, "/", memo=memo) for _ in range(16)]
        futures += [pool.submit(memo.save) for _ in range(4)]
        results = [f.result() for f in futures[:16]]
    assert set(results) == {expected}
    assert memo.hits + memo.misses == 16 * 40
    memo.save()
    assert len(StatMemo.load(tmp_path / "memo.json")) == 40


@needs_root
def test_symlinks_through_parents(tmp_path: Path) -> None:
    root = build(
        tmp_path / "t",
        [
            "lib dir",
            "lib/sub dir",
            "lib/sub/foo file data0",
            "lib/sub/link symlink ../../lib2",
            "lib2 dir",
            "lib2/sub dir",
            "lib2/sub/foo file data0",
            "link1 symlink /lib",
            "link2 symlink /lib/",
            "link3 symlink /lib/.",
            "link4 symlink /lib/../lib",
            "link5 symlink ../lib",
            "d0 dir",
            "d0/d1 dir",
            "d0/d1/def symlink ../../lib/sub",
        ],
    )
    for path in [
        "link1/sub/foo",
        "link2/sub/foo",
        "link3/sub/foo",
        "link4/sub/foo",
        "link5/sub/foo",
        "link1/sub/link/sub/foo",
        "d0/d1/def/foo",
    ]:
        assert checksum(root, path, follow_symlinks=True) == DGST_FILE_DATA0, path
    # Hashing d0/d1 does not follow the link inside it; it hashes the link itself.
    assert checksum(root, "d0/d1", follow_symlinks=True) != checksum(root, "lib/sub")


def test_symlink_loop_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    os.symlink("b", root / "a")
    os.symlink("a", root / "b")
    from solver.cache.hashtree import ContentHashError

    with pytest.raises(ContentHashError):
        checksum(root, "a/x", follow_symlinks=True)
    assert checksum(root, "a").startswith("sha256:")  # not following: the link itself


def test_memo_quick_hit_skips_headers_but_sees_metadata_changes(tmp_path: Path) -> None:
    root = _big_tree(tmp_path, 3)
    memo = StatMemo()
    checksum(root, "/", memo=memo)
    target = root / "pkg/m1.py"
    before = os.lstat(target)
    try:  # an xattr change with the times put back: only ctime tells
        os.setxattr(target, "user.llbook", b"1", follow_symlinks=False)
    except OSError:
        pytest.skip("no user xattrs on this filesystem")
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    opener = CountingOpener()
    assert checksum(root, "/", memo=memo, opener=opener) == checksum(root, "/")
    hits = memo.hits
    assert checksum(root, "/", memo=memo, opener=opener) == checksum(root, "/")
    assert memo.hits == hits + 3  # unchanged inodes hit without re-reading
