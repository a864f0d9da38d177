"""OCI image layouts (directory or tar) and docker archives (`docker load`).

The layout follows containerd's ``images/archive`` exporter that BuildKit uses:
``oci-layout``, ``index.json`` whose manifest descriptors carry
``io.containerd.image.name`` (the full name) and ``org.opencontainers.image.ref.name``
(the tag), and ``blobs/sha256/<hex>``. The docker variant adds ``manifest.json`` with
``Config``, ``RepoTags`` and ``Layers``. Tar members are sorted by name and streamed from
the content store (blob bodies copied in the kernel where it can), so memory stays flat
whatever the image size.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from solver.cache.content import ContentStore
from solver.export.image import OCI_INDEX, CommittedImage, Descriptor, canonical_json
from solver.export.layer import COPY_BUFFER
from solver.source import reference

OCI_LAYOUT = {"imageLayoutVersion": "1.0.0"}

Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclass(frozen=True)
class NamedImage:
    """An image to write, with the names it should carry (may be empty)."""

    image: CommittedImage
    names: tuple[str, ...] = ()


def _blob_digests(images: list[NamedImage]) -> list[str]:
    seen: dict[str, None] = {}
    for named in images:
        img = named.image
        for d in (img.manifest.digest, img.config.digest, *(layer.digest for layer in img.layers)):
            seen.setdefault(d, None)
    return sorted(seen)


def index_json(images: list[NamedImage], *, created: str | None = None) -> dict:
    """The layout's index.json: one manifest descriptor per (image, name)."""
    manifests = []
    for named in images:
        names = named.names or ("",)
        for name in names:
            annotations: dict[str, str] = {}
            if name:
                ref = reference.parse(name)
                annotations["io.containerd.image.name"] = ref.string
                annotations["org.opencontainers.image.ref.name"] = ref.tag or "latest"
            if created:
                annotations["org.opencontainers.image.created"] = created
            m = named.image.manifest
            manifests.append(Descriptor(m.media_type, m.digest, m.size, annotations=annotations,
                                        platform=m.platform).to_dict())
    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}


def docker_manifest_json(images: list[NamedImage]) -> list[dict]:
    """``manifest.json`` of a docker archive."""
    out = []
    for named in images:
        img = named.image
        out.append({
            "Config": "blobs/sha256/" + img.config.digest.split(":", 1)[1],
            "RepoTags": [reference.parse(n).familiar for n in named.names],
            "Layers": ["blobs/sha256/" + layer.digest.split(":", 1)[1] for layer in img.layers],
        })
    return out


def _members(store: ContentStore, images: list[NamedImage], *, docker: bool,
             created: str | None) -> Iterator[tuple[str, bytes | Path]]:
    """Archive members in name order: small files as bytes, blobs as store paths."""
    members: dict[str, bytes | Path] = {}
    members["oci-layout"] = canonical_json(OCI_LAYOUT)
    members["index.json"] = canonical_json(index_json(images, created=created))
    if docker:
        members["manifest.json"] = canonical_json(docker_manifest_json(images))
    for d in _blob_digests(images):
        members["blobs/sha256/" + d.split(":", 1)[1]] = store.path(d)
    for name in ("blobs", "blobs/sha256"):
        members[name + "/"] = b""
    for name in sorted(members):
        yield name, members[name]


def write_archive(store: ContentStore, images: list[NamedImage], out: BinaryIO, *,
                  docker: bool = False, mtime: int = 0, created: str | None = None,
                  progress: Progress | None = None) -> None:
    """Stream an OCI (or docker) archive of ``images`` into ``out``."""
    members = list(_members(store, images, docker=docker, created=created))
    total = sum(v.stat().st_size if isinstance(v, Path) else len(v) for _, v in members)
    done = 0
    tar = TarStreamWriter(out)
    for name, value in members:
        info = tarfile.TarInfo(name.rstrip("/"))
        info.mtime = mtime
        if name.endswith("/"):
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.add(info)
            continue
        info.mode = 0o444 if isinstance(value, Path) else 0o644
        info.size = value.stat().st_size if isinstance(value, Path) else len(value)
        tar.add(info, value)
        done += info.size
        if progress:
            progress(name, done, total)
    tar.close()


