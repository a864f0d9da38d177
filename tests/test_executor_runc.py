"""The runc executor with real containers on a busybox root filesystem."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
import shutil
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from helpers_rootfs import busybox_available, make_busybox_rootfs, private_tmp_dir, unique_number
from solver.executor.base import (
    ExecCancelledError,
    MountSpec,
    ProcessSpec,
    UserNotFoundError,
)
from solver.executor.runc import RuncExecutor

pytestmark = pytest.mark.root


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "runc tests run as root"
    if shutil.which("runc") is None:
        return "runc is not installed"
    if not busybox_available():
        return "no static /bin/busybox to build a rootfs from"
    return None


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    yield from private_tmp_dir()


@pytest.fixture(scope="module")
def executor() -> Iterator[RuncExecutor]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    for base in private_tmp_dir():
        yield RuncExecutor(state_root=base / "state", bundle_parent=base)


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    return make_busybox_rootfs(tmp_path / "rootfs")


class Capture:
    def __init__(self) -> None:
        self.out = bytearray()
        self.err = bytearray()

    def stdout(self, data: bytes) -> None:
        self.out += data

    def stderr(self, data: bytes) -> None:
        self.err += data

    @property
    def text(self) -> str:
        return self.out.decode()


def run(executor: RuncExecutor, rootfs: Path, script: str, **kw) -> tuple[int, Capture]:
    mounts = kw.pop("mounts", ())
    stdin = kw.pop("stdin", None)
    cap = Capture()
    code = executor.run(rootfs, ProcessSpec(["/bin/sh", "-c", script], **kw), mounts,
                        stdout=cap.stdout, stderr=cap.stderr, stdin=stdin)
    return code, cap


def _mount_count(mentioning: str | Path = "/") -> int:
    """Mounts of this mount namespace that mention ``mentioning`` (a test's own paths:
    other processes on the machine may mount and unmount meanwhile)."""
    with open("/proc/self/mountinfo") as f:
        return sum(1 for line in f if str(mentioning) in line)


def _pids_with(marker: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                pids.append(int(entry))
    return pids


def test_failing_output_callback_does_not_block_the_run(executor: RuncExecutor, rootfs: Path) -> None:
    def broken(data: bytes) -> None:
        raise ValueError("a widget that cannot render")

    spec = ProcessSpec(["/bin/sh", "-c", "head -c 300000 /dev/zero; echo done >&2"])
    err = bytearray()
    assert executor.run(rootfs, spec, stdout=broken, stderr=err.extend) == 0
    assert err == b"done\n"


def test_echo_and_exit_codes(executor: RuncExecutor, rootfs: Path) -> None:
    code, cap = run(executor, rootfs, "echo hi; echo oops >&2")
    assert code == 0 and cap.text == "hi\n" and cap.err == b"oops\n"
    code, _ = run(executor, rootfs, "exit 7")
    assert code == 7
    spec = ProcessSpec(["/bin/false"], valid_exit_codes=(0, 1))
    assert spec.exit_ok(executor.run(rootfs, spec))


def test_env_cwd_user_and_hostname(executor: RuncExecutor, rootfs: Path) -> None:
    code, cap = run(executor, rootfs, 'echo "$FOO|$(pwd)|$(id -u)|$(id -g)|$(id -G)|$(hostname)|$HOME"',
                    env=["FOO=bar"], cwd="/work/dir", user="app")
    assert code == 0
    assert cap.text.strip() == "bar|/work/dir|1000|1000|1000 50|buildkitsandbox|/home/app"
    assert (rootfs / "work" / "dir").is_dir()
    code, cap = run(executor, rootfs, "id -u; id -g; id -G", user="1000:50")
    assert cap.text.split() == ["1000", "50", "50"]
    code, cap = run(executor, rootfs, "id -u; id -g", user="4242")
    assert cap.text.split() == ["4242", "0"]
    code, cap = run(executor, rootfs, "echo $PATH")
    assert cap.text.strip() == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    with pytest.raises(UserNotFoundError, match="nobody-here"):
        run(executor, rootfs, "true", user="nobody-here")
    with pytest.raises(UserNotFoundError, match="nogroup"):
        run(executor, rootfs, "true", user="app:nogroup")


def test_extra_hosts_and_ulimits(executor: RuncExecutor, rootfs: Path) -> None:
    code, cap = run(executor, rootfs, "cat /etc/hosts; ulimit -n; ulimit -Hn",
                    extra_hosts=(("db", "10.0.0.5"), ("cache", "10.0.0.6")), ulimits=(("nofile", 512, 700),))
    lines = cap.text.splitlines()
    assert lines[:2] == ["127.0.0.1\tlocalhost buildkitsandbox", "::1\tlocalhost ip6-localhost ip6-loopback"]
    assert lines[2:] == ["10.0.0.5\tdb", "10.0.0.6\tcache", "512", "700"]


def test_stdin(executor: RuncExecutor, rootfs: Path) -> None:
    code, cap = run(executor, rootfs, "tr a-z A-Z", stdin=b"hello\n")
    assert code == 0 and cap.text == "HELLO\n"


def test_network_none_has_only_loopback(executor: RuncExecutor, rootfs: Path) -> None:
    code, cap = run(executor, rootfs, "ls /sys/class/net", network="none")
    assert code == 0 and cap.text.split() == ["lo"]
    code, cap = run(executor, rootfs, "cat /proc/net/dev", network="none")
    names = [line.split(":")[0].strip() for line in cap.text.splitlines()[2:]]
    assert names == ["lo"]
    host = sorted(os.listdir("/sys/class/net"))
    code, cap = run(executor, rootfs, "ls /sys/class/net", network="host")
    assert sorted(cap.text.split()) == host
    code, cap = run(executor, rootfs, "ls /sys/class/net")  # the default: its own, with slirp4netns
    assert cap.text.split() == ["lo", "tap0"]


def test_isolated_from_host_processes_and_paths(executor: RuncExecutor, rootfs: Path,
                                                tmp_path: Path) -> None:
    code, cap = run(executor, rootfs, "ls /proc | grep -c '^[0-9]'")
    assert code == 0 and int(cap.text) < 5
    host_pids = [e for e in os.listdir("/proc") if e.isdigit()]
    assert len(host_pids) > 5
    marker = f"llbook-{os.getpid()}-{time.time_ns()}"
    code, _ = run(executor, rootfs, f"echo x > /tmp/{marker}; ls {tmp_path}")
    assert code != 0  # the host's directories are not there
    assert not Path(f"/tmp/{marker}").exists()
    assert (rootfs / "tmp" / marker).exists()
    code, cap = run(executor, rootfs, "cat /proc/1/cmdline | tr '\\0' ' '")
    assert cap.text.startswith("/bin/sh")


def test_default_sandbox_settings(executor: RuncExecutor, rootfs: Path) -> None:
    code, cap = run(executor, rootfs, "grep CapEff /proc/self/status")
    sandbox_caps = int(cap.text.split()[1], 16)
    code, cap = run(executor, rootfs, "grep CapEff /proc/self/status", security="insecure")
    insecure_caps = int(cap.text.split()[1], 16)
    assert sandbox_caps == 0xA80425FB  # Docker/BuildKit's default 14 capabilities
    assert insecure_caps > sandbox_caps
    code, cap = run(executor, rootfs, "cat /proc/kcore | head -c 1 | wc -c; touch /sys/x 2>&1; "
                    "ls /dev | sort | tr '\\n' ' '")
    lines = cap.text.splitlines()
    assert lines[0].strip() == "0"  # masked
    assert "Read-only file system" in lines[1]
    devs = set(lines[2].split())
    assert {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue"} <= devs
    code, cap = run(executor, rootfs, "cat /etc/hosts; echo x >> /etc/hosts")
    assert "buildkitsandbox" in cap.text and code != 0


def test_mount_stubs_are_removed(executor: RuncExecutor, rootfs: Path, tmp_path: Path) -> None:
    for sub in ("proc", "sys", "dev"):
        (rootfs / sub).rmdir()
    data = tmp_path / "data"
    data.mkdir()
    (data / "f").write_text("from host\n")
    before = sorted(os.listdir(rootfs))
    mounts = [MountSpec("/mnt/data", str(data), readonly=True), MountSpec("/scratch", type="tmpfs")]
    code, cap = run(executor, rootfs, "cat /mnt/data/f; echo y > /scratch/y; cat /scratch/y; "
                    "echo z > /mnt/data/z 2>/dev/null || echo ro", mounts=mounts)
    assert code == 0 and cap.text.split() == ["from", "host", "y", "ro"]
    # the runtime's own stubs go; the RUN's mount points stay, as docker build leaves them
    assert sorted(os.listdir(rootfs)) == sorted([*before, "mnt", "scratch"])
    assert not os.listdir(rootfs / "mnt" / "data") and not os.listdir(rootfs / "scratch")
    assert not (rootfs / "etc" / "hosts").exists()


def test_run_mount_points_stay_as_docker_build_leaves_them(executor: RuncExecutor, rootfs: Path,
                                                          tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("pw")
    old = os.umask(0o077)  # the mode is 0755 whatever the umask
    try:
        mounts = [MountSpec("/run/secrets/pw", str(secret), readonly=True),
                  MountSpec("/deep/er/mnt", type="tmpfs")]
        code, cap = run(executor, rootfs, "cat /run/secrets/pw; id -u", mounts=mounts,
                        user="1000:1000")
    finally:
        os.umask(old)
    assert code == 0, cap.text
    for path in ("run", "run/secrets", "deep", "deep/er", "deep/er/mnt"):
        st = os.lstat(rootfs / path)
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o755 and st.st_uid == 0, path
    assert not (rootfs / "run" / "secrets" / "pw").exists()  # the empty file stub is removed


def test_cancel_kills_everything_quickly(executor: RuncExecutor, rootfs: Path) -> None:
    marker = unique_number()
    mounts_before = _mount_count(rootfs.parent)
    cancel = threading.Event()
    result: dict[str, object] = {}

    def target() -> None:
        try:
            result["code"] = executor.run(
                rootfs, ProcessSpec(["/bin/sh", "-c", f"sleep {marker} & sleep {marker}; wait"]),
                cancel=cancel)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
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
    assert not thread.is_alive()  # ended within the join's bound (a hang detector, not a speed check)
    assert isinstance(result.get("error"), ExecCancelledError)
    assert _pids_with(f"sleep\0{marker}") == []
    assert executor.list_containers() == []
    assert _mount_count(rootfs.parent) == mounts_before == 0
    assert executor.bundle_parent is not None
    assert [p for p in os.listdir(executor.bundle_parent) if p.startswith("llbook-bundle-")] == []


def test_cancel_from_an_output_callback(executor: RuncExecutor, rootfs: Path) -> None:
    cancel = threading.Event()
    marker = unique_number()

    def stdout(data: bytes) -> None:
        cancel.set()  # output arrives on a pump thread; the caller sees the cancel

    with pytest.raises(ExecCancelledError):
        executor.run(rootfs, ProcessSpec(["/bin/sh", "-c", f"echo go; sleep {marker}"]),
                     stdout=stdout, cancel=cancel)
    assert _pids_with("sleep\0" + marker) == []
    assert executor.list_containers() == []


def test_config_is_valid_json_for_runc_spec(executor: RuncExecutor, rootfs: Path, tmp_path: Path) -> None:
    from solver.executor.ocispec import SpecInputs, build_spec
    from solver.executor.user import ResolvedUser

    spec = build_spec(ProcessSpec(["true"], network="none"),
                      SpecInputs(rootfs, tmp_path / "r", tmp_path / "h", ResolvedUser(0, 0)))
    kinds = [ns["type"] for ns in spec["linux"]["namespaces"]]
    assert kinds == ["pid", "ipc", "uts", "mount", "network"]
    dests = [m["destination"] for m in spec["mounts"]]
    assert "/run" not in dests and "/etc/hosts" in dests and "/etc/resolv.conf" in dests
    json.dumps(spec)
    rootless = build_spec(ProcessSpec(["true"]), SpecInputs(
        rootfs, tmp_path / "r", tmp_path / "h", ResolvedUser(0, 0), rootless=True,
        uid_mappings=(), gid_mappings=()))
    assert [ns["type"] for ns in rootless["linux"]["namespaces"]][-1] == "user"
    assert "resources" not in rootless["linux"]
    subprocess.run(["true"])


def test_keyboard_interrupt_in_the_calling_thread(executor: RuncExecutor, rootfs: Path) -> None:
    import signal

    mounts_before = _mount_count(rootfs.parent)
    main = threading.get_ident()
    marker = unique_number()

    def interrupt_when_started() -> None:
        deadline = time.monotonic() + 10
        while not _pids_with("sleep\0" + marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        signal.pthread_kill(main, signal.SIGINT)

    threading.Thread(target=interrupt_when_started, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        executor.run(rootfs, ProcessSpec(["/bin/sh", "-c", f"sleep {marker}"]))
    assert _pids_with("sleep\0" + marker) == []
    assert executor.list_containers() == []
    assert _mount_count(rootfs.parent) == mounts_before == 0


def test_run_on_an_overlay_snapshot_gives_a_clean_layer(executor: RuncExecutor, tmp_path: Path) -> None:
    from solver.snapshot.mount import mounted
    from solver.snapshot.overlay import OverlaySnapshotter
    from solver.snapshot.probe import overlay_supported

    if not overlay_supported(str(tmp_path)):
        pytest.skip("no overlay mounts here")
    sn = OverlaySnapshotter(tmp_path / "snapshots")
    with mounted(sn.prepare("base-k")) as root:
        make_busybox_rootfs(root)
        for sub in ("proc", "sys", "dev"):
            (root / sub).rmdir()
    sn.commit("base", "base-k")
    with mounted(sn.prepare("run-k", "base")) as root:
        code = executor.run(root, ProcessSpec(["/bin/sh", "-c", "echo data > /etc/motd; rm /bin/vi"],
                                              cwd="/app", network="none"))
        assert code == 0
    sn.commit("run", "run-k")
    changes = {c.path: c.kind for c in sn.layer_diff("run").changes}
    assert changes == {"/app": "added", "/etc": "modified", "/etc/motd": "added",
                       "/bin": "modified", "/bin/vi": "removed"}


ROOTLESS_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
from solver.executor.runc import RuncExecutor
from solver.executor.base import ProcessSpec
base = sys.argv[2]
executor = RuncExecutor(state_root=base + "/state")
assert executor.rootless
out = bytearray()
code = executor.run(base + "/rootfs", ProcessSpec(
    ["/bin/sh", "-c", "id -u; hostname; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"],
    network="none"), stdout=out.extend, stderr=out.extend)
sys.stdout.write(out.decode() + "code=%d\\n" % code)
sys.stdout.write("left=%d\\n" % len(executor.list_containers()))
"""


