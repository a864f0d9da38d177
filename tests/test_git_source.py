"""Git sources end to end against real git servers on 127.0.0.1: ``git daemon`` (git://)
and ``git http-backend`` behind a small CGI server (http://, with and without auth).

``ADD`` of a branch, a tag, a commit, ``#ref:subdir``, ``--keep-git-dir``, ``--checksum``
pins; the cache key is the commit (a warm build hits, a new commit on the branch misses);
a git URL as the build context and as ``--build-context``; one-line errors naming the
URL/ref and the Dockerfile line; the LLB lowering against BuildKit's ``llb.Git``."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

LLBOOK = [sys.executable, "-m", "solver.cli"]
ROOT = Path(__file__).resolve().parents[1]
GIT_DAEMON = "/usr/lib/git-core/git-daemon"
HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"

pytestmark = pytest.mark.skipif(not Path(GIT_DAEMON).exists() or not Path(HTTP_BACKEND).exists(),
                                reason="git daemon / http-backend not installed")

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": os.devnull, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], env=GIT_ENV, check=True, capture_output=True,
                          text=True).stdout.strip()


def write(path: Path, text: str, mode: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mode is not None:
        path.chmod(mode)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen | None = None, address: str = "127.0.0.1") -> None:
    for _ in range(200):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection((address, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


@dataclass
class Repo:
    path: Path
    url: str  # git:// URL of the repo
    http_url: str  # http:// URL (no auth)

    def commit(self, files: dict[str, str], message: str) -> str:
        for name, text in files.items():
            write(self.path / name, text)
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "-m", message)
        return git(self.path, "rev-parse", "HEAD")


class GitCGI(http.server.BaseHTTPRequestHandler):
    """``git http-backend`` as CGI; a request without the expected Authorization gets 401."""

    root = ""
    auth = ""  # required Authorization header value ("" none)
    on_fetch = None  # called once, at the first fetch request

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._cgi()

    def do_POST(self) -> None:
        self._cgi()

    def _cgi(self) -> None:
        if self.auth and self.headers.get("Authorization") != self.auth:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = {"GIT_PROJECT_ROOT": self.root, "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path,
               "QUERY_STRING": query, "REQUEST_METHOD": self.command, "REMOTE_ADDR": "127.0.0.1",
               "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
               "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""), "PATH": GIT_ENV["PATH"]}
        out = subprocess.run([HTTP_BACKEND], input=body, env=env, capture_output=True, check=False).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode().split("\r\n"):
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key:
                headers.append((key, value.strip()))
        if self.on_fetch is not None and b"command=fetch" in body:
            type(self).on_fetch, hook = None, self.on_fetch
            hook()  # e.g. move a branch after the first fetch has its pack, before it is sent
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def servers(tmp_path: Path):
    """A git daemon and an http-backend server over ``tmp_path/srv``; yields their ports."""
    base = tmp_path / "srv"
    base.mkdir()
    port = free_port()
    daemon = subprocess.Popen([GIT_DAEMON, "--export-all", f"--base-path={base}", "--reuseaddr",
                               "--listen=127.0.0.1", f"--port={port}", str(base)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    handler = type("Handler", (GitCGI,), {"root": str(base)})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        wait_port(port, daemon)
        yield base, port, httpd
    finally:
        httpd.shutdown()
        daemon.terminate()
        daemon.wait(10)


@pytest.fixture
def repo(servers) -> Repo:
    """``repo.git`` served by both servers: main with two commits, tag v1 (annotated) on
    the first, light tag light on the second, branch dev, a subdir and an executable."""
    base, port, httpd = servers
    path = base / "repo.git"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    r = Repo(path, f"git://127.0.0.1:{port}/repo.git", f"http://127.0.0.1:{httpd.server_address[1]}/repo.git")
    write(path / "tool.sh", "#!/bin/sh\necho tool\n", 0o755)
    r.commit({"README": "first\n", "sub/dir/inner.txt": "inner v1\n"}, "first")
    git(path, "tag", "-a", "v1", "-m", "release 1")
    r.commit({"README": "second\n"}, "second")
    git(path, "tag", "light")
    git(path, "checkout", "-q", "-b", "dev")
    r.commit({"README": "dev\n"}, "dev work")
    git(path, "checkout", "-q", "main")
    return r


def llbook(cache: Path, context: str | Path, *extra: str, check: bool = True,
           meta: Path | None = None) -> subprocess.CompletedProcess:
    args = [*LLBOOK, "build", "--no-server", "--progress", "plain", "--cache-dir", str(cache)]
    if meta is not None:
        args += ["--metadata-file", str(meta)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([*args, *extra, str(context)], env=env, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"llbook build failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def built(tmp_path: Path, dockerfile: str, *extra: str, cache: Path | None = None, name: str = "out"
          ) -> tuple[Path, dict]:
    """Build ``dockerfile`` (a context of its own) into ``tmp_path/name``; (output, metadata)."""
    ctx = tmp_path / f"ctx-{name}"
    write(ctx / "Dockerfile", dockerfile)
    out, meta = tmp_path / name, tmp_path / f"meta-{name}.json"
    llbook(cache or tmp_path / "cache", ctx, "--output", f"type=local,dest={out}", *extra, meta=meta)
    return out, json.loads(meta.read_text())


def executed(meta: dict) -> list[str]:
    return [v["name"] for v in meta["llbook.vertices"] if not v["cached"]]


def git_keys(meta: dict) -> list[list[str]]:
    """The cache keys of the build's git source vertices."""
    return [v.get("cache_keys", []) for v in meta["llbook.vertices"]
            if " ADD git://" in v["name"] and not v.get("inputs")]  # the source, not its copy


