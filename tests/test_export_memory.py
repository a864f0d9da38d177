"""Export streams: a ~200 MB layer exports with a small, bounded peak RSS.

The export runs in a child process whose peak resident set (``ru_maxrss`` from
``wait4``) is compared with a generous bound. Memory, not time, is asserted, so the
check is deterministic enough for CI; the data is incompressible (random), so neither
the tar stream nor the compressed blob could be held in memory unnoticed.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from solver.export.layer import ParallelGzipWriter

ROOT = Path(__file__).resolve().parents[1]
LAYER_MB = 200
PEAK_BOUND_MB = 150

CHILD = textwrap.dedent("""\
    import contextlib, json, resource, sys
    from pathlib import Path
    from solver.cache.content import ContentStore
    from solver.export import ExportLayer, ExportSource, export, parse_output

    work, layer = Path(sys.argv[1]), Path(sys.argv[2])
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    store = ContentStore(work / "store")
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
              "history": [{"created_by": "RUN make-big"}]}
    source = ExportSource(store, config, [ExportLayer(diff_dir=layer)],
                          mount_rootfs=lambda: contextlib.nullcontext(layer), created=1_700_000_000)
    results = {}
    for output in (f"type=oci,dest={work}/img-oci.tar,name=big:latest",
                   f"type=docker,dest={work}/img-docker.tar,name=big:latest,compression=uncompressed",
                   f"type=tar,dest={work}/rootfs.tar"):
        result = export(source, parse_output(output), epoch=1_700_000_000)
        results[output.split(",")[0]] = result.manifest_digest
    # VmHWM is the peak of this program's own address space; ru_maxrss would also count
    # the pages the process shared with its (possibly large) parent before exec.
    hwm_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    json.dump({"baseline_kb": baseline, "results": results, "hwm_kb": hwm_kb,
               "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}, sys.stdout)
""")


def _write_random(path: Path, megabytes: int) -> None:
    with open(path, "wb") as f:
        for _ in range(megabytes):
            f.write(os.urandom(1 << 20))


def _run_measured(cmd: list[str], tmp: Path) -> tuple[str, int]:
    """Output and peak RSS in KiB of ``cmd`` alone: ``wait4`` gives the child's own
    rusage (``RUSAGE_CHILDREN`` would be the maximum over every child so far)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out_path, err_path = tmp / "child.out", tmp / "child.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, err_path.read_text(errors="replace")[-3000:]
    return out_path.read_text(), usage.ru_maxrss


def test_export_of_a_200mb_layer_keeps_peak_rss_bounded(tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    (layer / "small").mkdir(parents=True)
    _write_random(layer / "big", LAYER_MB)
    for i in range(200):
        (layer / "small" / f"f{i}").write_text(f"small file {i}\n")
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    out, peak_kb = _run_measured([sys.executable, str(child), str(tmp_path / "work"), str(layer)], tmp_path)
    report = json.loads(out)
    peak_mb, baseline_mb = report["hwm_kb"] / 1024, report["baseline_kb"] / 1024
    assert report["hwm_kb"] <= peak_kb
    oci = tmp_path / "work" / "img-oci.tar"
    assert oci.stat().st_size > LAYER_MB << 20  # the layer really went through (random: no shrink)
    with tarfile.open(oci) as tar:
        names = tar.getnames()
    assert "index.json" in names and len([n for n in names if n.startswith("blobs/sha256/")]) == 3
    assert (tmp_path / "work" / "img-docker.tar").stat().st_size > LAYER_MB << 20
    assert (tmp_path / "work" / "rootfs.tar").stat().st_size > LAYER_MB << 20
    print(f"peak RSS {peak_mb:.0f} MB (interpreter and imports: {baseline_mb:.0f} MB) "
          f"for {LAYER_MB} MB exported three ways")
    assert peak_mb < PEAK_BOUND_MB, (f"exporting a {LAYER_MB} MB layer peaked at {peak_mb:.0f} MB RSS "
                                     f"(bound {PEAK_BOUND_MB} MB): export no longer streams")


@pytest.mark.parametrize("size", [0, 5, 32 * 1024 + 1, (1 << 18) * 3 + 77])
def test_parallel_gzip_is_valid_and_independent_of_threads(size: int) -> None:
    data = (os.urandom(size // 2) + b"layer " * size)[:size]
    outputs = []
    for workers in (1, 2, 5):
        buf = io.BytesIO()
        writer = ParallelGzipWriter(buf, block_size=1 << 18, workers=workers)
        for i in range(0, size, 10_000):
            writer.write(data[i:i + 10_000])
        writer.close()
        outputs.append(buf.getvalue())
        assert gzip.decompress(buf.getvalue()) == data
    assert outputs[0] == outputs[1] == outputs[2]


def _tarfile_reference(members: list[tuple[tarfile.TarInfo, bytes | Path | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for info, body in members:
            if isinstance(body, Path):
                with open(body, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info, io.BytesIO(body) if body is not None else None)
    return buf.getvalue()


@pytest.mark.parametrize("sink", ["file", "pipe", "bytesio"])
def test_archive_writer_matches_tarfile_byte_for_byte(tmp_path: Path, sink: str) -> None:
    from solver.export.archive import TarStreamWriter
    blob = tmp_path / "blob"
    blob.write_bytes(os.urandom(3 * 1024 * 1024 + 123))
    members: list[tuple[tarfile.TarInfo, bytes | Path | None]] = []
    for name, body in (("blobs", None), ("blobs/sha256", None), ("blobs/sha256/" + "a" * 64, blob),
                       ("index.json", b'{"schemaVersion":2}'), ("oci-layout", b""), ("x" * 120, b"long name")):
        info = tarfile.TarInfo(name)
        if body is None:
            info.type, info.mode = tarfile.DIRTYPE, 0o755
        else:
            info.mode = 0o444
            info.size = body.stat().st_size if isinstance(body, Path) else len(body)
        members.append((info, body))
    want = _tarfile_reference(members)
    if sink == "bytesio":
        out = io.BytesIO()
        writer = TarStreamWriter(out)
        for info, body in members:
            writer.add(info, body)
        writer.close()
        assert out.getvalue() == want
        return
    if sink == "file":
        with open(tmp_path / "out.tar", "wb") as f:
            writer = TarStreamWriter(f)
            for info, body in members:
                writer.add(info, body)
            writer.close()
        assert (tmp_path / "out.tar").read_bytes() == want
        return
    reader = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=open(tmp_path / "piped.tar", "wb"))
    assert reader.stdin is not None
    writer = TarStreamWriter(reader.stdin)
    for info, body in members:
        writer.add(info, body)
    writer.close()
    reader.stdin.close()
    assert reader.wait() == 0
    assert (tmp_path / "piped.tar").read_bytes() == want
