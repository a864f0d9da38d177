"""Exporters: OCI layout, docker archive, rootfs tar, local directory, registry push.

``parse_output("type=oci,dest=out.tar")`` reads docker build's ``--output`` syntax, and
``export(source, output)`` writes it. An ``ExportSource`` is what an exporter needs from a
build result: the content store, the image config from the frontend, the layers bottom
first (pulled blobs or overlay-form diff directories), and a way to mount the result's
filesystem read-only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ContextManager

from solver.cache.content import ContentStore
from solver.errors import LLBookError, shorten_middle
from solver.export.archive import NamedImage, write_archive, write_layout_dir
from solver.export.image import CommittedImage, ImageLayer, commit_image
from solver.export.layer import BLOB_FORMAT, COMPRESSIONS, GZIP, LayerBlob, compression_of, layer_media_type, store_layer
from solver.export.push import PushReport, push_image
from solver.export.rootfs import write_local, write_rootfs_tar

EXPORT_TYPES = ("oci", "docker", "tar", "local", "image", "registry")

__all__ = ["ExportError", "ExportLayer", "ExportResult", "ExportSource", "OutputSpec", "export",
           "parse_output"]


class ExportError(LLBookError):
    """An output that cannot be written: bad options, or a failed write."""


@dataclass(frozen=True)
class OutputSpec:
    """One ``--output``: its type and options, docker build's syntax."""

    type: str
    dest: str = ""
    name: str = ""
    push: bool = False
    tar: bool = True
    compression: str = GZIP
    oci_mediatypes: bool = True
    force_compression: bool = False
    source_date_epoch: int | None = None
    attrs: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n in self.name.split(",") if n)