def failed(tmp_path: Path, dockerfile: str, *extra: str) -> str:
    ctx = tmp_path / "ctx-fail"
    write(ctx / "Dockerfile", dockerfile)
    proc = llbook(tmp_path / "cache", ctx, *extra, check=False)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    line = [line for line in proc.stderr.splitlines() if line.startswith("error: ")][-1]
    return line.replace(f"{ctx}/", "")  # the Dockerfile's own path, as "Dockerfile:N"


# ------------------------------------------------------------------------------ ADD


def test_add_branch_default_and_modes(tmp_path: Path, repo: Repo):
    out, meta = built(tmp_path, f"FROM scratch\nADD {repo.url} /src\nADD {repo.url}#dev /dev\n")
    assert (out / "src" / "README").read_text() == "second\n"
    assert (out / "src" / "sub" / "dir" / "inner.txt").read_text() == "inner v1\n"
    assert (out / "dev" / "README").read_text() == "dev\n"
    assert not (out / "src" / ".git").exists()
    assert (out / "src" / "tool.sh").stat().st_mode & 0o777 == 0o755
    assert (out / "src" / "README").stat().st_mode & 0o777 == 0o644
    assert (out / "src" / "sub").stat().st_mode & 0o777 == 0o755
    names = [v["name"] for v in meta["llbook.vertices"]]
    assert any(n.startswith("[1/2] ADD git://127.0.0.1") for n in names), names


def test_add_tags_commit_and_subdir(tmp_path: Path, repo: Repo):
    first = git(repo.path, "rev-parse", "v1^{commit}")
    out, _ = built(tmp_path, f"FROM scratch\nADD {repo.url}#v1 /annotated\nADD {repo.url}#light /light\n"
                             f"ADD {repo.url}#{first} /commit\nADD {repo.url}#main:sub/dir /inner\n")
    assert (out / "annotated" / "README").read_text() == "first\n"
    assert (out / "light" / "README").read_text() == "second\n"
    assert (out / "commit" / "README").read_text() == "first\n"
    assert sorted(os.listdir(out / "inner")) == ["inner.txt"]


def test_add_over_http_with_keep_git_dir(tmp_path: Path, repo: Repo):
    head = git(repo.path, "rev-parse", "main")
    out, _ = built(tmp_path, f"FROM scratch\nADD --keep-git-dir=true {repo.http_url}#main /src\n")
    assert (out / "src" / "README").read_text() == "second\n"
    assert git(out / "src", "rev-parse", "HEAD") == head
    assert git(out / "src", "remote", "get-url", "origin") == repo.http_url
    assert git(out / "src", "status", "--porcelain") == ""
    assert git(out / "src", "for-each-ref", "--format=%(refname)") == "refs/tags/main"  # BuildKit's quirk
    out, _ = built(tmp_path, f"FROM scratch\nADD --keep-git-dir=true {repo.http_url}#refs/heads/dev /src\n",
                   name="qualified")
    assert git(out / "src", "for-each-ref", "--format=%(refname)") == "refs/heads/dev"


