"""Export controls: type, destination, tag and compression, validated as they are typed;
an Export button with a progress bar; the result line (digest, size, path and the docker
command to use it) or the error, shown in the widget itself."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from typing import Any

import ipywidgets as w

from kernel_ext.widgets.layers_model import human
from solver.errors import LLBookError

OCI_TAR, OCI_DIR, DOCKER, ROOTFS, LOCAL, PUSH = "oci-tar", "oci-dir", "docker", "rootfs-tar", "local", "push"
EXPORT_TYPES = [("OCI image (tar)", OCI_TAR), ("OCI image (directory)", OCI_DIR),
                ("docker archive (docker load)", DOCKER), ("rootfs tar", ROOTFS), ("local directory", LOCAL),
                ("push to registry", PUSH)]
COMPRESSIONS = ["gzip", "zstd", "uncompressed"]
DEFAULT_DEST = {OCI_TAR: "image.oci.tar", OCI_DIR: "image-oci", DOCKER: "image.docker.tar",
                ROOTFS: "rootfs.tar", LOCAL: "rootfs", PUSH: ""}
IMAGE_TYPES = (OCI_TAR, OCI_DIR, DOCKER, PUSH)


@dataclass(frozen=True)
class ExportRequest:
    """The form's values."""

    type: str
    dest: str = ""
    tag: str = ""
    compression: str = "gzip"

    def problems(self) -> list[str]:
        """What is wrong with the request (empty: it can run)."""
        out = []
        if self.type not in dict((v, k) for k, v in EXPORT_TYPES):
            out.append(f"unknown export type {self.type!r}")
        if self.type != PUSH and not self.dest.strip():
            out.append("a destination path is needed")
        if self.type != PUSH and self.dest.strip():
            parent = os.path.dirname(os.path.abspath(os.path.expanduser(self.dest.strip())))
            if not os.path.isdir(parent):
                out.append(f"the folder {parent} does not exist")
        if self.type == PUSH and not self.tag.strip():
            out.append("pushing needs a tag such as registry.example/app:1")
        if self.tag.strip():
            out.extend(tag_problems(self.tag.strip()))
        if self.compression not in COMPRESSIONS:
            out.append(f"unknown compression {self.compression!r}")
        return out

    def output(self) -> str:
        """docker build's ``--output`` form of the request."""
        dest = os.path.expanduser(self.dest.strip())
        name = f",name={self.tag.strip()}" if self.tag.strip() else ""
        comp = f",compression={self.compression}"
        return {
            OCI_TAR: f"type=oci,dest={dest}{name}{comp}",
            OCI_DIR: f"type=oci,dest={dest},tar=false{name}{comp}",
            DOCKER: f"type=docker,dest={dest}{name}{comp}",
            ROOTFS: f"type=tar,dest={dest}",
            LOCAL: f"type=local,dest={dest}",
            PUSH: f"type=image,push=true{name}{comp}",
        }[self.type]


def tag_problems(tag: str) -> list[str]:
    from solver.source.reference import parse as parse_reference
    for part in tag.split(","):
        try:
            parse_reference(part)
        except (LLBookError, ValueError) as err:
            return [f"bad tag {part!r}: {err}"]
    return []


def usage_line(request: ExportRequest, result: dict[str, str]) -> str:
    """The command that uses the export."""
    dest = result.get("destination", request.dest)
    tag = request.tag.split(",")[0].strip() if request.tag.strip() else ""
    run = f"docker run --rm -it {tag or '<image id>'}"
    if request.type in (DOCKER, OCI_TAR):
        return f"docker load -i {dest} && {run}"
    if request.type == OCI_DIR:
        return f"skopeo copy oci:{dest} docker-daemon:{tag or 'app:latest'} && {run}"
    if request.type == ROOTFS:
        return f"docker import {dest} {tag or 'app:latest'} && docker run --rm -it {tag or 'app:latest'} sh"
    if request.type == PUSH:
        return f"docker pull {tag} && {run}"
    return f"ls {dest}"


