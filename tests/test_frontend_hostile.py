"""Hostile Dockerfiles against the frontend (issue 18 points 3, 4, 6; issue 13 point 4):
deep nesting, many instructions, binary files, huge lines, thousands of stages. Each ends in
a DockerfileError with a file and line, or in success; each test prints what it measured."""

from __future__ import annotations

import time

import pytest

from solver.errors import DockerfileError
from solver.frontend import Lowering, LoweringOptions, dockerfile_to_llb
from solver.frontend.shell_words import MAX_NESTING, Lexer


def _nested(depth: int) -> str:
    return "${a:-" * depth + "x" + "}" * depth


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 5000])
def test_deep_nesting_is_a_dockerfile_error_with_a_line(depth: int):
    text = f"FROM scratch\nENV a=\nENV b={_nested(depth)}\n"
    with pytest.raises(DockerfileError) as info:
        dockerfile_to_llb(text)
    err = info.value
    print(f"nesting {depth}: {err.filename}:{err.line}, message {len(err.message)} chars")
    assert err.line == 3 and err.filename == "Dockerfile"
    assert f"nested more than {MAX_NESTING} levels" in err.message
    assert len(err.message) < 1000  # the 30 KB word is shortened in the message


@pytest.mark.parametrize("instruction", ["RUN echo", "LABEL l=", "COPY", "WORKDIR /"])
def test_deep_nesting_in_other_instructions_never_crashes(instruction: str):
    text = f"FROM scratch\nENV a=\n{instruction}{_nested(5000)} /x\n"
    try:
        dockerfile_to_llb(text)
    except DockerfileError as err:
        assert err.line == 3, err


def test_nesting_below_the_bound_still_expands():
    assert Lexer().process_word(_nested(MAX_NESTING - 1), {}) == "x"
    assert Lexer().process_word(_nested(MAX_NESTING - 1), {"a": "set"}) == "set"


def test_snapshots_after_each_instruction_keep_their_values():
    # The records share the growing lists and mappings of the live config (no copy per
    # instruction): a later change must not show through in an earlier snapshot.
    lowering = Lowering(LoweringOptions(follow_paths=False))
    lowering.add_snippet("FROM scratch\nENV A=1\nLABEL l=1\nEXPOSE 80\nENV B=2\nENV A=3\nLABEL l=2 m=1\n"
                         "EXPOSE 81\nVOLUME /v\n")
    first = lowering.image_config_after(2)
    assert first["config"]["Env"][-1] == "A=1" and first["config"]["Labels"] == {"l": "1"}
    assert len(first["history"]) == 2 and "Volumes" not in first["config"]
    middle = lowering.image_config_after(4)
    assert middle["config"]["Env"][-2:] == ["A=1", "B=2"] and middle["config"]["ExposedPorts"] == {"80/tcp": {}}
    last = lowering.image_config_after(8)
    assert "A=3" in last["config"]["Env"] and "A=1" not in last["config"]["Env"]
    assert last["config"]["Labels"] == {"l": "2", "m": "1"}
    assert last["config"]["ExposedPorts"] == {"80/tcp": {}, "81/tcp": {}} and last["config"]["Volumes"] == {"/v": {}}
    assert lowering.image_config_after(2) == first and len(last["history"]) == 8


def test_state_env_chain_keeps_go_order():
    lowering = Lowering(LoweringOptions(follow_paths=False))
    lowering.add_snippet("FROM scratch\nENV A=1 B=2\nENV A=3\nRUN true\n")
    env = lowering.stage_state().env_list()
    assert env[-2:] == ["B=2", "A=3"], env  # a replaced key moves to the end


def test_ten_thousand_instructions_lower():
    # Size only (no timing assert): the growth is shown by benchmarks/bench_lowering.py.
    lines = ["FROM scratch"] + [(f"ENV V{i}=v{i}", f"LABEL l{i}=x", f"EXPOSE {i + 1}")[i % 3] for i in range(10_000)]
    start = time.perf_counter()
    lowered = dockerfile_to_llb("\n".join(lines) + "\n")
    print(f"10,000 instructions lowered in {time.perf_counter() - start:.2f} s")
    config = lowered.image_config["config"]
    assert len(lowered.image_config["history"]) == 10_000
    assert len(config["Labels"]) == 3333 and len(config["ExposedPorts"]) == 3333


def test_thousands_of_stages_lower():
    stages = ["FROM scratch AS s0\nENV N=0\n"] + [f"FROM s{i - 1} AS s{i}\nENV N={i}\n" for i in range(1, 3000)]
    lowered = dockerfile_to_llb("".join(stages))
    print(f"3000 chained stages: {len(lowered.stages)} stages lowered")
    assert "N=2999" in lowered.image_config["config"]["Env"]


def test_huge_line_is_lowered_or_a_clear_error():
    text = "FROM scratch\nLABEL big=" + "x" * 2_000_000 + "\n"
    lowered = dockerfile_to_llb(text)
    assert len(lowered.image_config["config"]["Labels"]["big"]) == 2_000_000


def test_binary_dockerfile_names_file_line_and_offset(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from solver.frontend.textutil import decode_dockerfile

    with pytest.raises(DockerfileError) as info:
        decode_dockerfile(b"FROM scratch\nLABEL a=\xff\xfe\n", "ctx/Dockerfile")
    assert (info.value.filename, info.value.line) == ("ctx/Dockerfile", 2)
    assert "not a UTF-8 text file" in info.value.message and "offset 21" in info.value.message
    binary = Path("/bin/true").read_bytes()[:4096]
    (tmp_path / "Dockerfile").write_bytes(binary)
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-m", "solver.cli", "dump-llb", "-f", str(tmp_path / "Dockerfile"),
                           str(tmp_path)], capture_output=True, text=True, cwd=root, timeout=60)
    print(f"binary Dockerfile: exit {proc.returncode}, stderr {proc.stderr.strip()!r}")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"{tmp_path / 'Dockerfile'}:1: not a UTF-8 text file" in proc.stderr
    assert decode_dockerfile("FROM scratch\nLABEL a=ü\n".encode(), "D").endswith("ü\n")