def test_checksum_pin_ok_and_mismatch(tmp_path: Path, repo: Repo):
    head = git(repo.path, "rev-parse", "main")
    first = git(repo.path, "rev-parse", "v1^{commit}")
    out, _ = built(tmp_path, f"FROM scratch\nADD --checksum={head[:12]} {repo.url}#main /src\n"
                             f"ADD --checksum={first} {repo.url}#v1 /tagged\n")
    assert (out / "src" / "README").read_text() == "second\n"
    assert (out / "tagged" / "README").read_text() == "first\n"
    line = failed(tmp_path, f"FROM scratch\n\nADD --checksum={first} {repo.url}#main /src\n")
    assert line.startswith("error: Dockerfile:3: "), line
    assert f"expected checksum to match {first}, got {head}" in line
    assert repo.url in line


def test_fetch_by_commit_trusts_the_checksum(tmp_path: Path, repo: Repo):
    """?fetch-by-commit: no ls-remote; the pinned commit is fetched even where the branch
    has moved on, and a kept .git has it as refs/heads/REF (BuildKit's GitFetchByCommit)."""
    first = git(repo.path, "rev-parse", "v1^{commit}")
    out, _ = built(tmp_path, f"FROM scratch\nADD --checksum={first} {repo.url}?fetch-by-commit#main /src\n"
                             f"ADD --keep-git-dir --checksum={first} {repo.url}?fetch-by-commit#main /kept\n")
    assert (out / "src" / "README").read_text() == "first\n"  # main's tip says "second"
    assert git(out / "kept", "rev-parse", "HEAD") == first
    assert git(out / "kept", "for-each-ref", "--format=%(refname)") == "refs/heads/main"
    line = failed(tmp_path, f"FROM scratch\nADD --checksum={first[:10]} {repo.url}?fetch-by-commit#main /src\n")
    assert "fetch-by-commit requires a full commit SHA checksum" in line and line.startswith("error: Dockerfile:2:")


def test_cache_hit_while_commit_unchanged_and_miss_after_new_commit(tmp_path: Path, repo: Repo):
    dockerfile = f"FROM scratch\nADD {repo.url}#main /src\n"
    out, cold = built(tmp_path, dockerfile)
    assert len(executed(cold)) == 2
    _, warm = built(tmp_path, dockerfile, name="warm")
    assert executed(warm) == []
    assert git_keys(cold) == git_keys(warm) and len(git_keys(cold)) == 1
    repo.commit({"README": "third\n"}, "third")
    out, moved = built(tmp_path, dockerfile, name="moved")
    assert len(executed(moved)) == 2
    assert git_keys(moved) != git_keys(cold)
    assert (out / "src" / "README").read_text() == "third\n"
    _, pinned = built(tmp_path, f"FROM scratch\nADD {repo.url}#{git(repo.path, 'rev-parse', 'main')} /src\n",
                      name="pinned")
    assert executed(pinned) == []  # the same commit named by its SHA: the same key (the commit)
    assert git_keys(pinned) == git_keys(moved)
    bare = list((tmp_path / "cache" / "git").iterdir())
    assert len(bare) == 1 and (bare[0] / "HEAD").exists()  # one bare cache per remote
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    usage = subprocess.run([*LLBOOK, "du", "--cache-dir", str(tmp_path / "cache")], env=env,
                           capture_output=True, text=True, check=True).stdout
    row = next(line for line in usage.splitlines() if line.startswith(bare[0].name[:24]))
    assert row.split()[1] == "git" and row.endswith(repo.url), usage
    pruned = subprocess.run([*LLBOOK, "prune", "--all", "--cache-dir", str(tmp_path / "cache")], env=env,
                            capture_output=True, text=True, check=True).stdout
    assert f"removed git {bare[0].name[:31]}" in pruned and repo.url in pruned, pruned
    assert list((tmp_path / "cache" / "git").iterdir()) == []
    out, again = built(tmp_path, dockerfile, name="again")  # fetched anew
    assert len(executed(again)) == 2 and (out / "src" / "README").read_text() == "third\n"


# ------------------------------------------------------------------------------ contexts


