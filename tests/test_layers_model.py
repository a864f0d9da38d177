"""solver.layers on layer tars written here (real tar files, gzip and zstd): whiteouts and
opaque directories become removals of what they hide, hard links read their target,
dive's efficiency over them, the preview kinds, the comparison, and dive's rule parsing
(go-humanize bytes, legacy and kebab keys, disabled values, out-of-range refusals)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest
import zstandard

from solver.layers import ci
from solver.layers.compare import compare
from solver.layers.export import export_tree
from solver.layers.image import ImageBlobs, layers_of_blobs
from solver.layers.tree import BY_SIZE


def _tar(entries: list[tuple[str, str, bytes | str]]) -> bytes:
    """(name, kind f|d|l|h, data or link target) → tar bytes."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.mode = 0o755 if kind == "d" else 0o644
            if kind == "d":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "l":
                info.type, info.linkname = tarfile.SYMTYPE, str(data)
                tar.addfile(info)
            elif kind == "h":
                info.type, info.linkname = tarfile.LNKTYPE, str(data)
                tar.addfile(info)
            else:
                payload = data if isinstance(data, bytes) else data.encode()
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return out.getvalue()


@pytest.fixture
def stacked(tmp_path: Path):
    base = _tar([("etc/", "d", ""), ("etc/a.conf", "f", "a" * 100), ("etc/b.conf", "f", "b" * 50),
                 ("opt/", "d", ""), ("opt/x/", "d", ""), ("opt/x/one", "f", "1" * 10), ("opt/x/two", "f", "2" * 20),
                 ("bin/", "d", ""), ("bin/tool", "f", b"\x7fELF\0\0tool"), ("bin/alias", "h", "bin/tool"),
                 ("bin/sh", "l", "tool")])
    second = _tar([("etc/", "d", ""), ("etc/a.conf", "f", "A" * 120), ("etc/.wh.b.conf", "f", b""),
                   ("opt/", "d", ""), ("opt/x/", "d", ""), ("opt/x/.wh..wh..opq", "f", b""), ("opt/x/two", "f", "new")])
    blobs = []
    for index, (data, pack) in enumerate(((base, gzip.compress), (second, zstandard.ZstdCompressor().compress))):
        path = tmp_path / f"blob{index}"
        path.write_bytes(pack(data))
        blobs.append(path)
    config = {"rootfs": {"diff_ids": ["sha256:" + "0" * 64, "sha256:" + "1" * 64]},
              "history": [{"created_by": "ADD base"}, {"created_by": "RUN change"}]}
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return layers_of_blobs(ImageBlobs("test", config, blobs, "linux/amd64"), scratch)


def test_whiteouts_and_opaque_dirs_are_removals(stacked):
    top = {c.path: c.kind for c in stacked.diffs[1].changes}
    assert top["/etc/a.conf"] == "modified" and top["/etc/b.conf"] == "removed"
    assert top["/opt/x/one"] == "removed"  # hidden by the opaque directory
    assert top["/opt/x/two"] == "modified"  # rewritten inside it
    assert [l.instruction for l in stacked.layers] == ["ADD base", "RUN change"]
    assert stacked.layers[1].removed == 2 and stacked.layers[1].modified >= 2
    assert stacked.entry(1, "/opt/x/one") is None and stacked.entry(0, "/opt/x/one") is not None


def test_efficiency_as_dive(stacked):
    eff = stacked.efficiency
    paths = {c.path: (c.cumulative_size, len(c.layers)) for c in eff.inefficiencies}
    assert paths["/etc/a.conf"] == (220, 2)
    assert paths["/etc/b.conf"] == (50, 2)  # a removed file costs nothing in its layer
    assert paths["/opt/x/two"] == (23, 2)
    assert eff.wasted == sum(size for size, _ in paths.values())
    assert eff.user_size == 123 and eff.wasted_user_ratio == eff.wasted / 123


def test_previews_and_links(stacked):
    assert stacked.preview(1, "/etc/a.conf", 10).text == "A" * 10
    assert stacked.preview(1, "/etc/a.conf", 10).truncated
    binary = stacked.preview(0, "/bin/tool", 100)
    assert binary.kind == "binary" and binary.lines[0].startswith("00000000  7f 45 4c 46 00 00 74 6f")
    assert stacked.preview(1, "/bin/alias", 100).kind == "binary"  # a hard link reads its target
    link = stacked.preview(1, "/bin/sh", 100)
    assert (link.kind, link.link) == ("symlink", "tool")
    assert stacked.preview(1, "/etc/b.conf", 100).kind == "absent"
    assert stacked.preview(0, "/etc/b.conf", 100).text == "b" * 50
    assert stacked.file_diff("/etc/a.conf", 0, 1)["lines"][2:4] == ["@@ -1 +1 @@", "-" + "a" * 100]


def test_compare_and_export(stacked, tmp_path: Path):
    base_only = type(stacked)("base", stacked.layers[:1], stacked.diffs[:1], stacked.reader)
    result = compare(base_only, stacked)
    kinds = {c.path: (c.kind, c.what) for c in result.changes}
    assert kinds["/etc/b.conf"] == ("removed", "") and kinds["/opt/x/one"] == ("removed", "")
    assert kinds["/etc/a.conf"] == ("changed", "content,size")
    assert "/bin/tool" not in kinds and "/bin/alias" not in kinds
    rows = json.loads(export_tree(stacked, "json", sort=BY_SIZE))["files"]
    assert [r["path"] for r in rows][:2] == ["/etc", "/etc/a.conf"]  # 120 B folder first, then its file
    assert export_tree(stacked, "csv").splitlines()[0] == "path,kind,type,size,mode,uid,gid,link"


def test_dive_rules_parsing():
    assert ci.parse_bytes("20Mb") == 20_000_000 and ci.parse_bytes("1 KiB") == 1024 and ci.parse_bytes("512") == 512
    assert ci.human_bytes(999) == "999 B" and ci.human_bytes(2_100_000) == "2.1 MB" and ci.human_bytes(12_345) == "12 kB"
    rules = ci.parse_rules_file("rules:\n  lowest-efficiency: '0.8'  # kebab\n  highestWastedBytes: off\n")
    assert rules == {"lowestEfficiency": "0.8", "highestWastedBytes": "off", "highestUserWastedPercent": "0.1"}
    with pytest.raises(ci.CIConfigError, match="invalid highestWastedBytes config value"):
        ci.evaluate({"highestWastedBytes": "12 parsecs"}, ci.Efficiency(1.0, 0, 0, 0, []))
    with pytest.raises(ci.CIConfigError, match=r"highestUserWastedPercent config value is outside allowed range"):
        ci.evaluate({"highestUserWastedPercent": "1.5"}, ci.Efficiency(1.0, 0, 0, 0, []))
