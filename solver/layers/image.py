"""The layers of an image read from its layer blobs, as dive reads them: a registry
reference, ``docker-archive://PATH`` (``docker save`` / ``--output type=docker``) or
``oci-layout://PATH[:TAG]`` (a directory or an OCI tarball).

Each layer blob is decompressed once into a plain tar in a scratch directory; its headers
become a ``LayerDiff`` (sizes as the tar headers give them, like dive: 0 for links and
directories; whiteouts and opaque directories as removals of what they hide below) and
its regular files are hashed, so two images compare by content. A file preview reads the
member from that tar.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import zstandard

from solver.errors import LLBookError
from solver.layers.model import LayerInfo, Layers
from solver.layers.pathtrie import PathTrie
from solver.snapshot.diff import ADDED, MODIFIED, REMOVED, Change, FileType, LayerDiff

DOCKER_ARCHIVE = "docker-archive://"
OCI_LAYOUT = "oci-layout://"
_CHUNK = 1 << 20
_TAR_TYPES = {tarfile.DIRTYPE: FileType.DIR, tarfile.SYMTYPE: FileType.SYMLINK, tarfile.CHRTYPE: FileType.CHAR,
              tarfile.BLKTYPE: FileType.BLOCK, tarfile.FIFOTYPE: FileType.FIFO}


class ImageReadError(LLBookError):
    """An image whose layers cannot be read (a bad archive, a missing blob)."""


@dataclass
class _Member:
    offset: int
    size: int
    digest: str = ""
    link: str = ""  # a hard link's target path


@dataclass
class BlobReader:
    """Regular files of an image's layers, read from their decompressed tars."""

    tars: list[Path] = field(default_factory=list)
    members: list[dict[str, _Member]] = field(default_factory=list)

    def _find(self, layer: int, path: str) -> tuple[int, _Member] | None:
        for index in range(layer, -1, -1):
            member = self.members[index].get(path)
            if member is not None:
                return index, member
        return None

    def read(self, layer: int, path: str, limit: int) -> bytes | None:
        found = self._find(layer, path)
        if found is None:
            return None
        index, member = found
        if member.link:
            return self.read(index, member.link, limit)
        with open(self.tars[index], "rb") as f:
            f.seek(member.offset)
            return f.read(min(member.size, limit + 1))

    def digest(self, layer: int, path: str) -> str | None:
        found = self._find(layer, path)
        if found is None:
            return None
        index, member = found
        return self.digest(index, member.link) if member.link else member.digest


@dataclass
class ImageBlobs:
    """What an image reference resolved to: its config and its layer blobs, bottom first."""

    name: str
    config: dict[str, Any]
    blobs: list[Path]
    platform: str = ""


