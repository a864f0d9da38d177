"""`llbook build --call=check,format=json`: the lint subrequest's result.json (BuildKit's
lint.LintResults) as buildx prints it, its exit status, and a build error in it; in
subprocesses with a loopback registry for the base image."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

from test_build_checks_cli import LLBOOK, env  # noqa: F401 - the fixture: loopback registry, fresh cache

# buildx's own --call=check,format=json test Dockerfile (tests/build.go): three warnings
BUILDX_CASE = "\nfrOM busybox as base\ncOpy Dockerfile .\nfrom scratch\nCOPy --from=base \\\n  /Dockerfile \\\n  /\n\t"
FIXED = 'FROM busybox AS base\nCMD ["true"]\n'


def project(tmp_path: Path, dockerfile: str, name: str = "Dockerfile") -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / name).write_text(dockerfile)
    return ctx


def check_json(env: dict[str, str], ctx: Path, *extra: str, call: str = "check,format=json"
               ) -> subprocess.CompletedProcess:
    return subprocess.run([*LLBOOK, "build", f"--call={call}", *extra, str(ctx)], env=env,
                          capture_output=True, text=True, timeout=300)


def test_warnings_as_lint_results_json(env, tmp_path):
    ctx = project(tmp_path, BUILDX_CASE)
    proc = check_json(env, ctx)
    assert proc.returncode == 1, proc.stderr  # result.statuscode 1: there are warnings
    data = json.loads(proc.stdout)
    assert set(data) == {"warnings", "sources"}  # no buildError
    assert len(data["warnings"]) == 3
    first = data["warnings"][0]
    assert set(first) == {"ruleName", "description", "url", "detail", "location"}
    assert {w["ruleName"] for w in data["warnings"]} == {"ConsistentInstructionCasing"}
    assert first["url"] == "https://docs.docker.com/go/dockerfile/rule/consistent-instruction-casing/"
    assert first["description"] == "All commands within the Dockerfile should use the same casing (either upper or lower)"
    # source index 0 and characters 0 are omitted, as Go's omitempty does
    assert first["location"] == {"ranges": [{"start": {"line": 2}, "end": {"line": 2}}]}
    assert data["sources"] == [{"filename": "Dockerfile", "language": "Dockerfile",
                                "data": base64.b64encode(BUILDX_CASE.encode()).decode()}]
    assert proc.stdout.startswith('{\n  "warnings": [\n    {\n      "ruleName": ')  # MarshalIndent, 2 spaces
    assert proc.stdout.endswith("}\n") and "Check complete" not in proc.stdout


def test_a_multiline_instruction_spans_its_lines(env, tmp_path):
    data = json.loads(check_json(env, project(tmp_path, BUILDX_CASE)).stdout)
    copy = [w for w in data["warnings"] if w["location"]["ranges"][0]["start"]["line"] == 5]
    assert copy and copy[0]["location"]["ranges"][0]["end"] == {"line": 7}


def test_no_warnings_is_null_and_exit_0(env, tmp_path):
    proc = check_json(env, project(tmp_path, FIXED))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data["warnings"] is None  # Go marshals the nil slice as null
    assert '"warnings": null' in proc.stdout


def test_ignorestatus_exits_0_with_warnings(env, tmp_path):
    proc = check_json(env, project(tmp_path, BUILDX_CASE), call="check,format=json,ignorestatus=true")
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["warnings"]) == 3


def test_lint_alias_and_dockerfile_name_is_the_base_name(env, tmp_path):
    ctx = project(tmp_path, "FROM busybox as base\n", name="app.Dockerfile")
    proc = check_json(env, ctx, "-f", str(ctx / "app.Dockerfile"), call="lint,format=json")
    data = json.loads(proc.stdout)
    assert data["sources"][0]["filename"] == "app.Dockerfile"
    assert [w["ruleName"] for w in data["warnings"]] == ["FromAsCasing"]
    assert data["warnings"][0]["detail"] == "'as' and 'FROM' keywords' casing do not match"


def test_build_error_in_the_json_and_on_stderr(env, tmp_path):
    proc = check_json(env, project(tmp_path, "FROM scratch AS BadName\nMAINTAINER me\nBADCMD\n"),
                      call="check,format=json,ignorestatus=true")
    assert proc.returncode == 1  # a build error fails even with ignorestatus, as buildx returns it
    data = json.loads(proc.stdout)
    assert {w["ruleName"] for w in data["warnings"]} == {"StageNameCasing", "MaintainerDeprecated"}
    error = data["buildError"]
    assert "unknown instruction: BADCMD" in error["message"]
    assert error["location"] == {"ranges": [{"start": {"line": 3}, "end": {"line": 3}}]}
    assert "unknown instruction: BADCMD" in proc.stderr and "   3 | >>> BADCMD" in proc.stderr