def test_git_url_as_build_context(tmp_path: Path, repo: Repo):
    repo.commit({"app/Dockerfile": "FROM scratch\nCOPY hello.txt /hello\n", "app/hello.txt": "from git\n"},
                "app")
    out, meta = tmp_path / "out", tmp_path / "meta.json"
    llbook(tmp_path / "cache", f"{repo.http_url}#main:app", "--output", f"type=local,dest={out}", meta=meta)
    assert (out / "hello").read_text() == "from git\n"
    names = [v["name"] for v in json.loads(meta.read_text())["llbook.vertices"]]
    assert f"[internal] load git source {repo.http_url}#main:app" in names
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    shown = subprocess.run([*LLBOOK, "history", "inspect", "--cache-dir", str(tmp_path / "cache")], env=env,
                           capture_output=True, text=True, check=True).stdout
    context_line = next(line for line in shown.splitlines() if line.startswith("Context:"))
    assert context_line.split()[-1] == f"{repo.http_url}#main:app"  # the URL, not the checkout's path


def test_git_context_is_one_commit_while_the_branch_moves(tmp_path: Path, servers, repo: Repo):
    """The branch moves right after the context's first fetch (when the Dockerfile has been
    read): the build still copies from the commit its Dockerfile came from."""
    base, _, _ = servers
    repo.commit({"Dockerfile": "FROM scratch\nCOPY f /f\n", "f": "v1\n"}, "v1")
    handler = type("Moving", (GitCGI,), {"root": str(base),
                                         "on_fetch": staticmethod(lambda: repo.commit({"f": "v2\n"}, "v2"))})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/repo.git#main"
        out = tmp_path / "out"
        llbook(tmp_path / "cache", url, "--output", f"type=local,dest={out}")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert handler.on_fetch is None  # the branch did move during the build
    assert git(repo.path, "show", "main:f") == "v2"
    assert (out / "f").read_text() == "v1\n"


def test_build_context_git(tmp_path: Path, repo: Repo):
    out, _ = built(tmp_path, "FROM scratch\nCOPY --from=src /README /readme\nCOPY --from=dev README /dev\n",
                   "--build-context", f"src={repo.url}#v1", "--build-context", f"dev={repo.http_url}#dev")
    assert (out / "readme").read_text() == "first\n"
    assert (out / "dev").read_text() == "dev\n"


def test_submodules_fetched_unless_skipped(tmp_path: Path, servers, repo: Repo):
    base, port, _ = servers
    sub = base / "sub.git"
    sub.mkdir()
    git(sub, "init", "-q", "-b", "main")
    write(sub / "lib.txt", "from the submodule\n")
    git(sub, "add", "-A")
    git(sub, "commit", "-q", "-m", "lib")
    subprocess.run(["git", "-C", str(repo.path), "submodule", "add", "-q", f"git://127.0.0.1:{port}/sub.git",
                    "vendor/sub"], env=GIT_ENV, check=True, capture_output=True)
    git(repo.path, "commit", "-q", "-m", "submodule")
    out, _ = built(tmp_path, f"FROM scratch\nADD {repo.url}#main /src\nADD {repo.url}?submodules=false#main /bare\n"
                             f"ADD --keep-git-dir {repo.url}#main /kept\n")
    assert (out / "src" / "vendor" / "sub" / "lib.txt").read_text() == "from the submodule\n"
    assert (out / "kept" / "vendor" / "sub" / "lib.txt").read_text() == "from the submodule\n"
    assert (out / "bare" / "vendor" / "sub").is_dir() and not os.listdir(out / "bare" / "vendor" / "sub")


def test_mtimes_checkout_by_default_commit_time_on_request(tmp_path: Path, repo: Repo):
    env = {**GIT_ENV, "GIT_COMMITTER_DATE": "2001-01-01T00:00:00Z"}
    write(repo.path / "old.txt", "old\n")
    subprocess.run(["git", "-C", str(repo.path), "add", "old.txt"], env=env, check=True)
    subprocess.run(["git", "-C", str(repo.path), "commit", "-q", "-m", "old"], env=env, check=True)
    dockerfile = "FROM scratch\nCOPY --from=src /old.txt /old.txt\n"
    out, _ = built(tmp_path, dockerfile, "--build-context", f"src={repo.url}?mtime=commit#main", name="commit")
    assert (out / "old.txt").stat().st_mtime == 978307200  # the committer time
    out, _ = built(tmp_path, dockerfile, "--build-context", f"src={repo.url}#main", name="checkout",
                   cache=tmp_path / "cache2")  # (one cache: COPY's key is the content, and it hits)
    assert (out / "old.txt").stat().st_mtime > 978307200  # the checkout's time, as BuildKit's default


