"""One build's history record (as `docker buildx history` keeps it): what was built, how, and what came out."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

CACHED, BUILT, FAILED, CANCELED = "cached", "built", "failed", "canceled"


@dataclass
class StepRecord:
    """One vertex of a recorded build, with the inputs `history diff` compares."""

    digest: str
    name: str
    status: str = BUILT  # cached | built | failed | canceled
    kind: str = ""
    place: str = ""
    started: float | None = None
    completed: float | None = None
    error: str | None = None
    parents: list[str] = field(default_factory=list)  # input vertex digests
    key_inputs: dict[str, Any] = field(default_factory=dict)  # op digest, plaintext, deps (with files)
    filename: str | None = None
    line: int | None = None

    @property
    def duration(self) -> float | None:
        if self.started is None or self.completed is None:
            return None
        return self.completed - self.started

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "StepRecord":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class BuildRecord:
    """One build, from the CLI (frontend ``dockerfile``) or a notebook cell (``notebook``)."""

    ref: str
    frontend: str  # dockerfile | notebook
    name: str  # context directory, or notebook session/cell
    started: float
    completed: float | None = None
    status: str = "running"  # completed | failed | canceled
    error: str | None = None
    sources: dict[str, str] = field(default_factory=dict)  # Dockerfile or cells: name -> text
    args: dict[str, str] = field(default_factory=dict)  # build args (never secret values)
    target: str | None = None
    platform: str | None = None
    context: str | None = None
    session: str = ""  # the notebook session (kernel) whose cell this build was
    secrets: list[str] = field(default_factory=list)  # ids only, never the values
    ssh: list[str] = field(default_factory=list)  # --ssh ids only, never the keys or agent sockets
    config: dict[str, str] = field(default_factory=dict)  # buildx inspect's build config: Network, Extra Hosts, ...
    steps: list[StepRecord] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)  # snapshot, cache_key, config/image digest
    exports: list[dict[str, Any]] = field(default_factory=list)
    log_bytes: int = 0  # of the logs the build wrote; the kept tail is bounded
    log_truncated: bool = False

    @property
    def duration(self) -> float | None:
        return None if self.completed is None else self.completed - self.started

    @property
    def cached_count(self) -> int:
        return sum(1 for s in self.steps if s.status == CACHED)

    @property
    def result_digest(self) -> str | None:
        """The image's manifest digest when exported, else its config digest, else the result snapshot."""
        r = self.result
        return r.get("image_digest") or r.get("config_digest") or r.get("snapshot")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "BuildRecord":
        known = {f.name for f in fields(cls)}
        out = cls(**{k: v for k, v in data.items() if k in known and k != "steps"})
        out.steps = [StepRecord.from_json(s) for s in data.get("steps", [])]
        return out