class TarStreamWriter:
    """A tar stream, byte for byte as ``tarfile.open(mode="w|", format=PAX_FORMAT)`` writes
    it, whose file bodies are copied by the kernel (``copy_file_range``, else
    ``sendfile``) when ``out`` has a file descriptor, instead of through Python buffers."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.offset = 0
        try:
            self._fd: int | None = out.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            self._fd = None

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self.offset += len(data)

    def add(self, info: tarfile.TarInfo, body: bytes | Path | None = None) -> None:
        """One member: its header, then ``body`` (``info.size`` bytes) padded to a block."""
        self._write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        if body is None:
            return
        if isinstance(body, Path):
            with open(body, "rb") as f:
                self._copy(f, info.size)
        else:
            self._write(body)
        if info.size % tarfile.BLOCKSIZE:
            self._write(tarfile.NUL * (tarfile.BLOCKSIZE - info.size % tarfile.BLOCKSIZE))

    def _copy(self, src: BinaryIO, size: int) -> None:
        done = 0
        if self._fd is not None:
            self.out.flush()  # the kernel writes at the descriptor's offset
            done = _kernel_copy(src.fileno(), self._fd, size)
            src.seek(done)
        while done < size:
            chunk = src.read(min(COPY_BUFFER, size - done))
            if not chunk:
                raise OSError(f"{getattr(src, 'name', 'blob')} is shorter than {size} bytes")
            self.out.write(chunk)
            done += len(chunk)
        self.offset += size

    def close(self) -> None:
        """The end-of-archive blocks, padded to a whole record, as tarfile does."""
        self._write(tarfile.NUL * (tarfile.BLOCKSIZE * 2))
        if self.offset % tarfile.RECORDSIZE:
            self._write(tarfile.NUL * (tarfile.RECORDSIZE - self.offset % tarfile.RECORDSIZE))
        self.out.flush()


def _kernel_copy(src: int, dst: int, size: int) -> int:
    """Copy up to ``size`` bytes from the start of ``src`` to ``dst``'s offset in the
    kernel; returns how many were copied (0 when neither call applies here)."""
    done = 0
    for name in ("copy_file_range", "sendfile"):
        call = getattr(os, name, None)
        if call is None:
            continue
        try:
            while done < size:
                if name == "copy_file_range":
                    n = call(src, dst, min(size - done, 1 << 30), done)
                else:
                    n = call(dst, src, done, min(size - done, 1 << 30))
                if n == 0:
                    break
                done += n
            return done
        except OSError as error:
            if done or error.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP,
                                           errno.EBADF, errno.ESPIPE):
                raise
    return done


def write_layout_dir(store: ContentStore, images: list[NamedImage], dest: Path, *,
                     docker: bool = False, created: str | None = None,
                     progress: Progress | None = None) -> None:
    """Write an OCI layout directory (blobs are copied, or hard-linked when possible).

    An existing layout at ``dest`` is extended: its blobs stay, and its index.json gains
    the new manifests (replacing ones with the same name)."""
    dest.mkdir(parents=True, exist_ok=True)
    members = list(_members(store, images, docker=docker, created=created))
    total = sum(v.stat().st_size for _, v in members if isinstance(v, Path))
    done = 0
    for name, value in members:
        target = dest / name
        if name.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
        elif isinstance(value, Path):
            if not target.exists():
                _link_or_copy(value, target)
            done += value.stat().st_size
            if progress:
                progress(name, done, total)
        elif name == "index.json":
            _write_atomic(target, canonical_json(_merge_index(target, json.loads(value))))
        else:
            _write_atomic(target, value)


def _merge_index(path: Path, new: dict) -> dict:
    if not path.exists():
        return new
    old = json.loads(path.read_text())
    new_names = {m.get("annotations", {}).get("io.containerd.image.name") for m in new["manifests"]}
    kept = [m for m in old.get("manifests", [])
            if m.get("annotations", {}).get("io.containerd.image.name") not in new_names - {None}]
    return {**new, "manifests": kept + new["manifests"]}


def _link_or_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
