"""Hostile layer tars pulled through the real loopback registry by `llbook build` (runc,
overlay snapshots): `..` names, absolute names, symlink and hardlink escapes written
through, device nodes, odd whiteouts, truncated members and streams, 5,000-byte and
non-UTF-8 names. Each image is busybox plus the hostile layer(s), pushed as
`library/hostile:<case>`; every entry aims at a sentinel directory outside the root.
Measured: writes outside the root (sentinel entries changed), the build's outcome (a
one-line error or a safe result), and corrupt entries in `llbook check` of the shared cache."""

from __future__ import annotations

import gzip
import io
import os
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from adv_helpers import build, check_cache, host_disk, report, write
from fixtures.imagebuild import (Blob, Layer, build_image, dir_entry, file_entry, layer_from_entries, layer_from_tar,
                                 push_image, symlink_entry, tar_entries)
from solver.source.reference import parse as parse_reference
from solver.source.registry import default_platform

pytestmark = pytest.mark.root

CLIMB = "../" * 40


def hardlink_entry(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.LNKTYPE, target
    return info, None


def device_entry(name: str, kind: bytes, major: int, minor: int) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.devmajor, info.devminor, info.mode = kind, major, minor, 0o666
    return info, None


def gnu_tar(entries: list[tuple[str, bytes]]) -> bytes:
    """A GNU tar with raw byte names (non-UTF-8 names survive as the bytes given)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT, encoding="utf-8",
                      errors="surrogateescape") as tf:
        for raw, data in entries:
            info = tarfile.TarInfo(raw.decode("utf-8", "surrogateescape"))
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class Case:
    name: str
    layers: list[Layer]  # on top of busybox
    expect: str  # "ok", "error" or "either"
    error_words: tuple[str, ...] = ()  # every one in the error line, when it fails
    run: str = "true"  # the RUN on top (probes the result)
    inputs: int = 1  # hostile entries in the case
    output_words: tuple[str, ...] = ()  # must appear in the build's log (the RUN's output)
    forbidden_words: tuple[str, ...] = field(default_factory=tuple)  # must not appear in the log
    exports: bool = False  # also export the result as type=local and type=oci


LONG_PATH = "/".join(f"{i:02d}" + "d" * 197 for i in range(25)) + "/f"  # 25 components, 5,002 bytes


def read_below(root: Path, relative: str) -> bytes | None:
    """Read ``root/relative`` one component at a time (a path longer than PATH_MAX)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        *dirs, name = relative.split("/")
        for comp in dirs:
            new = os.open(comp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = new
        file_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
        with os.fdopen(file_fd, "rb") as f:
            return f.read()
    except OSError:
        return None
    finally:
        os.close(fd)


def cases(sentinel: Path) -> list[Case]:
    s = str(sentinel)
    rel = s.lstrip("/")
    major, minor = host_disk()
    truncated_file = tar_entries([file_entry("big", b"A" * 100_000)])
    cut = truncated_file[:30_000]  # inside the member's data
    header_cut = tar_entries([file_entry("one", b"x" * 600), file_entry("two", b"y" * 600)])[:512 * 3 + 100]
    return [
        Case("dotdot", [layer_from_entries([file_entry(CLIMB + rel + "/planted", b"pwned")])],
             "error", ("climbs out of the root", "refused")),
        Case("dotdot-inner", [layer_from_entries([dir_entry("a"), file_entry("a/" + CLIMB + rel + "/victim", b"pwned")])],
             "error", ("climbs out",)),
        Case("absolute-name", [layer_from_entries([file_entry(s + "/victim", b"pwned"), file_entry("/abs-root", b"a")])],
             "ok", run=f"test \"$(cat {s}/victim)\" = pwned && test -f /abs-root", inputs=2),
        Case("symlink-absolute-escape", [layer_from_entries([symlink_entry("esc", s), file_entry("esc/victim", b"pwned"),
                                                             file_entry("esc/planted", b"x")])],
             "ok", run=f"test \"$(cat /esc/victim)\" = pwned && test -f {s}/planted", inputs=3),
        Case("symlink-relative-escape", [layer_from_entries([symlink_entry("up", CLIMB.rstrip("/")),
                                                             file_entry("up/" + rel + "/victim", b"pwned")])],
             "ok", run=f"test \"$(cat {s}/victim)\" = pwned", inputs=2),
        Case("symlink-chain", [layer_from_entries([symlink_entry("a", "b"), symlink_entry("b", "c"), symlink_entry("c", s),
                                                   file_entry("a/sub/deep", b"pwned")])],
             "either", inputs=4),
        Case("symlink-replaces-dir", [layer_from_entries([dir_entry("d"), file_entry("d/x", b"1"), symlink_entry("d", s),
                                                          file_entry("d/victim", b"pwned")])],
             "either", inputs=4),
        Case("symlink-escape-across-layers", [layer_from_entries([symlink_entry("lib2", s)]),
                                              layer_from_entries([file_entry("lib2/victim", b"pwned"),
                                                                  file_entry("lib2/new", b"n")])],
             "either", inputs=3),
        Case("hardlink-absolute-escape", [layer_from_entries([hardlink_entry("hl", s + "/victim"),
                                                              file_entry("hl", b"pwned")])],
             "either", ("does not exist",), inputs=2),
        Case("hardlink-dotdot-escape", [layer_from_entries([hardlink_entry("hl", CLIMB + rel + "/victim")])],
             "error", ("refused",)),
        Case("hardlink-through-symlink", [layer_from_entries([symlink_entry("s", s), hardlink_entry("h", "s/victim"),
                                                              file_entry("h", b"pwned")])],
             "either", inputs=3),
        Case("hardlink-then-write", [layer_from_entries([file_entry("inside", b"inside"), hardlink_entry("hl", "inside"),
                                                         file_entry("hl", b"rewritten")])],
             "ok", run="test \"$(cat /inside)\" = inside && test \"$(cat /hl)\" = rewritten", inputs=3),
        Case("device-nodes", [layer_from_entries([device_entry("hostdisk", tarfile.BLKTYPE, major, minor),
                                                  device_entry("kmem", tarfile.CHRTYPE, 1, 2),
                                                  device_entry("fifo", tarfile.FIFOTYPE, 0, 0)])],
             "either", run="if head -c 512 /hostdisk >/dev/null 2>&1 || head -c 1 /kmem >/dev/null 2>&1;"
                           " then echo DEVICE-\"\"READABLE; else echo devices-denied; fi",
             inputs=3, forbidden_words=("DEVICE-READABLE",)),
        Case("opaque-at-root", [layer_from_entries([file_entry(".wh..wh..opq", b"")])], "either", inputs=1),
        Case("opaque-under-file", [layer_from_entries([file_entry("bin/sh/.wh..wh..opq", b"")])],
             "error", ("not a directory",)),
        Case("opaque-in-missing-dir", [layer_from_entries([file_entry("nowhere/deeper/.wh..wh..opq", b""),
                                                           file_entry("etc/.wh..wh..opq", b""),
                                                           file_entry("etc/passwd", b"root:x:0:0::/:/bin/sh\n")])],
             "ok", run="test ! -e /etc/group && grep -q root /etc/passwd", inputs=3),
        Case("whiteout-through-symlink", [layer_from_entries([symlink_entry("wl", s)]),
                                          layer_from_entries([file_entry("wl/.wh.victim", b""),
                                                              file_entry("wl/sub/.wh.deep", b"")])],
             "either", inputs=3),
        Case("whiteout-dotdot", [layer_from_entries([file_entry(CLIMB + rel + "/.wh.victim", b"")])],
             "error", ("climbs out",)),
        Case("whiteout-odd-names", [layer_from_entries([file_entry(".wh.", b""), file_entry(".wh..wh.other", b""),
                                                        file_entry("bin/.wh..", b""), file_entry("bin/.wh...", b"")])],
             "either", inputs=4),
        Case("truncated-member", [layer_from_tar(cut)], "error", ("corrupt",)),
        # Python's tarfile ends a stream at a short header after the first member (Go's archive/tar
        # says unexpected EOF); the digest and diff_id are the truncated bytes', so no transfer did it
        Case("truncated-header", [layer_from_tar(header_cut)], "either", ()),
        Case("truncated-gzip-stream", [Layer(blob=Blob("application/vnd.oci.image.layer.v1.tar+gzip",
                                                       gzip.compress(truncated_file, mtime=0)[:5_000]),
                                             diff_id="sha256:" + "0" * 64, tar=truncated_file)],
             "error", ()),
        Case("long-5000-byte-path", [layer_from_entries([file_entry(LONG_PATH, b"deep")])],
             "ok", exports=True),  # no shell reaches it (PATH_MAX); the type=local export is read back
        Case("long-5000-byte-name", [layer_from_entries([file_entry("n" * 5000, b"x")])],
             "error", ("name too long",)),
        Case("non-utf8-names", [layer_from_tar(gnu_tar([(b"bad-\xff\xfe-name", b"latin"), (b"\xc3\x28dir/\x80", b"x"),
                                                        ("caf\u00e9".encode("latin-1"), b"l1")]))],
             "ok", run="ls / | grep -q name", inputs=3, exports=True),
    ]


def export_problems(adv, ctx: Path, name: str) -> tuple[list[str], set[str]]:
    """Export the built result as type=local, tar and oci: success or one clear error line."""
    problems, exported = [], set()
    for output in (f"type=local,dest={adv.base / 'out' / name}", f"type=tar,dest={adv.base / 'out' / name}.tar",
                   f"type=oci,dest={adv.base / 'out' / name}.oci"):
        proc, _ = build(adv.env, ctx, adv.cache, "--output", output)
        errors = [line for line in proc.stderr.splitlines() if line.startswith(("error:", "llbook: error:"))]
        print(f"    export {output.split(',')[0]}: exit {proc.returncode} {errors[-1][-200:] if errors else ''}")
        if proc.returncode == 0:
            exported.add(output.split(",")[0])
        if "Traceback" in proc.stderr or (proc.returncode != 0 and len(errors) != 1):
            problems.append(f"export {output}: {re.sub('d{20,}', '<d>', proc.stderr)[-1500:]}")
    return problems, exported


def test_hostile_layers_change_nothing_outside_the_root(adv, registry, registry_client, busybox_layer) -> None:
    results = []
    for case in cases(adv.sentinel):
        image = build_image([busybox_layer, *case.layers], default_platform())
        push_image(registry_client, parse_reference(f"{registry.host}/library/hostile:{case.name}"), image)
        ctx = write(adv.base / "ctx" / case.name / "Dockerfile", f"FROM hostile:{case.name}\nRUN {case.run}\n").parent
        proc, _ = build(adv.env, ctx, adv.cache)
        outside = adv.sentinel_changes()
        error = [line for line in proc.stderr.splitlines() if line.startswith(("error:", "llbook: error:"))]
        problems = []
        if outside:
            problems.append(f"{outside} sentinel entries changed")
        if "Traceback" in proc.stderr:
            problems.append("traceback")
        if case.expect == "ok" and proc.returncode != 0:
            problems.append("expected success")
        if case.expect == "error" and proc.returncode == 0:
            problems.append("expected an error")
        if proc.returncode != 0 and (len(error) != 1 or not all(w in error[0] for w in case.error_words)):
            problems.append(f"not one clear error line with {case.error_words}: {error}")
        if any(w not in proc.stderr for w in case.output_words) or any(w in proc.stderr for w in case.forbidden_words):
            problems.append("probe output")
        if case.exports and proc.returncode == 0:
            export_failures, exported = export_problems(adv, ctx, case.name)
            problems += export_failures
            local = adv.base / "out" / case.name
            if case.name == "long-5000-byte-path" and "type=local" in exported and read_below(local, LONG_PATH) != b"deep":
                problems.append("the 5,000-byte path is not in the type=local export")
            outside = adv.sentinel_changes()
        outcome = "ok" if proc.returncode == 0 else "error: " + (error[0][-160:] if error else "?")
        print(f"  {case.name}: {case.inputs} hostile entries -> {outcome}; outside writes {outside}")
        results.append((case, outside, problems, proc.stderr))
    corrupt, check = check_cache(adv.env, adv.cache)
    report("hostile layers", f"{len(results)} hostile images through the registry",
           hostile_inputs=sum(c.inputs for c, *_ in results), writes_outside=sum(o for _, o, *_ in results),
           corrupt_entries=corrupt, builds_failed_clearly=sum(1 for *_, e in results if "error:" in e),
           problems=sum(len(p) for _, _, p, _ in results))
    failing = {c.name: p for c, _, p, _ in results if p}
    for case, _, problems, stderr in results:
        if problems:
            print(f"--- {case.name}: {problems}\n{stderr[-3000:]}")
    assert not failing, failing
    assert corrupt == 0, check.stdout