class ExportControls(w.VBox):
    """The export form for one stage of a session."""

    def __init__(self, session: Any, stage: str | None = None, *, directory: str = "") -> None:
        self.session = session
        self.stage = stage
        self.directory = directory
        self.kind = w.Dropdown(options=EXPORT_TYPES, value=OCI_TAR, description="type")
        self.dest = w.Text(value=self._default_dest(OCI_TAR), description="destination",
                           placeholder="path of the file or folder")
        self.tag = w.Text(value="", description="tag", placeholder="e.g. app:latest")
        self.compression = w.Dropdown(options=COMPRESSIONS, value="gzip", description="compression")
        self.button = w.Button(description="Export", button_style="primary", icon="download")
        self.progress = w.IntProgress(value=0, min=0, max=1, description="", bar_style="info")
        self.validation = w.HTML("")
        self.result = w.HTML("")
        for widget, cls in ((self.kind, "llbook-export-type"), (self.dest, "llbook-export-dest"),
                            (self.tag, "llbook-export-tag"), (self.compression, "llbook-export-compression"),
                            (self.button, "llbook-export-button"), (self.progress, "llbook-export-progress"),
                            (self.validation, "llbook-export-validation"), (self.result, "llbook-export-output")):
            widget.add_class(cls)
        self.last_result: dict[str, str] | None = None
        self.last_error: str = ""
        self.kind.observe(self._on_kind, names="value")
        for widget in (self.dest, self.tag, self.compression):
            widget.observe(lambda _change: self.validate(), names="value")
        self.button.on_click(lambda _b: self.run())
        super().__init__([self.kind, self.dest, self.tag, self.compression,
                          w.HBox([self.button, self.progress]), self.validation, self.result])
        self.add_class("llbook-export")
        self.validate()

    def _default_dest(self, kind: str) -> str:
        name = DEFAULT_DEST[kind]
        return os.path.join(self.directory, name) if name and self.directory else name

    def _on_kind(self, change: dict[str, Any]) -> None:
        old_default = self._default_dest(change["old"])
        if not self.dest.value or self.dest.value == old_default:
            self.dest.value = self._default_dest(change["new"])
        self.dest.disabled = change["new"] == PUSH
        self.compression.disabled = change["new"] in (ROOTFS, LOCAL)
        self.validate()

    def request(self) -> ExportRequest:
        return ExportRequest(self.kind.value, self.dest.value, self.tag.value, self.compression.value)

    def validate(self) -> list[str]:
        problems = self.request().problems()
        self.validation.value = "".join(f"<div class='llbook-export-error'>{html.escape(p)}</div>" for p in problems)
        self.button.disabled = bool(problems)
        return problems

    def _progress(self, _what: str, current: int, total: int) -> None:
        self.progress.max = max(1, total)
        self.progress.value = min(current, self.progress.max)

    def run(self) -> dict[str, str] | None:
        """Export now; the result or the error is shown in the widget (and returned/kept)."""
        self.result.value, self.last_error, self.last_result = "", "", None
        if self.validate():
            return None
        request = self.request()
        self.button.disabled = True
        self.progress.bar_style, self.progress.value = "info", 0
        try:
            tags = tuple(t.strip() for t in request.tag.split(",") if t.strip())
            result = self.session.export(request.output(), stage=self.stage, tags=tags, progress=self._progress)
        except Exception as err:  # every failure is shown here, not lost in the kernel log
            self.last_error = f"{type(err).__name__}: {err}"
            self.progress.bar_style = "danger"
            self.result.value = f"<div class='llbook-export-error'>export failed: {html.escape(self.last_error)}</div>"
            return None
        finally:
            self.button.disabled = False
        self.progress.max, self.progress.value, self.progress.bar_style = 1, 1, "success"
        self.last_result = result
        self.result.value = self._result_html(request, result)
        return result

    def _result_html(self, request: ExportRequest, result: dict[str, str]) -> str:
        dest = result.get("destination", "")
        size = result.get("size")
        if size is None and dest and os.path.isfile(dest):
            size = str(os.path.getsize(dest))
        parts = [f"<b>exported</b> {html.escape(result.get('type', ''))}"]
        if result.get("digest"):
            parts.append(f"digest <code class='llbook-export-digest'>{html.escape(result['digest'])}</code>")
        if size:
            parts.append(f"size {human(int(size))}")
        if dest:
            parts.append(f"to <code class='llbook-export-path'>{html.escape(dest)}</code>")
        use = usage_line(request, result)
        return (f"<div class='llbook-export-result'>{', '.join(parts)}</div>"
                f"<div class='llbook-export-result'>use: <code>{html.escape(use)}</code></div>")

    def static_html(self) -> str:
        return ("<div class='llbook-export-static'>export with <code>%llb export -o type=oci,dest=image.tar</code>"
                " (types: oci, docker, tar, local, image with push=true)</div>")

    def static_text(self) -> str:
        return "export controls: %llb export -o type=oci,dest=image.tar"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        data = super()._repr_mimebundle_(**kwargs)
        bundle = dict((data[0] if isinstance(data, tuple) else data) or {})
        bundle["text/plain"] = "export controls: %llb export -o type=oci,dest=image.tar"
        bundle["text/html"] = self.static_html()
        return bundle
