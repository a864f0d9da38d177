"""The incremental Lowering the notebook session uses: snippets appended to stages, the state
and image config after any instruction, traceability to cell and line."""

import pytest

from solver.errors import DockerfileError
from solver.frontend import Lowering, LoweringOptions
from solver.frontend.convert import convert_dockerfile
from solver.frontend.instructions import parse_instructions
from solver.frontend.parser import parse_dockerfile
from solver.llb import pb

OPTIONS = dict(session_id="sess", platform=None, follow_paths=False)


def options(**kw):
    values = dict(OPTIONS)
    values.update(kw)
    return LoweringOptions(**values)


CELLS = [
    ("cell-1", "FROM busybox AS base\nENV A=1\n"),
    ("cell-2", "WORKDIR /app\nCOPY . .\n"),
    ("cell-3", "RUN echo $A > /f\nCMD cat /f\n"),
]


def build(cells=CELLS, **kw):
    lowering = Lowering(options(**kw))
    for name, text in cells:
        lowering.add_snippet(text, name)
    return lowering


def test_records_carry_cell_and_line():
    lowering = build()
    assert [(r.instruction.keyword, r.filename, r.line, r.stage) for r in lowering.records] == [
        ("FROM", "cell-1", 1, "base"), ("ENV", "cell-1", 2, "base"),
        ("WORKDIR", "cell-2", 1, "base"), ("COPY", "cell-2", 2, "base"),
        ("RUN", "cell-3", 1, "base"), ("CMD", "cell-3", 2, "base")]


def test_state_after_each_instruction_matches_whole_file_prefix():
    lowering = build()
    text = "".join(t for _, t in CELLS)
    instructions = parse_instructions(parse_dockerfile(text))
    for index in range(len(instructions)):
        prefix = "".join(i.code + "\n" for i in instructions[:index + 1])
        whole = convert_dockerfile(prefix, options=options())
        expected = whole.lowering.stages["base"].state
        assert lowering.state_after(index).digest("linux/amd64") == expected.digest("linux/amd64"), index


def test_image_config_after_each_instruction():
    lowering = build()
    assert lowering.image_config_after(1)["config"]["Env"][-1] == "A=1"
    assert "Cmd" not in lowering.image_config_after(4)["config"]
    assert lowering.image_config_after(5)["config"]["Cmd"] == ["/bin/sh", "-c", "cat /f"]
    assert len(lowering.image_config_after(3)["history"]) == 3


def test_relowering_from_a_point_is_identical():
    lowering = build()
    again = Lowering(options())
    for record in lowering.records[:4]:
        again.add_instruction(record.instruction, record.stage)
    assert again.stage_state("base").digest("linux/amd64") == lowering.state_after(3).digest("linux/amd64")
    again.add_snippet("RUN echo changed\n", "cell-3")
    assert again.stage_state().digest("linux/amd64") != lowering.state_after(4).digest("linux/amd64")


def test_stage_argument_and_second_stage():
    lowering = build()
    lowering.add_snippet("FROM busybox AS other\nRUN echo other\n", "cell-4")
    lowering.add_snippet("RUN echo more\n", "cell-5", stage="base")
    assert lowering.current == "base"
    other = lowering.stage_state("other").op("linux/amd64")
    assert other.op.meta.args[-1] == "echo other"
    assert lowering.stage_state("base").op("linux/amd64").op.meta.args[-1] == "echo more"
    lowering.add_snippet("COPY --from=other /f /g\n", "cell-6", stage="base")
    copy = lowering.stage_state("base").op("linux/amd64")
    assert isinstance(copy.op, pb.FileOp)


def test_vertex_names_map_back_to_records():
    lowering = build()
    run = lowering.records[4]
    assert run.vertex_names == ["[base 4] RUN echo 1 > /f"]
    definition = lowering.state_after(4).marshal("linux/amd64")
    names = {md.description.get("llb.customname") for md in definition.metadata.values()}
    assert run.vertex_names[0] in names


def test_global_args_before_first_from():
    lowering = Lowering(options(build_args={"TAG": "1.36"}))
    lowering.add_snippet("ARG TAG=latest\nFROM busybox:$TAG\n", "cell-1")
    assert lowering.stage_state().op("linux/amd64").op.identifier == "docker-image://docker.io/library/busybox:1.36"


def test_errors_name_the_cell_and_line():
    lowering = build()
    with pytest.raises(DockerfileError) as err:
        lowering.add_snippet("RUN ok\nCOPY --from=nowhere/Bad a b\n", "cell-9")
    assert (err.value.filename, err.value.line) == ("cell-9", 2)
    with pytest.raises(DockerfileError) as err:
        Lowering(options()).add_snippet("RUN echo no stage\n", "cell-1")
    assert "no build stage" in err.value.message and err.value.filename == "cell-1"
    with pytest.raises(DockerfileError) as err:
        lowering.add_snippet("RUN x\n", "cell-2", stage="missing")
    assert 'stage "missing" is not defined' in err.value.message


def test_definition_after_maps_vertices_to_cells():
    lowering = build()
    definition = lowering.definition_after(4, "linux/amd64")
    files = [i.filename for i in definition.source.infos]
    assert set(files) == {"cell-1", "cell-2", "cell-3"}
    located = {}
    for digest, locs in definition.source.locations.items():
        loc = locs.locations[0]
        located[definition.metadata[digest].description["llb.customname"]] = (
            files[loc.source_index], loc.ranges[0].start.line)
    assert located["[base 4] RUN echo 1 > /f"] == ("cell-3", 1)
    assert located["[base 3] COPY . ."] == ("cell-2", 2)
