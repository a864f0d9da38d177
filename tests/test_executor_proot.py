"""The proot executor with real proot on a busybox root filesystem."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
import threading
import time
from pathlib import Path

import pytest

from helpers_rootfs import busybox_available, make_busybox_rootfs, private_tmp_dir, unique_number
from solver.executor.base import ExecCancelledError, MountSpec, ProcessSpec, UserNotFoundError
from solver.executor.proot import ProotExecutor
from test_executor_runc import Capture, _pids_with


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    yield from private_tmp_dir()


@pytest.fixture(scope="module")
def executor() -> ProotExecutor:
    if shutil.which("proot") is None:
        pytest.skip("proot is not installed")
    if not busybox_available():
        pytest.skip("no static /bin/busybox to build a rootfs from")
    return ProotExecutor()


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    return make_busybox_rootfs(tmp_path / "rootfs")


def run(executor: ProotExecutor, rootfs: Path, script: str, **kw) -> tuple[int, Capture]:
    mounts = kw.pop("mounts", ())
    cap = Capture()
    code = executor.run(rootfs, ProcessSpec(["/bin/sh", "-c", script], **kw), mounts,
                        stdout=cap.stdout, stderr=cap.stderr, stdin=kw.pop("stdin", None))
    return code, cap


def test_echo_exit_code_and_stdin(executor: ProotExecutor, rootfs: Path) -> None:
    code, cap = run(executor, rootfs, "echo hi")
    assert code == 0 and cap.text == "hi\n"
    code, _ = run(executor, rootfs, "exit 3")
    assert code == 3
    cap = Capture()
    code = executor.run(rootfs, ProcessSpec(["/bin/sh", "-c", "tr a-z A-Z"]), stdout=cap.stdout,
                        stdin=b"abc\n")
    assert cap.text == "ABC\n"


def test_env_cwd_and_user(executor: ProotExecutor, rootfs: Path) -> None:
    code, cap = run(executor, rootfs, 'echo "$FOO|$(pwd)|$(id -u)|$HOME"; env | sort',
                    env=["FOO=bar"], cwd="/w/d", user="app")
    lines = cap.text.splitlines()
    assert lines[0] == "bar|/w/d|1000|/home/app"
    names = {line.split("=", 1)[0] for line in lines[1:]}
    assert names <= {"FOO", "HOME", "PATH", "PWD", "SHLVL"}  # nothing leaks from the host
    code, cap = run(executor, rootfs, "id -u; id -g")
    assert cap.text.split() == ["0", "0"]
    with pytest.raises(UserNotFoundError):
        run(executor, rootfs, "true", user="ghost")


def test_writes_stay_in_rootfs_and_mounts(executor: ProotExecutor, rootfs: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "f").write_text("host file\n")
    marker = f"llbook-proot-{os.getpid()}-{time.time_ns()}"
    code, cap = run(executor, rootfs, f"echo x > /tmp/{marker}; cat /data/f; echo y > /t/y; cat /t/y; "
                    "grep -c buildkitsandbox /etc/hosts",
                    mounts=[MountSpec("/data", str(data)), MountSpec("/t", type="tmpfs")])
    assert code == 0 and cap.text.split() == ["host", "file", "y", "1"]
    assert not Path(f"/tmp/{marker}").exists()
    assert (rootfs / "tmp" / marker).exists()
    # the mount points stay, empty, as docker build leaves them
    assert not os.listdir(rootfs / "data") and not os.listdir(rootfs / "t")


def test_ulimits_and_extra_hosts(executor: ProotExecutor, rootfs: Path) -> None:
    if shutil.which("prlimit") is None:
        pytest.skip("prlimit is not installed")
    code, cap = run(executor, rootfs, "ulimit -n; grep -w db /etc/hosts",
                    ulimits=(("nofile", 256, 300),), extra_hosts=(("db", "10.1.1.1"),))
    assert cap.text.splitlines() == ["256", "10.1.1.1\tdb"]


def test_network_none_is_reported(executor: ProotExecutor, rootfs: Path) -> None:
    code, cap = run(executor, rootfs, "true", network="none")
    assert code == 0 and b"not enforced" in cap.err


def test_cancel_kills_the_tree(executor: ProotExecutor, rootfs: Path) -> None:
    marker = unique_number()
    cancel = threading.Event()
    result: dict[str, object] = {}

    def target() -> None:
        try:
            result["code"] = executor.run(
                rootfs, ProcessSpec(["/bin/sh", "-c", f"sleep {marker} & sleep {marker}; wait"]),
                cancel=cancel)
        except BaseException as exc:  # noqa: BLE001
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while len(_pids_with(f"sleep\0{marker}")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_pids_with(f"sleep\0{marker}")) == 2
    finally:
        cancel.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert isinstance(result.get("error"), ExecCancelledError)
    time.sleep(0.1)
    assert _pids_with(f"sleep\0{marker}") == []


UNPRIVILEGED = """
import sys
sys.path.insert(0, sys.argv[1])
from solver.executor.proot import ProotExecutor
from solver.executor.base import ProcessSpec
out = bytearray()
code = ProotExecutor().run(sys.argv[2], ProcessSpec(
    ["/bin/sh", "-c", "id -u; touch /root-owned; ls -n /root-owned | cut -c1-30 | tr -s ' ' | cut -d' ' -f3"]),
    stdout=out.extend, stderr=out.extend)
sys.stdout.write(out.decode() + "code=%d\\n" % code)
"""


def test_proot_as_an_unprivileged_user(executor: ProotExecutor) -> None:
    """The binder case: no root at all; proot fakes it."""
    import subprocess
    import tempfile

    python = "/usr/bin/python3"
    if os.geteuid() != 0 or not shutil.which("setpriv") or not os.path.exists(python):
        pytest.skip("needs root (to drop to uid 1000 with setpriv) and a system python3")
    base = Path(tempfile.mkdtemp(prefix="llbook-proot-unpriv-"))
    try:
        make_busybox_rootfs(base / "rootfs")
        subprocess.run(["chown", "-R", "1000:1000", str(base)], check=True)
        os.chmod(base, 0o755)
        repo = str(Path(__file__).resolve().parents[1])
        proc = subprocess.run(["setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups",
                               "env", "-i", "PATH=/usr/bin:/bin", python, "-c", UNPRIVILEGED, repo,
                               str(base / "rootfs")],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["0", "0", "code=0"]
        assert os.stat(base / "rootfs" / "root-owned").st_uid == 1000  # really the user's
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_keyboard_interrupt_in_the_calling_thread(executor: ProotExecutor, rootfs: Path) -> None:
    import signal

    main = threading.get_ident()
    marker = unique_number()

    def interrupt_when_started() -> None:
        deadline = time.monotonic() + 10
        while not _pids_with(f"sleep\0{marker}") and time.monotonic() < deadline:
            time.sleep(0.05)
        signal.pthread_kill(main, signal.SIGINT)

    threading.Thread(target=interrupt_when_started, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        executor.run(rootfs, ProcessSpec(["/bin/sh", "-c", f"sleep {marker} & sleep {marker}; wait"]))
    time.sleep(0.1)
    assert _pids_with(f"sleep\0{marker}") == []
