"""Read an image back through dockerd: its filesystem (`docker create` + `docker export`),
its layers (`docker save`: what each one adds, changes and whites out), its config
(`docker inspect`) and history, in forms two images can be compared by."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tarfile
import tempfile
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
    layers: list[dict[str, Entry]]  # each layer's entries, whiteouts included


def _docker(client: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([client, *args], capture_output=True, check=True, timeout=300)


def _entries(tar: tarfile.TarFile) -> dict[str, Entry]:
    files: dict[str, Entry] = {}
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
    return files


def read_files(client: str, image: str) -> dict[str, Entry]:
    container = _docker(client, "create", "--network=none", image, "/nonexistent").stdout.decode().strip()
    try:
        proc = subprocess.Popen([client, "export", container], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            files = _entries(tar)
        proc.wait(timeout=300)
        return files
    finally:
        _docker(client, "rm", "-f", container)


def read_saved(client: str, image: str) -> tuple[list[dict[str, Entry]], list[tuple[str, bool]]]:
    """`docker save`: each layer's entries, and the config's history (created_by, empty_layer)."""
    with tempfile.TemporaryFile() as saved:
        subprocess.run([client, "save", image], stdout=saved, check=True, timeout=300)
        saved.seek(0)
        with tarfile.open(fileobj=saved) as archive:
            manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
            config = json.load(archive.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
            layers = []
            for name in manifest[0]["Layers"]:
                with tarfile.open(fileobj=archive.extractfile(name)) as layer:
                    layers.append(_entries(layer))
    history = [(h.get("created_by", ""), bool(h.get("empty_layer"))) for h in config.get("history", [])]
    return layers, history


def read_image(client: str, image: str) -> ImageView:
    inspect = json.loads(_docker(client, "inspect", image).stdout)[0]
    config = {key: inspect["Config"].get(key) for key in CONFIG_FIELDS}
    for key in ("ExposedPorts", "Volumes", "Labels"):
        config[key] = config[key] or None
    config["Cmd"] = config["Cmd"] or None
    config["Author"] = inspect.get("Author") or ""
    config["Architecture"], config["Os"] = inspect["Architecture"], inspect["Os"]
    layers, history = read_saved(client, image)
    return ImageView(read_files(client, image), config, history, layers)


# History texts that BuildKit writes differently since dockerd 20.10's v0.8 (which the
# tests' dockerd runs); llbook writes today's forms, checked against BuildKit's source by
# the lowering tests. Compared here without the part that changed:
_VERSIONED_HISTORY = [
    (re.compile(r"^(COPY|ADD)((?: --(?:chown|chmod|parents)(?:=\S*)?)+) "), r"\1 "),  # flags since 1.4
    (re.compile(r"^(EXPOSE|HEALTHCHECK) .*"), r"\1 ..."),  # %v of a list / %+v of a struct now
    (re.compile(r"(?<=^ARG )(.*)"), lambda m: " ".join(a.split("=")[0] for a in m.group(1).split())),
]


def _dedup_run_args(match: re.Match) -> str:
    """v0.8 lists an ARG declared twice twice in RUN's `|N K=V ...`; today once, at its first
    place with its last value (runCommandString)."""
    words = match.group(2).split(" ")
    count = int(match.group(1))
    values: dict[str, str] = {}
    for word in words[:count]:
        key, _, value = word.partition("=")
        values[key] = value
    rest = " ".join(words[count:])
    return f"RUN |{len(values)} " + " ".join(f"{k}={v}" for k, v in values.items()) + " " + rest


def normalise_history(created_by: str) -> str:
    for pattern, repl in _VERSIONED_HISTORY:
        created_by = pattern.sub(repl, created_by)
    return re.sub(r"^RUN \|(\d+) (.*)$", _dedup_run_args, created_by, flags=re.S)


def _marker(path: str, entry: Entry | None) -> Entry | None:
    """A whiteout marker is compared by its name only: its mode and owner differ between
    differs (moby's overlay converter: 0600, an opaque marker its directory's mode;
    containerd's ChangeWriter: 0) and every extractor ignores them."""
    if entry is None or not path.rsplit("/", 1)[-1].startswith(".wh."):
        return entry
    return Entry(entry.type, 0, 0, 0, entry.size, entry.sha256, entry.link)


def _diff_entries(where: str, want: dict[str, Entry], got: dict[str, Entry]) -> list[str]:
    out = []
    for path in sorted(set(want) | set(got)):
        a, b = _marker(path, want.get(path)), _marker(path, got.get(path))
        if a != b:
            out.append(f"{where}{path}: docker {a.describe() if a else 'absent'} | llbook {b.describe() if b else 'absent'}")
    return out


def differences(expected: ImageView, actual: ImageView) -> list[str]:
    """Human-readable differences (docker's view first, then llbook's)."""
    out = _diff_entries("", expected.files, actual.files)
    for key in expected.config:
        if expected.config[key] != actual.config.get(key):
            out.append(f"config {key}: docker {expected.config[key]!r} | llbook {actual.config.get(key)!r}")
    if len(expected.layers) != len(actual.layers):
        out.append(f"layers: docker {len(expected.layers)} | llbook {len(actual.layers)}")
    else:
        for i, (want, got) in enumerate(zip(expected.layers, actual.layers)):
            out.extend(_diff_entries(f"layer {i} ", want, got))
    want_history = [(normalise_history(text), empty) for text, empty in expected.history]
    got_history = [(normalise_history(text), empty) for text, empty in actual.history]
    if want_history != got_history:
        out.append(f"history: docker {want_history!r} | llbook {got_history!r}")
    return out
