"""Read an image back through dockerd: its filesystem (`docker create` + `docker export`),
its config (`docker inspect`) and history, in forms two images can be compared by."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
from dataclasses import dataclass

_TYPES = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink",
          tarfile.LNKTYPE: "hardlink", tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block", tarfile.FIFOTYPE: "fifo"}
# docker inspect's Config fields a Dockerfile sets (Hostname, Image, ... are the daemon's)
CONFIG_FIELDS = ("User", "ExposedPorts", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Volumes", "WorkingDir",
                 "Entrypoint", "OnBuild", "Labels", "StopSignal", "Shell")


@dataclass(frozen=True)
class Entry:
    """One path of an exported filesystem, without its times."""

    type: str
    mode: int
    uid: int
    gid: int
    size: int
    sha256: str
    link: str

    def describe(self) -> str:
        text = f"{self.type} {self.mode:04o} {self.uid}:{self.gid}"
        if self.type == "file":
            text += f" {self.size}B {self.sha256[:12]}"
        if self.link:
            text += f" -> {self.link}"
        return text


@dataclass(frozen=True)
class ImageView:
    files: dict[str, Entry]
    config: dict
    history: list[tuple[str, bool]]  # (created_by, empty_layer)
    layers: int


def _docker(client: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([client, *args], capture_output=True, check=True, timeout=300)


def read_files(client: str, image: str) -> dict[str, Entry]:
    container = _docker(client, "create", "--network=none", image, "/nonexistent").stdout.decode().strip()
    try:
        proc = subprocess.Popen([client, "export", container], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        files: dict[str, Entry] = {}
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                digest = ""
                if member.isreg():
                    handle = tar.extractfile(member)
                    assert handle is not None
                    digest = hashlib.sha256(handle.read()).hexdigest()
                name = "/" + member.name.strip("/") if member.name.strip("/") not in ("", ".") else "/"
                link = member.linkname if member.issym() else ("/" + member.linkname.strip("/") if member.islnk() else "")
                files[name] = Entry(_TYPES.get(member.type, repr(member.type)), member.mode & 0o7777,
                                    member.uid, member.gid, member.size if member.isreg() else 0, digest, link)
        proc.wait(timeout=300)
        return files
    finally:
        _docker(client, "rm", "-f", container)


def read_image(client: str, image: str) -> ImageView:
    inspect = json.loads(_docker(client, "inspect", image).stdout)[0]
    config = {key: inspect["Config"].get(key) for key in CONFIG_FIELDS}
    for key in ("ExposedPorts", "Volumes", "Labels"):
        config[key] = config[key] or None
    config["Cmd"] = config["Cmd"] or None
    config["Author"] = inspect.get("Author") or ""
    config["Architecture"], config["Os"] = inspect["Architecture"], inspect["Os"]
    raw = _docker(client, "history", "--no-trunc", "--format", "{{json .}}", image).stdout.decode().splitlines()
    history = [(json.loads(line)["CreatedBy"], json.loads(line)["Size"] in ("0B", "0")) for line in reversed(raw)]
    return ImageView(read_files(client, image), config, history, len(inspect["RootFS"].get("Layers") or []))


def differences(expected: ImageView, actual: ImageView, *, history: bool = True) -> list[str]:
    """Human-readable differences (docker's view first, then llbook's)."""
    out: list[str] = []
    for path in sorted(set(expected.files) | set(actual.files)):
        want, got = expected.files.get(path), actual.files.get(path)
        if want != got:
            out.append(f"{path}: docker {want.describe() if want else 'absent'}"
                       f" | llbook {got.describe() if got else 'absent'}")
    for key in expected.config:
        if expected.config[key] != actual.config.get(key):
            out.append(f"config {key}: docker {expected.config[key]!r} | llbook {actual.config.get(key)!r}")
    if expected.layers != actual.layers:
        out.append(f"layers: docker {expected.layers} | llbook {actual.layers}")
    if history and expected.history != actual.history:
        out.append(f"history: docker {expected.history!r} | llbook {actual.history!r}")
    return out
