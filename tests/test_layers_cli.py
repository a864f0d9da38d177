"""`llbook layers` on real images: busybox images built by `llbook build` (runc) and written
as a docker archive, an OCI layout and pushed to a local docker-registry; dive's CI gates
from a `.dive-ci` file (exit 1 with dive's wording on a wasteful image, 0 on a lean one),
sorting by size, file previews (text, hex, symlink), the diff of two images, the platform
of a multi-platform index, CSV/JSON export and `--result` from the build history."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

if os.geteuid() != 0:
    pytest.skip("llbook build with runc needs root here", allow_module_level=True)

LLBOOK = [sys.executable, "-m", "solver.cli"]
ROOT = Path(__file__).resolve().parents[1]
BLOB = 300_000

WASTEFUL = ("FROM busybox\n"
            f"RUN dd if=/dev/zero of=/blob bs=1000 count={BLOB // 1000} && echo 'hello layers' > /etc/greeting\n"
            f"RUN dd if=/dev/zero of=/blob bs=1000 count={BLOB // 1000}\n"
            "RUN rm /blob && ln -s /etc/greeting /greeting-link && printf '\\000\\001binary\\377' > /bin.dat\n")
LEAN = "FROM busybox\nRUN echo 'hello lean' > /etc/greeting\n"


def _env(registry_config) -> dict[str, str]:
    env = dict(os.environ)
    env.update(registry_config.env)
    env["PYTHONPATH"] = str(ROOT)
    env["LLBOOK_SERVER"] = "0"
    env.pop("CI", None)  # CI=true turns the gates on, as in dive; the tests say it where they mean it
    return env


def llbook(registry_config, *words: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*LLBOOK, *words], env=_env(registry_config), capture_output=True, text=True,
                          timeout=300, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"llbook {' '.join(words)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def images(registry_config, registry_with_busybox, tmp_path_factory) -> dict[str, str]:
    """The wasteful image as docker-archive, oci-layout and registry refs; the lean one as a docker archive."""
    base = tmp_path_factory.mktemp("layers")
    cache = base / "cache"
    out: dict[str, str] = {}
    for name, text in (("wasteful", WASTEFUL), ("lean", LEAN)):
        ctx = base / name
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(text)
        outputs = ["--output", f"type=docker,dest={base / name}.tar,name=llbook/{name}:1"]
        if name == "wasteful":
            outputs += ["--output", f"type=oci,dest={base / 'layout'},tar=false",
                        "--output", f"type=oci,dest={base / 'wasteful-oci.tar'}",
                        "--output", f"type=image,name={registry_with_busybox.host}/llbook/wasteful:1,push=true"]
        llbook(registry_config, "build", "--progress", "plain", "--cache-dir", str(cache), *outputs, str(ctx))
        out[name] = f"docker-archive://{base / name}.tar"
    out["layout"] = f"oci-layout://{base / 'layout'}"
    out["oci-tar"] = f"oci-layout://{base / 'wasteful-oci.tar'}"
    out["registry"] = f"{registry_with_busybox.host}/llbook/wasteful:1"
    out["busybox"] = f"{registry_with_busybox.host}/library/busybox:latest"
    out["cache"] = str(cache)
    return out


DIVE_CI = """\
rules:
  # If the efficiency is measured below X%, mark as failed. (expressed as a percentage between 0-1)
  lowestEfficiency: 0.95
  # If the amount of wasted space is at least X or larger than X, mark as failed.
  highestWastedBytes: 20Mb
  # If the amount of wasted space makes up for X% of the image, mark as failed.
  highestUserWastedPercent: 0.5
