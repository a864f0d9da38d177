"""FileOps without root (the binder case): best-effort owners, owner access, no device nodes.

Runs a script as uid 1000 with ``setpriv`` and the system python (which also shows that
the file actions work without the optional ``zstandard`` package installed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

PYTHON = "/usr/bin/python3"

SCRIPT = r"""
import io, json, os, stat, sys, tarfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from solver.llb import pb
from solver.solve.fileops import apply_action, directory_factory, run_file_actions

base = Path(sys.argv[2])
src, dest = base / "src", base / "dest"
(src / "ro").mkdir(parents=True)
(src / "ro/f").write_text("x")
os.chmod(src / "ro/f", 0o444)
os.chmod(src / "ro", 0o555)
dest.mkdir()

def mode(p):
    return oct(stat.S_IMODE(os.lstat(p).st_mode))

out = {}
chown0 = pb.ChownOpt(user=pb.UserOpt(user=0), group=pb.UserOpt(user=0))
apply_action(pb.FileActionCopy(src="/ro", dest="/ro", mode=-1, timestamp=-1, owner=chown0,
                               create_dest_path=True, dir_copy_contents=True), dest, src)
out["copy"] = [mode(dest / "ro"), mode(dest / "ro/f"), os.lstat(dest / "ro/f").st_uid]
apply_action(pb.FileActionMkFile(path="/ro/new", mode=0o400, data=b"n", timestamp=-1), dest)
out["mkfile"] = mode(dest / "ro/new")
apply_action(pb.FileActionMkDir(path="/locked", mode=0o500, timestamp=-1, owner=chown0), dest)
apply_action(pb.FileActionMkDir(path="/locked/inner", mode=0o755, timestamp=-1), dest)
out["mkdir"] = [mode(dest / "locked"), (dest / "locked/inner").is_dir()]

buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as tar:
    for name, kind, m in (("d", tarfile.DIRTYPE, 0o500), ("d/f", tarfile.REGTYPE, 0o400),
                          ("null", tarfile.CHRTYPE, 0o666), ("p", tarfile.FIFOTYPE, 0o600)):
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.uid = kind, m, 0
        if kind == tarfile.CHRTYPE:
            info.devmajor, info.devminor = 1, 3
        tar.addfile(info, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
(src / "a.tar").write_bytes(buf.getvalue())
apply_action(pb.FileActionCopy(src="/a.tar", dest="/x/", mode=-1, timestamp=-1, create_dest_path=True,
                               attempt_unpack_docker_compatibility=True), dest, src)
out["unpack"] = [mode(dest / "x/d"), mode(dest / "x/d/f"), os.path.lexists(dest / "x/null"),
                 stat.S_ISFIFO(os.lstat(dest / "x/p").st_mode)]

snaps = base / "snaps"
result = run_file_actions(
    [pb.FileAction(input=0, secondary_input=-1, output=-1,
                   action=pb.FileActionMkDir(path="/a", mode=0o500, timestamp=-1)),
     pb.FileAction(input=1, secondary_input=-1, output=0,
                   action=pb.FileActionMkFile(path="/a/b", mode=0o644, data=b"", timestamp=-1))],
    [dest], directory_factory(snaps))
out["run"] = sorted(os.listdir(result.outputs[0] / "a"))
print(json.dumps(out))
"""


def test_file_actions_work_without_root() -> None:
    if os.geteuid() != 0 or not shutil.which("setpriv") or not os.path.exists(PYTHON):
        pytest.skip("needs root (to drop to uid 1000 with setpriv) and a system python3")
    base = Path(tempfile.mkdtemp(prefix="llbook-fileops-unpriv-"))
    try:
        os.chown(base, 1000, 1000)
        repo = str(Path(__file__).resolve().parents[1])
        proc = subprocess.run(["setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups",
                               PYTHON, "-c", SCRIPT, repo, str(base)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        assert out["copy"] == ["0o755", "0o644", 1000]  # owner access added, chown to 0 skipped
        assert out["mkfile"] == "0o600"
        assert out["mkdir"] == ["0o700", True]
        assert out["unpack"] == ["0o700", "0o600", False, True]  # no device node, FIFO kept
        assert out["run"] == ["b"]
    finally:
        shutil.rmtree(base, ignore_errors=True)