@pytest.fixture
def auth_server(servers):
    """The repositories behind http-backend that asks for the token ``s3cret``."""
    import base64
    base, _, _ = servers
    expected = "basic " + base64.b64encode(b"x-access-token:s3cret").decode()
    handler = type("AuthHandler", (GitCGI,), {"root": str(base), "auth": expected})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_http_auth_from_the_git_auth_secrets(tmp_path: Path, repo: Repo, auth_server: str):
    url = f"http://{auth_server}/repo.git"
    dockerfile = f"FROM scratch\nADD {url}#main /src\n"
    line = failed(tmp_path, dockerfile)
    assert line.startswith("error: Dockerfile:2: ") and f"failed to fetch remote {url}" in line, line
    token = write(tmp_path / "token", "s3cret")
    out, _ = built(tmp_path, dockerfile, "--secret", f"id=GIT_AUTH_TOKEN,src={token}")
    assert (out / "src" / "README").read_text() == "second\n"
    import base64
    header = write(tmp_path / "header", "basic " + base64.b64encode(b"x-access-token:s3cret").decode())
    out, _ = built(tmp_path, dockerfile, "--secret", f"id=GIT_AUTH_HEADER.{auth_server},src={header}",
                   cache=tmp_path / "cache2", name="scoped")
    assert (out / "src" / "README").read_text() == "second\n"


SSHD = "/usr/sbin/sshd"


@contextmanager
def ssh_server(keys: Path, address: str, port: int):
    """sshd on ADDRESS:PORT (root logs in with one key) and an ssh-agent holding that key:
    (the agent's socket, the host's known_hosts line)."""
    keys.mkdir()
    for name in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True)
    config = write(keys / "sshd_config", f"Port {port}\nListenAddress {address}\nHostKey {keys / 'host'}\n"
                   f"AuthorizedKeysFile {keys / 'client.pub'}\nPasswordAuthentication no\n"
                   "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\n"
                   f"UsePAM no\nPidFile {keys / 'sshd.pid'}\n")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    daemon = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    sock = str(keys / "agent.sock")
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, daemon, address)
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        subprocess.run(["ssh-add", "-q", str(keys / "client")], env={**os.environ, "SSH_AUTH_SOCK": sock},
                       check=True)
        host_key = (keys / "host.pub").read_text().split()
        where = address if port == 22 else f"[{address}]:{port}"
        yield sock, f"{where} {host_key[0]} {host_key[1]}"
    finally:
        agent.kill()
        agent.wait()
        daemon.terminate()
        daemon.wait(10)


def _need_sshd() -> None:
    if not Path(SSHD).exists() or os.geteuid() != 0:
        pytest.skip("sshd (openssh-server) not installed, or not root")


@pytest.fixture
def sshd(tmp_path: Path, servers):
    """sshd on 127.0.0.1 on a free port: (port, agent socket, known_hosts line)."""
    _need_sshd()
    port = free_port()
    with ssh_server(tmp_path / "ssh", "127.0.0.1", port) as (sock, known):
        yield port, sock, known


@pytest.fixture
def sshd_port22(tmp_path: Path, servers):
    """sshd on 127.0.0.2:22, where scp-like ``root@127.0.0.2:path`` remotes go (skipped when
    that port is taken): (agent socket, known_hosts line)."""
    _need_sshd()
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as sshd: past TIME_WAITs
        try:
            probe.bind(("127.0.0.2", 22))
        except OSError:
            pytest.skip("127.0.0.2:22 is taken")
    with ssh_server(tmp_path / "ssh22", "127.0.0.2", 22) as served:
        yield served


def test_scp_like_remote_as_buildkit_lowers_and_fetches_it(tmp_path: Path, repo: Repo, sshd_port22):
    sock, known = sshd_port22
    url = f"root@127.0.0.2:{repo.path}"
    from solver.frontend import dockerfile_to_llb
    from solver.llb import pb
    defn = dockerfile_to_llb(f"FROM scratch\nADD {url}#main:sub /src\n").definition()
    src = next(op.op for op in map(pb.Op.from_bytes, defn.def_) if isinstance(op.op, pb.SourceOp))
    assert src.identifier == f"git://127.0.0.2{repo.path}#main:sub"
    assert (src.attrs["git.fullurl"], src.attrs["git.mountsshsock"], src.attrs["git.knownsshhosts"]) == \
        (url, "default", known)
    out, _ = built(tmp_path, f"FROM scratch\nADD {url}#main:sub /src\n", "--ssh", f"default={sock}")
    assert (out / "src" / "dir" / "inner.txt").read_text() == "inner v1\n"


