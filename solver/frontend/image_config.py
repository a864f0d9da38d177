"""The OCI/Docker image config a Dockerfile produces, and its history entries.

Mirrors ``dockerspec.DockerOCIImage`` as far as the Dockerfile frontend touches it; fields
it does not know (from a base image) are kept as they came and written back.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Any

from solver.frontend.gofmt import format_go_duration

DEFAULT_PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HISTORY_COMMENT = "buildkit.dockerfile.v0"
# Base image fields outside the ones modelled here that BuildKit's DockerOCIImage keeps;
# Docker-only legacy fields (container, container_config, docker_version...) are dropped.
KEPT_TOP_LEVEL = ("os.features",)


@dataclass
class Healthcheck:
    test: list[str] = field(default_factory=list)
    interval: int = 0  # nanoseconds
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Test": list(self.test)}
        for key, value in (("Interval", self.interval), ("Timeout", self.timeout),
                           ("StartPeriod", self.start_period), ("StartInterval", self.start_interval),
                           ("Retries", self.retries)):
            if value:
                out[key] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Healthcheck":
        return cls(list(data.get("Test") or []), int(data.get("Interval") or 0), int(data.get("Timeout") or 0),
                   int(data.get("StartPeriod") or 0), int(data.get("StartInterval") or 0),
                   int(data.get("Retries") or 0))

    def go_string(self) -> str:
        """``fmt.Sprintf("%+v", HealthcheckConfig)`` as BuildKit writes it into history."""
        test = "[" + " ".join(self.test) + "]"
        return (f"{{Test:{test} Interval:{format_go_duration(self.interval)} "
                f"Timeout:{format_go_duration(self.timeout)} StartPeriod:{format_go_duration(self.start_period)} "
                f"StartInterval:{format_go_duration(self.start_interval)} Retries:{self.retries}}}")


@dataclass
class ContainerConfig:
    """The ``config`` object of an image config."""

    user: str = ""
    exposed_ports: dict[str, dict] = field(default_factory=dict)
    env: list[str] = field(default_factory=list)
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    volumes: dict[str, dict] = field(default_factory=dict)
    working_dir: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    args_escaped: bool = False
    healthcheck: Healthcheck | None = None
    on_build: list[str] = field(default_factory=list)
    shell: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # further fields to write (none from a base image)
    # Position of the first item of each key in ``env`` (read up to ``_env_seen`` of the list
    # object ``_env_owner``), so that an ENV does not scan the whole list.
    _env_index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    _env_owner: list[str] | None = field(default=None, init=False, repr=False, compare=False)
    _env_seen: int = field(default=0, init=False, repr=False, compare=False)

    def _env_position(self, key: str) -> int | None:
        if self._env_owner is not self.env:
            self._env_index, self._env_owner, self._env_seen = {}, self.env, 0
        for index in range(self._env_seen, len(self.env)):
            self._env_index.setdefault(self.env[index].partition("=")[0], index)
        self._env_seen = len(self.env)
        return self._env_index.get(key)

    def get_env(self, key: str) -> str | None:
        index = self._env_position(key)
        return None if index is None else self.env[index].partition("=")[2]

    def set_env(self, key: str, value: str) -> None:
        """Replace or append ``key=value`` (BuildKit ``addEnv``).

        A replacement writes a new list: ``env`` lists are only ever appended to in place,
        so an ``ImageSnapshot`` can keep a prefix of one without copying it."""
        index = self._env_position(key)
        if index is None:
            self.env.append(f"{key}={value}")
            return
        env = list(self.env)
        env[index] = f"{key}={value}"
        self.env = self._env_owner = env

    def put(self, name: str, key: str, value: Any) -> None:
        """Set ``key`` in the mapping field ``name`` (labels, exposed_ports, volumes).

        Like ``env``, these mappings only grow in place; a changed value goes into a new
        dict, so a snapshot's first items stay as they were."""
        mapping: dict[str, Any] = getattr(self, name)
        if key in mapping:
            if mapping[key] == value:
                return
            mapping = dict(mapping)
            setattr(self, name, mapping)
        mapping[key] = value

    def to_dict(self, lengths: "SnapshotLengths | None" = None) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        env, ports, volumes, labels = self.env, self.exposed_ports, self.volumes, self.labels
        if lengths is not None:
            env = env[:lengths.env]
            ports = _first(ports, lengths.exposed_ports)
            volumes = _first(volumes, lengths.volumes)
            labels = _first(labels, lengths.labels)
        pairs: list[tuple[str, Any]] = [
            ("User", self.user), ("ExposedPorts", ports), ("Env", env),
            ("Entrypoint", self.entrypoint), ("Cmd", self.cmd), ("Volumes", volumes),
            ("WorkingDir", self.working_dir), ("Labels", labels), ("StopSignal", self.stop_signal),
            ("ArgsEscaped", self.args_escaped),
            ("Healthcheck", self.healthcheck.to_dict() if self.healthcheck else None),
            ("OnBuild", self.on_build), ("Shell", self.shell),
        ]
        for key, value in pairs:
            if value:
                out[key] = copy.deepcopy(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "ContainerConfig":
        data = dict(data or {})
        health = data.pop("Healthcheck", None)
        return cls(
            user=data.pop("User", "") or "",
            exposed_ports=dict(data.pop("ExposedPorts", None) or {}),
            env=list(data.pop("Env", None) or []),
            entrypoint=_opt_list(data.pop("Entrypoint", None)),
            cmd=_opt_list(data.pop("Cmd", None)),
            volumes=dict(data.pop("Volumes", None) or {}),
            working_dir=data.pop("WorkingDir", "") or "",
            labels=dict(data.pop("Labels", None) or {}),
            stop_signal=data.pop("StopSignal", "") or "",
            args_escaped=bool(data.pop("ArgsEscaped", False)),
            healthcheck=Healthcheck.from_dict(health) if health else None,
            on_build=list(data.pop("OnBuild", None) or []),
            shell=list(data.pop("Shell", None) or []),
        )


def _opt_list(value: Any) -> list[str] | None:
    return list(value) if value else None


def _first(mapping: dict[str, Any], count: int) -> dict[str, Any]:
    return mapping if len(mapping) == count else dict(itertools.islice(mapping.items(), count))


@dataclass(frozen=True)
class SnapshotLengths:
    """How many items of each append-only field of a live config belong to a snapshot."""

    history: int
    env: int
    exposed_ports: int
    volumes: int
    labels: int


@dataclass
class HistoryEntry:
    created_by: str
    comment: str = HISTORY_COMMENT
    empty_layer: bool = False
    created: str | None = None  # RFC 3339, from SOURCE_DATE_EPOCH

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.created:
            out["created"] = self.created
        out["created_by"] = self.created_by
        if self.comment:
            out["comment"] = self.comment
        if self.empty_layer:
            out["empty_layer"] = True
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HistoryEntry":
        return cls(data.get("created_by", ""), data.get("comment", ""), bool(data.get("empty_layer", False)),
                   data.get("created"))


@dataclass
class ImageConfig:
    """An image config under construction."""

    architecture: str = "amd64"
    os: str = "linux"
    variant: str = ""
    os_version: str = ""
    author: str = ""
    config: ContainerConfig = field(default_factory=ContainerConfig)
    history: list[HistoryEntry] = field(default_factory=list)
    diff_ids: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def empty(cls, os: str = "linux", architecture: str = "amd64", variant: str = "") -> "ImageConfig":
        """BuildKit's ``emptyImage``: WorkingDir "/" and the default PATH."""
        image = cls(architecture=architecture, os=os, variant=variant)
        image.config.working_dir = "/"
        image.config.env = [f"PATH={DEFAULT_PATH_ENV}"]
        return image

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ImageConfig":
        data = dict(data)
        data.pop("created", None)
        rootfs = data.pop("rootfs", None) or {}
        return cls(
            architecture=data.pop("architecture", "") or "",
            os=data.pop("os", "") or "",
            variant=data.pop("variant", "") or "",
            os_version=data.pop("os.version", "") or "",
            author=data.pop("author", "") or "",
            config=ContainerConfig.from_dict(data.pop("config", None)),
            history=[HistoryEntry.from_dict(h) for h in data.pop("history", None) or []],
            diff_ids=list(rootfs.get("diff_ids") or []),
            extra={key: data[key] for key in KEPT_TOP_LEVEL if key in data},
        )

    def clone(self) -> "ImageConfig":
        """An independent copy: new lists and mappings; their items (strings, history
        entries, healthcheck) are never changed in place, so they are shared."""
        live = self.config
        config = copy.copy(live)
        for name in ("exposed_ports", "volumes", "labels", "extra"):
            setattr(config, name, dict(getattr(live, name)))
        for name in ("env", "on_build", "shell"):
            setattr(config, name, list(getattr(live, name)))
        config.entrypoint = None if live.entrypoint is None else list(live.entrypoint)
        config.cmd = None if live.cmd is None else list(live.cmd)
        config._env_owner = None
        image = copy.copy(self)
        image.config = config
        image.history, image.diff_ids = list(self.history), list(self.diff_ids)
        image.extra = copy.deepcopy(self.extra)
        return image

    def snapshot(self) -> "ImageSnapshot":
        """This config as it is now, in time independent of its length.

        ``history``, ``config.env``, labels, exposed ports and volumes are shared, not
        copied: they are only appended to in place (``set_env`` and ``put`` write a new
        object for a changed value), so their first items stay valid. A deep copy per
        instruction made lowering quadratic in the instruction count."""
        live = self.config
        config = copy.copy(live)
        config.extra = dict(live.extra)
        config.on_build, config.shell = list(live.on_build), list(live.shell)
        image = copy.copy(self)
        image.config = config
        image.diff_ids = list(self.diff_ids)
        lengths = SnapshotLengths(len(self.history), len(live.env), len(live.exposed_ports), len(live.volumes),
                                  len(live.labels))
        return ImageSnapshot(image, lengths)

    def add_history(self, created_by: str, *, layer: bool, created: str | None = None) -> None:
        self.history.append(HistoryEntry(created_by, HISTORY_COMMENT, not layer, created))

    def to_dict(self, lengths: SnapshotLengths | None = None) -> dict[str, Any]:
        out: dict[str, Any] = dict(copy.deepcopy(self.extra))
        if self.author:
            out["author"] = self.author
        out["architecture"] = self.architecture
        out["os"] = self.os
        if self.os_version:
            out["os.version"] = self.os_version
        if self.variant:
            out["variant"] = self.variant
        out["config"] = self.config.to_dict(lengths)
        out["rootfs"] = {"type": "layers", "diff_ids": list(self.diff_ids)}
        history = self.history if lengths is None else self.history[:lengths.history]
        out["history"] = [h.to_dict() for h in history]
        return out


@dataclass(frozen=True)
class ImageSnapshot:
    """An image config as it was after one instruction (``ImageConfig.snapshot``).

    ``image`` shares its growing fields with the live config, which may have grown since;
    only their first ``lengths`` items belong to this snapshot."""

    image: ImageConfig
    lengths: SnapshotLengths

    def to_dict(self) -> dict[str, Any]:
        return self.image.to_dict(self.lengths)

    def config(self) -> ImageConfig:
        """A full, independent copy as of this snapshot."""
        return ImageConfig.from_dict(self.to_dict())
