"""A whole FileOp: BuildKit's action index rules, outputs and in-place reuse."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from solver.llb import pb
from solver.solve.fileops import FileOpResult, directory_factory, run_file_actions
from solver.errors import FileOpError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")


def mkdir(path: str, inp: int, out: int, **kw: object) -> pb.FileAction:
    return pb.FileAction(input=inp, secondary_input=-1, output=out,
                         action=pb.FileActionMkDir(path=path, mode=0o755, timestamp=-1, **kw))  # type: ignore[arg-type]


def mkfile(path: str, inp: int, out: int, data: bytes = b"", **kw: object) -> pb.FileAction:
    return pb.FileAction(input=inp, secondary_input=-1, output=out,
                         action=pb.FileActionMkFile(path=path, mode=0o644, data=data, timestamp=-1,
                                                    **kw))  # type: ignore[arg-type]


def copy(src: str, dest: str, inp: int, secondary: int, out: int, **kw: object) -> pb.FileAction:
    return pb.FileAction(input=inp, secondary_input=secondary, output=out,
                         action=pb.FileActionCopy(src=src, dest=dest, mode=-1, timestamp=-1,
                                                  create_dest_path=True, **kw))  # type: ignore[arg-type]


def tree(root: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        out += [os.path.relpath(os.path.join(dirpath, n), root) for n in dirnames + filenames]
    return sorted(out)


@pytest.fixture()
def base(tmp_path: Path) -> Path:
    b = tmp_path / "base"
    (b / "etc").mkdir(parents=True)
    (b / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nweb:x:80:81::/:/bin/false\n")
    (b / "etc/group").write_text("root:x:0:\nwww:x:90:\n")
    return b


@pytest.fixture()
def make(tmp_path: Path):
    made: list[Path | None] = []
    factory = directory_factory(tmp_path / "snapshots")

    def wrapped(b: Path | None) -> Path:
        made.append(b)
        return factory(b)

    wrapped.calls = made  # type: ignore[attr-defined]
    return wrapped


def test_mkdir_chain_inputs_0_1_2_outputs_minus1_minus1_0(base: Path, make) -> None:
    before = tree(base)
    actions = [mkdir("/a", 0, -1), mkdir("/a/b", 1, -1), mkdir("/a/b/c", 2, 0)]
    result = run_file_actions(actions, [base], make)
    assert isinstance(result, FileOpResult)
    [out] = result.outputs
    assert {"a", "a/b", "a/b/c"} <= set(tree(out))
    assert tree(base) == before  # the op input is never changed
    assert make.calls == [base]  # one copy of the input; the chain is changed in place
    assert result.scratch == []


def test_copy_from_an_earlier_action_result(base: Path, make) -> None:
    actions = [
        mkdir("/gen", -1, -1),
        mkfile("/gen/hello.txt", 1, -1, b"hi"),
        copy("/gen/hello.txt", "/app/", 0, 2, 0),
    ]
    result = run_file_actions(actions, [base], make)
    [out] = result.outputs
    assert (out / "app/hello.txt").read_bytes() == b"hi"
    assert not (out / "gen").exists()
    assert len(result.scratch) == 1 and (result.scratch[0] / "gen/hello.txt").exists()


def test_copy_between_two_op_inputs(base: Path, tmp_path: Path, make) -> None:
    other = tmp_path / "other"
    (other / "etc").mkdir(parents=True)
    (other / "etc/foo").write_text("foo")
    result = run_file_actions([copy("/etc/foo", "/tmp/bar", 0, 1, 0)], [base, other], make)
    assert (result.outputs[0] / "tmp/bar").read_text() == "foo"
    assert (result.outputs[0] / "etc/passwd").exists()


def test_scratch_input_and_scratch_source(base: Path, make) -> None:
    result = run_file_actions([mkfile("/f", -1, 0, b"x")], [], make)
    assert tree(result.outputs[0]) == ["f"]
    with pytest.raises(FileOpError, match='file action 0: "/nope": not found'):
        run_file_actions([copy("/nope", "/", 0, -1, 0)], [base], make)


def test_shared_result_is_not_changed_in_place(base: Path, make) -> None:
    actions = [mkdir("/x", 0, -1), mkfile("/x/a", 1, 0), mkfile("/x/b", 1, 1)]
    result = run_file_actions(actions, [base], make)
    first, second = result.outputs
    assert (first / "x/a").exists() and not (first / "x/b").exists()
    assert (second / "x/b").exists() and not (second / "x/a").exists()
    assert len(result.scratch) == 1 and (result.scratch[0] / "x").is_dir()


def test_output_used_again_is_copied_not_changed(base: Path, make) -> None:
    actions = [mkfile("/one", 0, 0), mkfile("/two", 1, 1)]
    first, second = run_file_actions(actions, [base], make).outputs
    assert (first / "one").exists() and not (first / "two").exists()
    assert (second / "one").exists() and (second / "two").exists()


def test_unreferenced_actions_do_not_run(base: Path, make) -> None:
    actions = [pb.FileAction(input=0, secondary_input=-1, output=-1,
                             action=pb.FileActionRm(path="/missing")),
               mkfile("/ok", 0, 0)]
    result = run_file_actions(actions, [base], make)
    assert (result.outputs[0] / "ok").exists()


def test_chown_names_from_an_input(base: Path, make) -> None:
    owner = pb.ChownOpt(user=pb.UserOpt(user=pb.NamedUserOpt(name="web", input=0)),
                        group=pb.UserOpt(user=pb.NamedUserOpt(name="www", input=0)))
    result = run_file_actions([mkfile("/f", -1, 0, owner=owner)], [base], make)
    st = os.lstat(result.outputs[0] / "f")
    assert (st.st_uid, st.st_gid) == (80, 90)


def test_chown_names_from_an_action_result(base: Path, make) -> None:
    passwd = b"svc:x:300:301::/:/bin/false\n"
    owner = pb.ChownOpt(user=pb.UserOpt(user=pb.NamedUserOpt(name="svc", input=2)))
    actions = [mkdir("/etc", -1, -1), mkfile("/etc/passwd", 1, -1, passwd),
               mkfile("/f", 0, 0, owner=owner)]
    st = os.lstat(run_file_actions(actions, [base], make).outputs[0] / "f")
    assert (st.st_uid, st.st_gid) == (300, 301)


def test_negative_user_index_is_an_error(base: Path, make) -> None:
    owner = pb.ChownOpt(user=pb.UserOpt(user=pb.NamedUserOpt(name="web", input=-1)))
    with pytest.raises(FileOpError, match="invalid user index: -1"):
        run_file_actions([mkfile("/f", 0, 0, owner=owner)], [base], make)


@pytest.mark.parametrize("actions, message", [
    ([mkdir("/a", 5, 0)], "invalid input index 5, 2 provided"),
    ([mkdir("/a", -2, 0)], "invalid input index -2"),
    ([mkdir("/a", 0, 0), mkdir("/b", 0, 0)], "duplicate output 0"),
    ([mkdir("/a", 0, -1)], "no outputs specified"),
    ([mkdir("/a", 0, 1)], "missing output index 0"),
    ([mkdir("/a", 2, -1), mkdir("/b", 1, 0)], "loop from index"),
])
def test_invalid_index_layouts(base: Path, make, actions: list[pb.FileAction], message: str) -> None:
    with pytest.raises(FileOpError, match=message):
        run_file_actions(actions, [base], make)


def test_errors_name_the_action(base: Path, make) -> None:
    actions = [mkdir("/a", 0, -1), mkdir("/x/y/z", 1, 0)]
    with pytest.raises(FileOpError) as info:
        run_file_actions(actions, [base], make)
    assert info.value.action_index == 1
    assert str(info.value) == "file action 1: mkdir /x/y/z: No such file or directory"


# ----------------------------------------------------------------- with FileOps built by the State API


def _file_op(state) -> tuple[pb.FileOp, int]:
    op = state.op()
    assert isinstance(op.op, pb.FileOp)
    return op.op, len(op.inputs)


def test_state_api_mkdir_chain(make) -> None:
    from solver import llb

    st = llb.scratch().file(llb.mkdir("/a", 0o700).mkdir("/a/b", 0o700).mkdir("/a/b/c", 0o700))
    file_op, n_inputs = _file_op(st)
    assert [(a.input, a.secondary_input, a.output) for a in file_op.actions] == [(-1, -1, -1), (0, -1, -1),
                                                                                  (1, -1, 0)]
    assert n_inputs == 0
    [out] = run_file_actions(file_op.actions, [], make).outputs
    assert tree(out) == ["a", "a/b", "a/b/c"]


def test_state_api_copy_from_local_and_from_an_action(tmp_path: Path, make) -> None:
    from solver import llb

    ctx = tmp_path / "ctx"
    (ctx / "src").mkdir(parents=True)
    (ctx / "src/main.c").write_text("int main;")
    generated = llb.mkdir("/gen", 0o755).mkfile("/gen/version", 0o644, "1.0").with_state(llb.scratch())
    st = llb.scratch().file(
        llb.copy(llb.local("context", session="s"), "/src/*.c", "/app/", allow_wildcard=True,
                 create_dest_path=True)
        .copy(generated, "/gen/version", "/app/VERSION", create_dest_path=True)
        .symlink("VERSION", "/app/current"))
    file_op, n_inputs = _file_op(st)
    assert n_inputs == 1
    [out] = run_file_actions(file_op.actions, [ctx], make).outputs
    assert (out / "app/main.c").read_text() == "int main;"
    assert (out / "app/VERSION").read_text() == "1.0"
    assert os.readlink(out / "app/current") == "VERSION"
    assert not (out / "gen").exists()