"""


@pytest.mark.parametrize("kind", ["wasteful", "layout", "registry"])
def test_ci_gates_fail_a_wasteful_image_with_dives_wording(registry_config, images, tmp_path: Path, kind: str):
    (tmp_path / ".dive-ci").write_text(DIVE_CI)
    proc = llbook(registry_config, "layers", "--ci", images[kind], cwd=tmp_path, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "Analysis:\n  efficiency:        " in out
    wasted = 2 * BLOB  # written twice, then removed (a removed file costs nothing, as in dive)
    assert f"  wastedBytes:       {wasted} bytes (600 kB)" in out
    assert "  userWastedPercent: 100.00 %" in out  # 600,000 of the 600,013 user bytes
    assert "Inefficient Files:\n  Count  Wasted Space  File Path\n  3      600 kB        /blob" in out
    assert "  FAIL  lowestEfficiency (image efficiency is too low (efficiency=0." in out
    assert "< threshold=0.95)" in out
    assert "  PASS  highestWastedBytes (20Mb)" in out
    assert ("  FAIL  highestUserWastedPercent (too many bytes wasted, relative to the user bytes added "
            "(%-user-wasted-bytes=1.00 > threshold=0.5))") in out
    assert out.rstrip().endswith("FAIL [pass:1 fail:2]")


def test_ci_gates_pass_a_lean_image_and_read_ci_config(registry_config, images, tmp_path: Path):
    proc = llbook(registry_config, "layers", "--ci", images["lean"], cwd=tmp_path)  # no .dive-ci: dive's defaults
    assert "  PASS  lowestEfficiency (0.9)" in proc.stdout
    assert "  SKIP  highestWastedBytes (disabled)" in proc.stdout
    assert "Inefficient Files: (None)" in proc.stdout
    assert proc.stdout.rstrip().endswith("PASS [pass:2 skip:1]")
    rules = tmp_path / "strict.yaml"
    rules.write_text("rules:\n  highestWastedBytes: 1KB\n  lowestEfficiency: off\n")
    proc = llbook(registry_config, "layers", "--ci", "--ci-config", str(rules), images["wasteful"], check=False)
    assert proc.returncode == 1
    assert f"  FAIL  highestWastedBytes (too many bytes wasted (wasted-bytes={2 * BLOB} > threshold=1000))" in proc.stdout
    assert "  SKIP  lowestEfficiency (disabled)" in proc.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  lowestEfficiency: 2\n")
    proc = llbook(registry_config, "layers", "--ci", "--ci-config", str(bad), images["lean"], check=False)
    assert proc.returncode == 1
    assert "lowestEfficiency config value is outside allowed range (0-1), given '2.000000'" in proc.stderr


@pytest.mark.parametrize("word", ["true", "1", "TRUE"])
def test_ci_environment_variable_turns_the_gates_on_as_in_dive(registry_config, images, tmp_path: Path, word: str):
    (tmp_path / ".dive-ci").write_text(DIVE_CI)
    env = {**_env(registry_config), "CI": word}
    proc = subprocess.run([*LLBOOK, "layers", images["wasteful"]], env=env, cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.rstrip().endswith("FAIL [pass:1 fail:2]")
    env["CI"] = "no"  # not one of Go's true words: the ordinary view
    proc = subprocess.run([*LLBOOK, "layers", images["wasteful"]], env=env, cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Evaluation:" not in proc.stdout and proc.stdout.startswith("Image: ")


def test_layers_sorted_by_size_and_tree(registry_config, images):
    proc = llbook(registry_config, "layers", "--sort", "size", "--tree", "--layer", "1", "--changes", images["wasteful"])
    lines = proc.stdout.splitlines()
    table = lines[2:6]
    assert [l.split()[0] for l in table] == ["0", "1", "2", "3"]  # base 2 MB, two 300 kB dd layers, the 9 B rm
    small = llbook(registry_config, "layers", "--sort", "size", images["lean"]).stdout.splitlines()[2:4]
    assert [l.split()[0] for l in small] == ["0", "1"]
    assert "rm /blob" in table[-1] and table[-1].split()[1:3] == ["9", "B"]
    files = lines[lines.index("Files of layer 1 (its changes):") + 1:]
    assert files[0].endswith(" 300 kB  blob  [added]")
    assert files[1].endswith("13 B  etc/  [modified]") and files[2].endswith("13 B    greeting  [added]")


def test_preview_text_binary_and_symlink(registry_config, images):
    text = llbook(registry_config, "layers", "--cat", "/etc/greeting", images["wasteful"]).stdout
    assert text == "hello layers\n"
    link = llbook(registry_config, "layers", "--cat", "/greeting-link", images["layout"]).stdout
    assert link == "/greeting-link -> /etc/greeting\n"
    binary = llbook(registry_config, "layers", "--cat", "/bin.dat", images["registry"]).stdout
    assert binary.startswith("00000000  00 01 62 69 6e 61 72 79  ff")
    assert "|..binary.|" in binary
    capped = llbook(registry_config, "layers", "--cat", "/etc/passwd", "--cap", "5", images["lean"]).stdout
    assert capped.startswith("root:\n[… truncated at 5 of ")
    gone = llbook(registry_config, "layers", "--cat", "/blob", images["wasteful"]).stdout
    assert "/blob is not in layer 3's filesystem" in gone
    earlier = llbook(registry_config, "layers", "--cat", "/blob", "--layer", "1", "--cap", "4", images["wasteful"]).stdout
    assert earlier.startswith("00000000  00 00 00 00")


def test_diff_of_two_images(registry_config, images):
    out = llbook(registry_config, "layers", images["lean"], "--diff", images["wasteful"]).stdout
    lines = out.splitlines()
    assert lines[0].endswith("2 added, 0 removed, 1 changed"), out
    assert any(l.split() == ["added", "-", "→", "9", "B", "/bin.dat"] for l in lines), out
    assert any(l.split()[:1] == ["added"] and l.endswith("/greeting-link") for l in lines), out
    assert any(l.split() == ["changed", "11", "B", "→", "13", "B", "/etc/greeting", "(content,size)"] for l in lines), out
    for other in ("registry", "oci-tar"):
        same = llbook(registry_config, "layers", images["wasteful"], "--diff", images[other]).stdout
        assert same.splitlines()[0].endswith("0 added, 0 removed, 0 changed"), same


def test_platform_of_a_multi_platform_image(registry_config, images):
    arm = llbook(registry_config, "layers", "--platform", "linux/arm64", images["busybox"]).stdout
    assert arm.splitlines()[0].endswith("(linux/arm64)")
    amd = llbook(registry_config, "layers", "--platform", "linux/amd64", images["busybox"]).stdout
    assert amd.splitlines()[0].endswith("(linux/amd64)")
    missing = llbook(registry_config, "layers", "--platform", "linux/s390x", images["busybox"], check=False)
    assert missing.returncode == 1 and "linux/s390x" in missing.stderr


def test_export_csv_and_json(registry_config, images, tmp_path: Path):
    target = tmp_path / "tree.csv"
    llbook(registry_config, "layers", "--export", str(target), "--sort", "size", images["wasteful"])
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert list(rows[0]) == ["path", "kind", "type", "size", "mode", "uid", "gid", "link"]
    by_path = {r["path"]: r for r in rows}
    assert by_path["/blob"]["kind"] == "removed"
    assert by_path["/greeting-link"]["link"] == "/etc/greeting"
    top = [r for r in rows if r["path"].count("/") == 1]
    assert [int(r["size"]) for r in top] == sorted((int(r["size"]) for r in top), reverse=True)
    data = json.loads(llbook(registry_config, "layers", "--format", "json", images["layout"]).stdout)
    assert data["totals"]["wasted"] == 2 * BLOB
    assert len(data["layers"]) == 4 and data["platform"]
    assert {"path": "/etc/greeting", "kind": "unmodified", "type": "file", "size": 13, "mode": "-rw-r--r--",
            "uid": 0, "gid": 0, "link": ""} in data["files"]


def test_result_from_history(registry_config, images, tmp_path: Path):
    out = llbook(registry_config, "layers", "--result", "--cache-dir", images["cache"]).stdout
    assert out.startswith("Image: build ")
    assert "echo 'hello lean'" in out
    # the build's result (snapshots) and its exported image (tar blobs) hold the same files
    same = llbook(registry_config, "layers", "--result", "^1", "--cache-dir", images["cache"],
                  "--diff", images["wasteful"]).stdout
    assert same.splitlines()[0].endswith("0 added, 0 removed, 0 changed"), same
    diff = llbook(registry_config, "layers", "--result", "^1", "--cache-dir", images["cache"],
                  "--diff-result", "^0").stdout
    assert "/bin.dat" in diff and "removed" in diff
    ci = llbook(registry_config, "layers", "--ci", "--result", "^1", "--cache-dir", images["cache"],
                cwd=tmp_path, check=False)
    assert ci.returncode == 1 and "FAIL  highestUserWastedPercent" in ci.stdout
