"""llbook build --ssh: RUN --mount=type=ssh reaches a real ssh-agent (``ssh-add -l`` inside the RUN, runc)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from test_build_cli import LLBOOK, _env, build, executed, write

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(shutil.which("ssh-agent") is None or shutil.which("ssh-keygen") is None,
                                 reason="openssh-client (ssh-agent, ssh-add, ssh-keygen) is not installed")]

# ssh-add and the libraries it links, run through their own loader from a bind mount of the context
SSH_ADD = "/t/ld.so --library-path /t /t/ssh-add"


def _ssh_tools(ctx: Path) -> None:
    """ssh-add and its shared libraries (from ldd) into ``ctx/tools`` (busybox has no ssh-add)."""
    tools = ctx / "tools"
    tools.mkdir(parents=True)
    shutil.copy2(shutil.which("ssh-add"), tools / "ssh-add")
    listing = subprocess.run(["ldd", shutil.which("ssh-add")], capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines():
        path = line.split("=>")[-1].split("(")[0].strip()
        if path.startswith("/"):
            shutil.copy2(path, tools / ("ld.so" if "ld-linux" in path else Path(path).name))


def _keygen(path: Path, comment: str) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return path


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A real ssh-agent holding one key: (its socket, the key's fingerprint line from ssh-add -l)."""
    sock = str(tmp_path / "agent.sock")
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(1000):
            if os.path.exists(sock):
                break
            proc.poll()
            assert proc.returncode is None, "ssh-agent exited"
            time.sleep(0.01)
        env = {**os.environ, "SSH_AUTH_SOCK": sock}
        subprocess.run(["ssh-add", "-q", str(_keygen(tmp_path / "id_agent", "agent-key@llbook"))], env=env, check=True)
        listed = subprocess.run(["ssh-add", "-l"], env=env, capture_output=True, text=True, check=True).stdout.strip()
        yield sock, listed
    finally:
        proc.kill()
        proc.wait()


def _env_with(registry_config, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in _env(registry_config).items() if k != "SSH_AUTH_SOCK"}
    return {**env, **extra}