def test_rootless_runc_as_an_unprivileged_user(executor: RuncExecutor) -> None:
    import tempfile

    from solver.executor.probe import user_namespaces_available

    python = "/usr/bin/python3"
    if not (shutil.which("setpriv") and os.path.exists(python) and user_namespaces_available()):
        pytest.skip("needs setpriv, a system python3 and user namespaces")
    base = Path(tempfile.mkdtemp(prefix="llbook-rootless-"))
    try:
        make_busybox_rootfs(base / "rootfs")
        subprocess.run(["chown", "-R", "1000:1000", str(base)], check=True)
        os.chmod(base, 0o755)
        repo = str(Path(__file__).resolve().parents[1])
        proc = subprocess.run(
            ["setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups",
             "env", "-i", f"HOME={base}", f"XDG_RUNTIME_DIR={base}", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
             python, "-c", ROOTLESS_SCRIPT, repo, str(base)],
            capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["0", "buildkitsandbox", "lo", "code=0", "left=0"]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_seccomp_blocks_namespaces_and_keyring_in_sandbox_only(executor: RuncExecutor,
                                                               rootfs: Path) -> None:
    script = "unshare -U true && echo unshared || echo blocked"
    code, cap = run(executor, rootfs, script)
    assert cap.text.strip() == "blocked"
    code, cap = run(executor, rootfs, script, security="insecure")
    assert cap.text.strip() == "unshared"
    code, cap = run(executor, rootfs, "grep Seccomp: /proc/self/status")
    assert cap.text.split()[1] == "2"  # filter mode
    # ordinary work is unaffected: processes, pipes, files, threads of busybox tools
    code, cap = run(executor, rootfs, "mkdir -p /a/b && echo x | tee /a/b/c | wc -c && "
                    "ls /a/b && (sleep 0 &) && wait && sort -r /etc/passwd | head -1 | cut -d: -f1")
    assert code == 0 and cap.text.split() == ["2", "c", "root"]


def test_same_run_gives_the_same_layer_on_overlay_and_native(executor: RuncExecutor,
                                                             tmp_path: Path) -> None:
    from solver.snapshot.mount import mounted
    from solver.snapshot.native import NativeSnapshotter
    from solver.snapshot.overlay import OverlaySnapshotter
    from solver.snapshot.probe import overlay_supported

    if not overlay_supported(str(tmp_path)):
        pytest.skip("no overlay mounts here")
    script = ("echo 'x:x:5:5::/:/bin/sh' >> /etc/passwd && rm -rf /home/app && mkdir -m 750 /home/app && "
              "echo hi > /home/app/.profile && chown -R 1000:1000 /home/app && rm /bin/vi && "
              "ln -s busybox /bin/vim && chmod 4755 /bin/busybox && mkdir -p /var/lib/x && "
              "dd if=/dev/zero of=/var/lib/x/blob bs=1k count=10 2>/dev/null")
    layers = []
    for sn in (OverlaySnapshotter(tmp_path / "o"), NativeSnapshotter(tmp_path / "n")):
        with mounted(sn.prepare("base-k")) as root:
            make_busybox_rootfs(root)
            (root / "home" / "app" / "old").write_text("old")
        sn.commit("base", "base-k")
        with mounted(sn.prepare("run-k", "base")) as root:
            assert executor.run(root, ProcessSpec(["/bin/sh", "-c", script])) == 0
        sn.commit("run", "run-k")
        layers.append(sn.layer_diff("run"))
    overlay_diff, native_diff = layers
    assert overlay_diff == native_diff
    by = native_diff.by_path()
    assert by["/home/app/old"].kind == "removed" and by["/home/app/.profile"].uid == 1000
    assert by["/bin/busybox"].kind == "modified" and by["/bin/busybox"].mode == 0o4755
    assert by["/bin/vim"].linkname == "busybox" and by["/var/lib/x/blob"].size == 10240