def _decompressed(raw: IO[bytes]) -> IO[bytes]:
    """gzip, zstd or a plain tar, sniffed from the first bytes."""
    head = raw.read(4)
    raw.seek(0)
    if head[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    if head == b"\x28\xb5\x2f\xfd":
        return zstandard.ZstdDecompressor().stream_reader(raw)  # type: ignore[return-value]
    return raw


def _plain_tar(blob: Path, dest: Path) -> Path:
    """``blob`` decompressed into ``dest``."""
    with open(blob, "rb") as raw, _decompressed(raw) as stream, open(dest, "wb") as out:
        shutil.copyfileobj(stream, out, _CHUNK)
    return dest


def _path_of(name: str) -> str:
    parts = [p for p in name.split("/") if p and p != "."]
    return "/" + "/".join(parts)


def _change(path: str, kind: str, member: tarfile.TarInfo) -> Change:
    kind_of = _TAR_TYPES.get(member.type, FileType.FILE)
    size = member.size if member.isreg() else 0
    return Change(path, kind, kind_of, size, member.mode & 0o7777, member.uid, member.gid,
                  member.linkname if member.issym() else "")


def _hash_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    digest = hashlib.sha256()
    stream = tar.extractfile(member)
    if stream is not None:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def read_layer(tar_path: Path, below: PathTrie[Change]) -> tuple[LayerDiff, dict[str, _Member]]:
    """One plain layer tar as a ``LayerDiff`` over the filesystem ``below`` (which is then
    updated to include it), and its members by path."""
    written: dict[str, Change] = {}
    members: dict[str, _Member] = {}
    whiteouts: list[str] = []
    opaque: list[str] = []
    with tarfile.open(tar_path, "r:") as tar:
        for member in tar:
            path = _path_of(member.name)
            if path == "/":
                continue
            parent, base = path.rsplit("/", 1)
            if base == ".wh..wh..opq":
                opaque.append(parent or "/")
                continue
            if base.startswith(".wh."):
                whiteouts.append(f"{parent}/{base[4:]}")
                continue
            kind = MODIFIED if path in below else ADDED
            written[path] = _change(path, kind, member)
            if member.islnk():
                members[path] = _Member(0, 0, link=_path_of(member.linkname))
            elif member.isreg():
                members[path] = _Member(member.offset_data, member.size, _hash_member(tar, member))
    removed = _removals(below, whiteouts, opaque, written)
    for change in removed:
        below.remove(change.path)
    for path, change in written.items():
        below.set(path, change)
    changes = sorted([*written.values(), *removed], key=lambda c: c.path)
    return LayerDiff(tuple(changes)), members


def _removals(below: PathTrie[Change], whiteouts: list[str], opaque: list[str],
              written: dict[str, Change]) -> list[Change]:
    out: dict[str, Change] = {}
    for path in whiteouts:
        lower = below.get(path)
        if lower is not None and path not in written:
            out[path] = Change(path, REMOVED, lower.type, lower.size, lower.mode, lower.uid, lower.gid,
                               lower.linkname)
    for directory in opaque:
        for path, lower in sorted(below.subtree(directory)):
            if path == directory or path in written or any(path.startswith(p + "/") for p in out):
                continue
            out[path] = Change(path, REMOVED, lower.type, lower.size, lower.mode, lower.uid, lower.gid,
                               lower.linkname)
    return list(out.values())


def _instructions(config: dict[str, Any], count: int) -> list[str]:
    history = [h for h in config.get("history", []) if not h.get("empty_layer")]
    made = [h.get("created_by", "") for h in history][-count:] if history else []
    return [""] * (count - len(made)) + made


def layers_of_blobs(image: ImageBlobs, scratch: Path) -> Layers:
    """Read every layer blob of ``image`` (decompressed under ``scratch``)."""
    diff_ids = (image.config.get("rootfs") or {}).get("diff_ids") or []
    below: PathTrie[Change] = PathTrie()
    reader = BlobReader()
    infos, diffs = [], []
    instructions = _instructions(image.config, len(image.blobs))
    for index, blob in enumerate(image.blobs):
        tar_path = _plain_tar(blob, scratch / f"layer-{index}.tar")
        diff, members = read_layer(tar_path, below)
        reader.tars.append(tar_path)
        reader.members.append(members)
        digest = diff_ids[index] if index < len(diff_ids) else ""
        infos.append(LayerInfo.of(index, diff, instructions[index], digest=digest))
        diffs.append(diff)
    return Layers(image.name, infos, diffs, reader, image.platform)


def _docker_archive(path: Path, scratch: Path) -> ImageBlobs:
    """The first image of a ``docker save`` tarball."""
    try:
        with tarfile.open(path) as tar:
            manifest = json.load(_member(tar, "manifest.json"))
            if not manifest:
                raise ImageReadError(f"{path}: manifest.json lists no image")
            entry = manifest[0]
            config = json.load(_member(tar, entry["Config"]))
            blobs = []
            for index, name in enumerate(entry.get("Layers") or []):
                dest = scratch / f"blob-{index}"
                with open(dest, "wb") as out:
                    shutil.copyfileobj(_member(tar, name), out, _CHUNK)
                blobs.append(dest)
    except (OSError, tarfile.TarError, ValueError, KeyError) as err:
        raise ImageReadError(f"{path}: not a docker archive: {err}") from err
    tags = entry.get("RepoTags") or []
    return ImageBlobs(tags[0] if tags else f"{DOCKER_ARCHIVE}{path}", config, blobs, _platform_of(config))


def _member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    stream = tar.extractfile(name)
    if stream is None:
        raise ImageReadError(f"{name} is not a file in the archive")
    return stream


def _platform_of(config: dict[str, Any]) -> str:
    parts = [config.get("os", ""), config.get("architecture", ""), config.get("variant", "")]
    return "/".join(p for p in parts if p)


def _oci_layout(text: str, platform: Any, scratch: Path) -> ImageBlobs:
    from solver.source.oci_layout import OCILayoutError, open_layout_ref, parse_layout_ref
    ref = parse_layout_ref(text)
    root = Path(ref.path)
    if root.is_file():  # an OCI tarball: unpack it first
        unpacked = scratch / "layout"
        with tarfile.open(root) as tar:
            tar.extractall(unpacked, filter="data")
        text = f"{OCI_LAYOUT}{unpacked}" + (f":{ref.tag}" if ref.tag else "") + (
            f"@{ref.digest}" if ref.digest else "")
    try:
        layout, resolved = open_layout_ref(text, platform)
    except OCILayoutError as err:
        raise ImageReadError(str(err)) from err
    return ImageBlobs(f"{OCI_LAYOUT}{ref.path}", resolved.config,
                      [layout.blob_path(l.digest) for l in resolved.layers], str(resolved.platform))


def _registry(ref: str, platform: Any, scratch: Path) -> ImageBlobs:
    from solver.cache.content import ContentStore
    from solver.source.image import ImageSource
    from solver.source.registry import RegistryClient
    from solver.source.registry_config import load_registry_config
    source = ImageSource(RegistryClient(load_registry_config()))
    resolved = source.resolve(ref, platform)
    store = ContentStore(scratch / "content")
    blobs = source.pull(resolved, store)
    return ImageBlobs(resolved.name, resolved.config, blobs, str(resolved.platform))


def open_image(ref: str, scratch: Path, platform: str | None = None) -> Layers:
    """The layers of ``ref`` (a registry reference, ``docker-archive://PATH`` or
    ``oci-layout://PATH[:TAG]``) for ``platform`` (default: this machine's)."""
    from solver.source.registry import Platform
    wanted = Platform.parse(platform) if platform else None
    if ref.startswith(DOCKER_ARCHIVE):
        blobs = _docker_archive(Path(ref[len(DOCKER_ARCHIVE):]), scratch)
    elif ref.startswith(OCI_LAYOUT):
        blobs = _oci_layout(ref, wanted, scratch)
    else:
        blobs = _registry(ref, wanted, scratch)
    return layers_of_blobs(blobs, scratch)


def platforms_of(ref: str) -> list[str]:
    """The platforms a registry reference's index offers (one entry for a single manifest)."""
    from solver.source.registry import INDEX_TYPES, RegistryClient
    from solver.source.registry_config import load_registry_config
    client = RegistryClient(load_registry_config())
    top = client.get_manifest(ref)
    if top.media_type not in INDEX_TYPES:
        return []
    out = []
    for desc in top.json().get("manifests", []):
        p = desc.get("platform") or {}
        if p.get("os") and p.get("os") != "unknown":
            out.append("/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x))
    return out


@dataclass
class Scratch:
    """A scratch directory removed on exit (the decompressed layers live there)."""

    root: Path | None = None

    def __enter__(self) -> Path:
        self.root = Path(tempfile.mkdtemp(prefix="llbook-layers-"))
        return self.root

    def __exit__(self, *exc: object) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

