"""Exception classes a user can catch."""

from __future__ import annotations

from dataclasses import dataclass, field


class LLBookError(Exception):
    """Base class of every error llbook raises on purpose."""


class DockerfileError(LLBookError):
    """A Dockerfile (or notebook snippet) that cannot be lowered, with its file and line."""

    def __init__(self, message: str, line: int | None = None, filename: str = "Dockerfile") -> None:
        self.message = message
        self.line = line
        self.filename = filename
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.filename if self.line is None else f"{self.filename}:{self.line}"
        return f"{where}: {self.message}"


class FileOpError(LLBookError):
    """A FileOp action that failed; the message names the path inside its root."""

    def __init__(self, message: str, path: str = "", action_index: int | None = None) -> None:
        self.message = message
        self.path = path
        self.action_index = action_index
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.action_index is None:
            return self.message
        return f"file action {self.action_index}: {self.message}"

    def for_action(self, index: int) -> "FileOpError":
        """The same error, labelled with the index of the action that raised it."""
        if self.action_index is not None:
            return self
        return type(self)(self.message, self.path, index)


@dataclass
class BuildError(LLBookError):
    """A vertex that failed to build: which one, where it came from, and the end of its log."""

    message: str
    vertex: str = ""  # digest of the failing vertex
    name: str = ""  # display name, e.g. "[2/5] RUN make"
    exit_code: int | None = None
    log_tail: list[str] = field(default_factory=list)
    filename: str | None = None
    line: int | None = None

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = []
        if self.filename and self.line is not None:
            parts.append(f"{self.filename}:{self.line}:")
        name, message = shorten(self.name), shorten_middle(self.message)
        if name:
            parts.append(name)
        head = " ".join(parts)
        if (name, message) != (self.name, self.message) and self.log_tail:
            # A long command (a 1 MB RUN line) was cut: say the cause before it.
            message = f"{self.log_tail[-1].strip()}; {message}"
        text = f"{head}: {message}" if head else message
        if self.exit_code is not None:
            text += f" (exit code {self.exit_code})"
        if self.log_tail:
            text += "\n" + "\n".join("  " + shorten(line, 1000) for line in self.log_tail)
        return text

    def __reduce__(self):  # dataclass + Exception pickling
        return (_rebuild_build_error, (self.__dict__.copy(),))


@dataclass
class GitSourceError(BuildError):
    """A git source that cannot be fetched or checked out: unreachable remote, unknown
    ref, bad subdir, a commit that is not the pinned checksum. Names the URL and ref."""

    remote: str = ""
    ref: str = ""

    def __reduce__(self):
        return (_rebuild_git_error, (self.__dict__.copy(),))


def _rebuild_git_error(state: dict) -> "GitSourceError":
    return GitSourceError(**{k: v for k, v in state.items() if k in GitSourceError.__dataclass_fields__})


def _rebuild_build_error(state: dict) -> "BuildError":
    return BuildError(**{k: v for k, v in state.items() if k in BuildError.__dataclass_fields__})


MESSAGE_TEXT_LIMIT = 200


def shorten(text: str, limit: int = MESSAGE_TEXT_LIMIT) -> str:
    """``text`` for an error message: at most ``limit`` characters, the cut marked with its size.

    A 1 MB command or a 30 KB word echoed into a message buries the cause."""
    if len(text) <= limit:
        return text
    keep = max(limit - 40, 10)
    return f"{text[:keep]}… ({len(text):,} characters)"


def shorten_middle(text: str, limit: int = 2 * MESSAGE_TEXT_LIMIT) -> str:
    """Like ``shorten``, but keeps the end too (where a message's own words often are)."""
    if len(text) <= limit:
        return text
    keep = max(limit // 2 - 30, 10)
    return f"{text[:keep]} … ({len(text) - 2 * keep:,} characters left out) … {text[-keep:]}"