def _run(registry_config, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*LLBOOK, "build", "--progress", "plain", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_default_forwards_ssh_auth_sock(registry_config, agent, tmp_path: Path) -> None:
    sock, listed = agent
    ctx = tmp_path / "ctx"
    _ssh_tools(ctx)
    write(ctx / "Dockerfile", "FROM busybox\n"
          f"RUN --mount=type=bind,source=tools,target=/t --mount=type=ssh {SSH_ADD} -l > /keys"
          " && echo $SSH_AUTH_SOCK > /sock && stat -c '%a %u %g %F' $SSH_AUTH_SOCK > /stat\n"
          f"RUN --mount=type=bind,source=tools,target=/t --mount=type=ssh,id=other,target=/agent,mode=0640,uid=7,gid=8"
          f" {SSH_ADD} -l > /keys2 && stat -c '%a %u %g' /agent > /stat2 && echo $SSH_AUTH_SOCK > /sock2\n")
    image = tmp_path / "image.tar"
    env = _env_with(registry_config, SSH_AUTH_SOCK=sock)
    done = _run(registry_config, env, "--cache-dir", str(tmp_path / "cache"), "--ssh", "default",
                "--ssh", f"other={sock}", "--output", f"type=docker,dest={image}", str(ctx))
    assert done.returncode == 0, done.stderr
    files = _image_files(image)
    assert files["keys"].strip() == listed and "agent-key@llbook" in listed
    assert files["sock"].strip() == "/run/buildkit/ssh_agent.0"  # dockerfile2llb's default target and env
    assert files["stat"].split() == ["600", "0", "0", "socket"]
    assert files["keys2"].strip() == listed
    assert files["stat2"].split() == ["640", "7", "8"]
    assert files["sock2"].strip() == "/agent"
    # neither the socket nor its mount point is in the image; /run/buildkit stays as a mount point's parent
    names = _image_names(image)
    assert "run/buildkit/ssh_agent.0" not in names and "agent" not in names


def test_key_files_load_into_an_agent_of_their_own(registry_config, tmp_path: Path) -> None:
    """``--ssh ID=KEY,KEY``: an ssh-agent llbook starts, holding both keys, and gone after the build."""
    ctx = tmp_path / "ctx"
    _ssh_tools(ctx)
    key1, key2 = _keygen(tmp_path / "k1", "first@llbook"), _keygen(tmp_path / "k2", "second@llbook")
    write(ctx / "Dockerfile", "FROM busybox\n"
          f"RUN --mount=type=bind,source=tools,target=/t --mount=type=ssh,id=deploy {SSH_ADD} -l > /keys"
          f" && ! {SSH_ADD} -D 2> /refused\n")
    out, agent_tmp = tmp_path / "out", tmp_path / "agent-tmp"  # llbook's agent makes its socket dir here
    agent_tmp.mkdir()
    done = _run(registry_config, _env_with(registry_config, TMPDIR=str(agent_tmp)),
                "--cache-dir", str(tmp_path / "cache"), "--ssh", f"deploy={key1},{key2}",
                "--output", f"type=local,dest={out}", str(ctx))
    assert done.returncode == 0, done.stderr
    keys = (out / "keys").read_text()
    assert "first@llbook" in keys and "second@llbook" in keys
    assert (out / "refused").read_text().strip()  # the forwarded agent is read-only, as BuildKit's
    agents = subprocess.run(["pgrep", "-f", f"ssh-agent -D -a {agent_tmp}"], capture_output=True, text=True)
    assert agents.stdout.strip() == ""  # killed after the build
    assert list(agent_tmp.iterdir()) == []


def test_socket_is_not_in_the_cache_key(registry_config, agent, tmp_path: Path) -> None:
    sock, _ = agent
    ctx = tmp_path / "ctx"
    write(ctx / "Dockerfile", "FROM busybox\nRUN --mount=type=ssh test -S $SSH_AUTH_SOCK && echo ok > /ok\n")
    cache = tmp_path / "cache"
    build(registry_config, ctx, cache, "--ssh", f"default={sock}")
    other = tmp_path / "other"
    other.mkdir()
    os.symlink(sock, other / "link.sock")  # another path to the agent: the same key
    _, meta = build(registry_config, ctx, cache, "--ssh", f"default={other / 'link.sock'}")
    assert executed(meta) == []


def test_missing_required_id_names_the_line(registry_config, agent, tmp_path: Path) -> None:
    sock, _ = agent
    ctx = tmp_path / "ctx"
    write(ctx / "Dockerfile", "FROM busybox\nRUN echo one\nRUN --mount=type=ssh,id=deploy,required=true true\n"
          "RUN --mount=type=ssh,id=absent test ! -e /run/buildkit/ssh_agent.0 && echo optional > /o\n")
    done = _run(registry_config, _env_with(registry_config), "--cache-dir", str(tmp_path / "cache"),
                "--ssh", f"default={sock}", str(ctx))
    assert done.returncode == 1
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and 'no SSH key "deploy" forwarded from the client' in error[0]
    assert "Dockerfile:3" in done.stderr and "Traceback" not in done.stderr
    # without required=true the mount is optional: no socket, the RUN still runs
    write(ctx / "Dockerfile", "FROM busybox\n"
          "RUN --mount=type=ssh,id=absent test ! -e /run/buildkit/ssh_agent.0 && echo optional > /o\n")
    out = tmp_path / "out"
    done = _run(registry_config, _env_with(registry_config), "--cache-dir", str(tmp_path / "cache"),
                "--output", f"type=local,dest={out}", str(ctx))
    assert done.returncode == 0, done.stderr
    assert (out / "o").read_text() == "optional\n"


def test_bad_ssh_specs_are_one_line_errors(registry_config, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    write(ctx / "Dockerfile", "FROM busybox\nRUN --mount=type=ssh true\n")
    env = _env_with(registry_config)
    cases = {("--ssh", "default"): "make sure SSH_AUTH_SOCK is set",
             ("--ssh", f"default={tmp_path / 'nope'}"): "No such file or directory",
             ("--ssh", f"x={write(tmp_path / 'notakey', 'junk')}"): "cannot load key",
             ("--ssh", f"x={tmp_path / 'locked'}"): "is passphrase-protected"}
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(tmp_path / "locked")],
                   check=True)
    for flags, message in cases.items():
        done = _run(registry_config, env, "--cache-dir", str(tmp_path / "cache"), *flags, str(ctx))
        assert done.returncode == 1 and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()[-1]) > 0