def test_ssh_remote_through_the_forwarded_agent(tmp_path: Path, repo: Repo, sshd):
    port, sock, _ = sshd
    url = f"ssh://root@127.0.0.1:{port}{repo.path}"
    dockerfile = f"FROM scratch\nADD {url}#main /src\n"
    line = failed(tmp_path, dockerfile)  # BuildKit mounts the default agent for ssh remotes
    assert line.startswith("error: Dockerfile:2: ") and "no SSH key 'default' forwarded" in line, line
    out, _ = built(tmp_path, dockerfile, "--ssh", f"default={sock}")
    assert (out / "src" / "README").read_text() == "second\n"
    out, _ = built(tmp_path, f"FROM scratch\nADD {url}#v1 /src\n", "--ssh", f"default={sock}", name="tag")
    assert (out / "src" / "README").read_text() == "first\n"


def test_ssh_host_key_scanned_at_lowering_and_checked(tmp_path: Path, repo: Repo, sshd):
    """As Go's llb.Git, the lowering scans the host key into git.knownsshhosts; the fetch
    then checks it (a wrong key fails; BuildKit's UserKnownHostsFile)."""
    from solver.errors import GitSourceError
    from solver.frontend import dockerfile_to_llb
    from solver.llb import pb
    from solver.llb.sources import git as llb_git
    from solver.solve.solver import Solver
    port, sock, known = sshd
    url = f"ssh://root@127.0.0.1:{port}{repo.path}"
    defn = dockerfile_to_llb(f"FROM scratch\nADD {url}#main /src\n").definition()
    sources = [op.op for op in map(pb.Op.from_bytes, defn.def_) if isinstance(op.op, pb.SourceOp)]
    assert sources[0].attrs["git.knownsshhosts"] == known
    assert sources[0].attrs["git.mountsshsock"] == "default"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    other = (tmp_path / "other.pub").read_text().split()
    wrong = llb_git(url, "main", known_ssh_hosts=f"[127.0.0.1]:{port} {other[0]} {other[1]}")
    with Solver(cache_dir=tmp_path / "cache") as solver:
        assert solver.solve(defn, ssh={"default": sock}).snapshot
        with pytest.raises(GitSourceError) as error:
            solver.solve(wrong, ssh={"default": sock})
    assert "Host key verification failed" in str(error.value) and url in str(error.value)


def test_notebook_cell_adds_a_git_source(tmp_path: Path, repo: Repo, capsys, monkeypatch):
    """%%dockerfile cells: ADD of a git ref builds, a re-run is cached, an unknown ref is a
    GitSourceError naming the cell's line."""
    from IPython.terminal.interactiveshell import TerminalInteractiveShell
    from IPython.testing import globalipapp
    import kernel_ext
    from solver.errors import GitSourceError
    ip = globalipapp.start_ipython() or TerminalInteractiveShell.instance()
    ip.run_line_magic("load_ext", "kernel_ext")
    monkeypatch.chdir(tmp_path)
    state = kernel_ext._registry[id(ip)]
    state.session.close()
    state.session = kernel_ext._new_session()
    state.session.cache_dir = tmp_path / "cache"
    state.session.context = tmp_path
    try:
        result = ip.run_cell(f"%%dockerfile\nFROM scratch\nADD {repo.url}#main /src\n", cell_id="a")
        assert result.error_in_exec is None, result.error_in_exec
        capsys.readouterr()
        result = ip.run_cell(f"%%dockerfile\nFROM scratch\nADD {repo.url}#main /src\n", cell_id="a")
        out = capsys.readouterr().out
        assert result.error_in_exec is None and "2 steps, 2 cached" in out, out
        result = ip.run_cell(f"%%dockerfile\nFROM scratch\n\nADD {repo.url}#nosuch /src\n", cell_id="a")
        error = result.error_in_exec
        assert isinstance(error, GitSourceError) and error.line == 3, error
        assert "repository does not contain ref nosuch" in str(error)
    finally:
        state.session.close()
        ip.run_line_magic("unload_ext", "kernel_ext")
        if hasattr(globalipapp.start_ipython, "already_called"):  # a later module starts the shell again
            del globalipapp.start_ipython.already_called