def _bool(value: str, key: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on", ""):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ExportError(f"--output: {key}={value!r} is not a boolean")


def parse_output(text: str, *, tags: tuple[str, ...] = ()) -> OutputSpec:
    """Parse ``type=oci,dest=FILE,tar=false,...``; a bare path means ``type=local,dest=PATH``
    and ``-`` means a tar on stdout, as in docker build."""
    if "=" not in text:
        return OutputSpec("tar", dest="-") if text == "-" else OutputSpec("local", dest=text)
    attrs: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            if attrs and "name" in attrs:  # a comma inside name=a,b
                attrs["name"] += "," + part
                continue
            raise ExportError(f"--output: {part!r} is not key=value")
        attrs[key.strip()] = value.strip()
    kind = attrs.pop("type", "")
    if kind == "registry":
        kind, attrs["push"] = "image", "true"
    if kind not in EXPORT_TYPES:
        raise ExportError(f"--output: unknown type {kind!r}; use one of oci, docker, tar, local, image")
    compression = attrs.pop("compression", GZIP)
    if compression not in COMPRESSIONS:
        raise ExportError(f"--output: unknown compression {compression!r}; use gzip, zstd or uncompressed")
    epoch = attrs.pop("source-date-epoch", None)
    spec = OutputSpec(
        type=kind, dest=attrs.pop("dest", ""), name=attrs.pop("name", ",".join(tags)),
        push=_bool(attrs.pop("push", "false"), "push"), tar=_bool(attrs.pop("tar", "true"), "tar"),
        compression=compression, oci_mediatypes=_bool(attrs.pop("oci-mediatypes", "true"), "oci-mediatypes"),
        force_compression=_bool(attrs.pop("force-compression", "false"), "force-compression"),
        source_date_epoch=int(epoch) if epoch else None, attrs=attrs)
    _validate(spec)
    return spec


def _validate(spec: OutputSpec) -> None:
    if spec.type in ("oci", "docker", "tar", "local") and not spec.dest:
        raise ExportError(f"--output type={spec.type} needs dest=")
    if spec.type == "local" and spec.dest == "-":
        raise ExportError("--output type=local cannot write to stdout; use type=tar,dest=-")
    if spec.type == "image" and not spec.names:
        raise ExportError("--output type=image needs name= (or -t)")
    if spec.type == "image" and not spec.push:
        raise ExportError("--output type=image without push=true has no image store to go to here; "
                          "add push=true, or use type=oci/docker")


@dataclass(frozen=True)
class ExportLayer:
    """One layer of a result: a pulled blob, or the overlay-form diff of a built layer.

    ``cache_id`` (the snapshot's name) lets the compressed blob of a diff be reused by
    the next export instead of being tarred and compressed again."""

    diff_dir: Path | None = None
    blob: ImageLayer | None = None
    cache_id: str = ""


@dataclass
class ExportSource:
    """What exporters need from a build result."""

    store: ContentStore
    image_config: dict[str, Any]
    layers: list[ExportLayer]
    mount_rootfs: Callable[[], ContextManager[Path]]
    base_history_len: int = 0
    base_repository: str = ""  # a repository the base layers can be mounted from
    created: float | None = None  # when the result was built; None means now


@dataclass
class ExportResult:
    """What an export produced."""

    type: str
    dest: str = ""
    manifest_digest: str = ""
    config_digest: str = ""
    size: int = 0
    push: PushReport | None = None


Progress = Callable[[str, int, int], None]


def epoch_from_env(spec: OutputSpec, build_args: dict[str, str] | None = None) -> int | None:
    """SOURCE_DATE_EPOCH from the output option, the build arg, or the environment."""
    for value in (spec.source_date_epoch, (build_args or {}).get("SOURCE_DATE_EPOCH"),
                  os.environ.get("SOURCE_DATE_EPOCH")):
        if value not in (None, ""):
            try:
                return int(value)  # type: ignore[arg-type]
            except ValueError:
                raise ExportError(f"SOURCE_DATE_EPOCH={value!r} is not a unix time") from None
    return None


def export(source: ExportSource, output: OutputSpec, *, epoch: int | None = None,
           registry_client: Any = None, progress: Progress | None = None) -> ExportResult:
    """Write ``source`` as ``output`` describes."""
    if output.type in ("tar", "local"):
        return _export_filesystem(source, output, epoch, progress)
    image = build_image(source, output, epoch=epoch, progress=progress)
    result = ExportResult(output.type, output.dest, image.manifest.digest, image.config.digest,
                          image.manifest.size + image.config.size + sum(l.size for l in image.layers))
    if output.type in ("oci", "docker"):
        _write_layout(source.store, image, output, progress)
    if output.type == "image" and output.push:
        if registry_client is None:
            from solver.source.registry import RegistryClient
            registry_client = RegistryClient()
        mount_from = {l.digest: source.base_repository for l in image.layers if source.base_repository}
        for name in output.names:
            result.push = push_image(registry_client, source.store, image, name, mount_from=mount_from,
                                     progress=progress)
    return result


def build_image(source: ExportSource, output: OutputSpec, *, epoch: int | None = None,
                progress: Progress | None = None) -> CommittedImage:
    """Layers as blobs in the store, then the config and manifest."""
    layers: list[ImageLayer] = []
    for i, layer in enumerate(source.layers):
        if progress:
            progress(f"layer {i + 1}/{len(source.layers)}", i, len(source.layers))
        layers.append(_layer_blob(source.store, layer, output, epoch))
    return commit_image(source.store, source.image_config, layers, oci_mediatypes=output.oci_mediatypes,
                        epoch=epoch, base_history_len=source.base_history_len, created=source.created)


def _layer_blob(store: ContentStore, layer: ExportLayer, output: OutputSpec, epoch: int | None) -> ImageLayer:
    if layer.blob is not None and not (output.force_compression and
                                       compression_of(layer.blob.media_type) != output.compression):
        media = layer.blob.media_type
        if not output.oci_mediatypes or not media.startswith("application/vnd.docker"):
            return layer.blob
        return ImageLayer(layer.blob.digest, layer.blob.size, layer.blob.diff_id,
                          layer_media_type(compression_of(media), True))
    if layer.diff_dir is None:
        raise ExportError("a layer has neither a blob nor a diff directory")
    blob = _cached_layer_blob(store, layer, output.compression, epoch)
    return ImageLayer(blob.digest, blob.size, blob.diff_id, blob.media_type(output.oci_mediatypes))


def _cached_layer_blob(store: ContentStore, layer: ExportLayer, compression: str,
                       epoch: int | None) -> LayerBlob:
    memo = None
    if layer.cache_id:
        fmt = BLOB_FORMAT if compression == GZIP else compression  # old-format blobs are not reused
        ident = hashlib.sha256(f"{layer.cache_id}\0{fmt}\0{epoch}".encode()).hexdigest()
        memo = store.root / "exports" / f"{ident}.json"
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
            data = json.loads(memo.read_text())
            if store.has(data["digest"]):
                return LayerBlob(**data)
    assert layer.diff_dir is not None
    blob = store_layer(layer.diff_dir, store, compression=compression, epoch=epoch)
    if memo is not None:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(blob.__dict__))
        os.replace(tmp, memo)
    return blob


def _write_layout(store: ContentStore, image: CommittedImage, output: OutputSpec,
                  progress: Progress | None) -> None:
    named = [NamedImage(image, output.names)]
    docker = output.type == "docker"
    created = image.config_json.get("created")
    if not output.tar:
        write_layout_dir(store, named, Path(output.dest), docker=docker, created=created, progress=progress)
        return
    with _open_dest(output.dest) as out:
        write_archive(store, named, out, docker=docker, created=created, progress=progress)


def _export_filesystem(source: ExportSource, output: OutputSpec, epoch: int | None,
                       progress: Progress | None) -> ExportResult:
    try:
        with source.mount_rootfs() as root:
            if output.type == "local":
                write_local(root, Path(output.dest))
            else:
                with _open_dest(output.dest) as out:
                    write_rootfs_tar(root, out, epoch=epoch)
    except OSError as exc:  # e.g. a 5,000-byte path in the result: one line, the cause first
        raise ExportError(f"--output type={output.type},dest={output.dest}: {shorten_middle(str(exc))}") from exc
    return ExportResult(output.type, output.dest)


@contextlib.contextmanager
def _open_dest(dest: str) -> Iterator[Any]:
    """A binary file to write: stdout for ``-``; else written to a temporary name and
    renamed into place, so a failed export never leaves a truncated file behind."""
    if dest == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    path = Path(dest)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            yield f
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