def _image_files(archive: Path) -> dict[str, str]:
    """Top-level regular files of a docker archive's layers, by name."""
    files: dict[str, str] = {}
    with tarfile.open(archive) as outer:
        for member in outer.getmembers():
            if member.name.endswith(".tar") or member.name.startswith("blobs/"):
                data = outer.extractfile(member)
                if data is None:
                    continue
                try:
                    with tarfile.open(fileobj=data) as layer:
                        for entry in layer.getmembers():
                            if entry.isfile() and "/" not in entry.name.strip("/"):
                                files[entry.name.strip("/")] = layer.extractfile(entry).read().decode()
                except tarfile.TarError:
                    continue
    return files


def _image_names(archive: Path) -> set[str]:
    names: set[str] = set()
    with tarfile.open(archive) as outer:
        for member in outer.getmembers():
            data = outer.extractfile(member) if member.isfile() else None
            if data is None:
                continue
            try:
                with tarfile.open(fileobj=data) as layer:
                    names |= {e.name.strip("/").removeprefix("./") for e in layer.getmembers()}
            except tarfile.TarError:
                continue
    return names


def test_on_error_shell_gets_the_ssh_mount(registry_config, agent, tmp_path: Path) -> None:
    """--on-error=shell with --ssh: the shell before the failing RUN has its ssh mount (a real pty)."""
    from test_debug_shell import PROMPT, PtySession, shell_env
    sock, listed = agent
    ctx = tmp_path / "ctx"
    _ssh_tools(ctx)
    write(ctx / "Dockerfile", 'FROM busybox\nENV PS1="dbg-prompt# "\n'
          f"RUN --mount=type=bind,source=tools,target=/t --mount=type=ssh {SSH_ADD} -l && false\n")
    env = {k: v for k, v in shell_env(registry_config).items() if k != "SSH_AUTH_SOCK"}
    session = PtySession([*LLBOOK, "build", "--progress", "plain", "--on-error=shell", "--ssh", f"default={sock}",
                          "--cache-dir", str(tmp_path / "cache"), str(ctx)], env)
    session.read_until(PROMPT)
    shown = len(session.output)
    session.type(f"{SSH_ADD} -l; echo agent-said-$?\r".encode())
    session.read_until(b"agent-said-", start=shown + 20)
    session.read_until(PROMPT, start=shown)
    session.type(b"exit\r")
    assert session.wait() == 1  # the build still failed
    assert listed in session.lines() and "agent-said-0" in session.lines()


def test_ssh_through_dockerd_buildkit(dockerd, registry_with_busybox, agent, tmp_path: Path) -> None:
    """--buildkit-host dockerd:// --ssh: the session serves sshforward; dockerd's BuildKit mounts the socket."""
    import sys
    import uuid
    sock, listed = agent
    base = f"{registry_with_busybox.host}/library/busybox:latest"
    ctx = tmp_path / "ctx"
    _ssh_tools(ctx)
    nonce = uuid.uuid4().hex
    write(ctx / "Dockerfile", f"FROM {base}\nRUN --mount=type=bind,source=tools,target=/t --mount=type=ssh "
          f"{SSH_ADD} -l > /keys && echo {nonce} >> /keys && ! {SSH_ADD} -D\n")
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("BUILDKIT_HOST", "LLBOOK_BUILDKIT_HOST", "SSH_AUTH_SOCK")}
    env["LLBOOK_CACHE_DIR"] = str(tmp_path / "cache")
    done = subprocess.run([sys.executable, "-m", "solver", "build", "--buildkit-host", "dockerd://", "--network=host",
                           "--allow", "network.host", "--progress", "plain", "--ssh", f"default={sock}",
                           "--output", f"type=local,dest={out}", str(ctx)], capture_output=True, text=True,
                          env=env, cwd=Path(__file__).resolve().parents[1], timeout=600)
    assert done.returncode == 0, done.stderr
    assert (out / "keys").read_text().splitlines() == [listed, nonce]
    # a required id the session does not have: the daemon's own error
    write(ctx / "Dockerfile", f"FROM {base}\nRUN --mount=type=ssh,id=other,required=true true\n")
    done = subprocess.run([sys.executable, "-m", "solver", "build", "--buildkit-host", "dockerd://", "--network=host",
                           "--allow", "network.host", "--progress", "plain", "--ssh", f"default={sock}", str(ctx)],
                          capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[1], timeout=600)
    assert done.returncode == 1 and "unset ssh forward key other" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