# ------------------------------------------------------------------------------ errors


def test_unknown_ref_and_bad_subdir_and_unreachable_host(tmp_path: Path, repo: Repo):
    line = failed(tmp_path, f"FROM scratch\nADD {repo.url}#nosuch /src\n")
    assert line.startswith("error: Dockerfile:2: "), line
    assert f"git source {repo.url}#nosuch: repository does not contain ref nosuch" in line
    line = failed(tmp_path, f"FROM scratch\nADD {repo.url}#main:nope/x /src\n")
    assert line.startswith("error: Dockerfile:2: ") and "invalid subdir nope/x" in line, line
    dead = f"git://127.0.0.1:{free_port()}/repo.git"
    line = failed(tmp_path, f"FROM scratch\nADD {dead}#main /src\n")
    assert line.startswith("error: Dockerfile:2: ") and f"failed to fetch remote {dead}" in line, line
    # nothing half-made was kept: no temp repositories, no temp files of the fetch
    cache = tmp_path / "cache"
    assert not [p for p in (cache / "git").glob(".init-*")] if (cache / "git").exists() else True
    assert not list((cache / "tmp").glob("git-*"))


def test_missing_git_binary_is_one_line(tmp_path: Path, repo: Repo):
    ctx = tmp_path / "ctx"
    write(ctx / "Dockerfile", f"FROM scratch\nADD {repo.url}#main /src\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": str(tmp_path / "empty-bin")}
    proc = subprocess.run([*LLBOOK, "build", "--no-server", "--cache-dir", str(tmp_path / "cache"), str(ctx)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith(f"git source {repo.url}#main: the git command is not "
                                                         "installed")


def test_interrupt_while_git_waits_leaves_nothing(tmp_path: Path):
    """SIGINT while ls-remote waits on a server that never answers: exit 130, git killed,
    no bare repository, temp dir or index file left."""
    import signal
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    ctx = tmp_path / "ctx"
    write(ctx / "Dockerfile", f"FROM scratch\nADD git://127.0.0.1:{port}/hang.git#main /src\n")
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([*LLBOOK, "build", "--no-server", "--progress", "plain", "--cache-dir", str(cache),
                             str(ctx)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        listener.settimeout(120)
        conn, _ = listener.accept()  # git is connected and waits for the server's reply
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        conn.close()
    finally:
        listener.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    survivors = subprocess.run(["pgrep", "-f", f"127.0.0.1:{port}/hang.git"], capture_output=True, text=True)
    assert survivors.stdout.strip() == ""
    assert not (cache / "git").exists() or not list((cache / "git").iterdir())
    assert not list((cache / "tmp").glob("git-*")) and not list((cache / "tmp").glob("known-hosts-*"))


# ------------------------------------------------------------------------------ against BuildKit


def _tree(path: Path, skip_git_internals: bool = True) -> dict[str, tuple]:
    """name -> (type, mode, uid, gid, link, bytes) of a tar, without what git writes differently
    on every clone (a kept .git directory's packs, index, logs)."""
    import tarfile
    out = {}
    with tarfile.open(path) as archive:
        for member in archive:
            name = member.name.lstrip("./").rstrip("/")
            if skip_git_internals and "/.git/" in f"/{name}/" and not name.endswith(".git"):
                continue
            data = archive.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            out[name] = (member.type, member.mode, member.uid, member.gid, member.linkname, data)
    return out


def test_same_files_as_buildkit_in_dockerd(tmp_path: Path, repo: Repo, dockerd):
    """The same Definition solved by dockerd's BuildKit and by llbook gives the same files,
    modes and owners (a branch, an annotated tag, the .git dir kept; dockerd 20.10's BuildKit
    has no subdirs)."""
    from solver.buildkit.client import BuildKitClient, Export
    from solver.buildkit.session import SessionServices
    from solver.export import export, parse_output
    from solver.export.result_source import export_source
    from solver.frontend import dockerfile_to_llb
    from solver.solve.solver import Solver
    dockerfile = (f"FROM scratch\nADD {repo.url}#main /src\nADD {repo.url}#v1 /tag\n"
                  f"ADD --keep-git-dir=true {repo.url}#main /kept\n")
    lowered = dockerfile_to_llb(dockerfile)
    defn = lowered.definition()
    with Solver(cache_dir=tmp_path / "cache") as solver:
        embedded = solver.solve(defn)
        export(export_source(solver, embedded, lowered.image_config),
               parse_output(f"type=tar,dest={tmp_path / 'embedded.tar'}"))
    with BuildKitClient("dockerd://") as client:
        result = client.solve(defn, export=Export("tar", dest=str(tmp_path / "daemon.tar")),
                              services=SessionServices(dirs={}))
    ours, theirs = _tree(tmp_path / "embedded.tar"), _tree(tmp_path / "daemon.tar")
    differing = {k: (ours.get(k), theirs.get(k)) for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k)}
    assert not differing
    assert theirs["tag/README"][-1] == b"first\n" and "kept/.git" in theirs
    kept = _tree(tmp_path / "embedded.tar", skip_git_internals=False)
    assert "kept/.git/refs/tags/main" in kept and "kept/.git/FETCH_HEAD" not in kept  # current BuildKit's
    assert {v.digest for v in load_reachable(defn)} <= {v.digest for v in result.vertices}


def test_git_context_and_named_context_on_dockerd(tmp_path: Path, repo: Repo, dockerd):
    """--buildkit-host dockerd://: the daemon fetches the git context and a git named context
    (no subdir: dockerd 20.10's BuildKit has none)."""
    repo.commit({"Dockerfile": "FROM scratch\nCOPY README /hello\nCOPY --from=other README /other\n"}, "df")
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("BUILDKIT_HOST", "LLBOOK_BUILDKIT_HOST")}
    proc = subprocess.run([*LLBOOK, "build", "--buildkit-host", "dockerd://", "--progress", "plain",
                           "--cache-dir", str(tmp_path / "cache"), "--output", f"type=local,dest={out}",
                           "--build-context", f"other={repo.url}#dev", f"{repo.url}#main"],
                          env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (out / "hello").read_text() == "second\n"
    assert (out / "other").read_text() == "dev\n"
    assert f"[internal] load git source {repo.url}#main" in proc.stderr  # the daemon's vertex


def load_reachable(defn):
    from solver.llb.definition import load
    return load(defn).reachable()


# ------------------------------------------------------------------------------ lowering


def test_lowering_matches_buildkit_llb_git():
    from solver.frontend.gitref import parse_git_ref
    from solver.llb import pb
    from solver.llb.sources import git as llb_git

    def source(state) -> pb.SourceOp:
        defn = state.marshal()
        ops = [pb.Op.from_bytes(d) for d in defn.def_]
        return next(op.op for op in ops if isinstance(op.op, pb.SourceOp))

    https = source(llb_git("https://example.com/org/repo.git", "v1", subdir="a/b", keep_git_dir=True,
                           checksum="abc123"))
    assert https.identifier == "git://example.com/org/repo.git#v1:a/b"
    assert https.attrs == {"git.fullurl": "https://example.com/org/repo.git", "git.keepgitdir": "true",
                           "git.checksum": "abc123", "git.authtokensecret": "GIT_AUTH_TOKEN",
                           "git.authheadersecret": "GIT_AUTH_HEADER"}
    scp = source(llb_git("git@example.com:org/repo.git", "main"))
    assert scp.identifier == "git://example.com/org/repo.git#main"
    assert scp.attrs["git.fullurl"] == "git@example.com:org/repo.git"
    assert scp.attrs["git.mountsshsock"] == "default"
    ref = parse_git_ref("git@example.com:org/repo.git#main:sub")
    assert ref is not None and (ref.remote, ref.ref, ref.subdir) == ("git@example.com:org/repo.git", "main", "sub")
    assert parse_git_ref("https://example.com/file.tar.gz") is None
    assert parse_git_ref("github.com/org/repo") is None  # a local path for ADD
    ctx = parse_git_ref("github.com/org/repo#x", for_context=True)
    assert ctx is not None and ctx.remote == "github.com/org/repo"
    q = parse_git_ref("https://example.com/r.git?tag=v2&subdir=docs&keep-git-dir")
    assert q is not None and (q.ref, q.subdir, q.keep_git_dir) == ("refs/tags/v2", "docs", True)
    fbc = source(llb_git("https://example.com/r.git", "main", checksum="a" * 40, fetch_by_commit=True))
    assert fbc.attrs["git.fetchbycommit"] == "true" and fbc.attrs["git.checksum"] == "a" * 40
