""".dockerignore files: moby/patternmatcher/ignorefile's reading, and the matcher of a context's patterns.

``read_ignore_lines`` reads a ``.dockerignore`` file as ``ignorefile.ReadAll`` does (BOM,
``#`` comments, whitespace, ``filepath.Clean``, leading ``/`` removed); the patterns mean
what ``solver.llb.patternmatch`` says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from solver.llb.patternmatch import MatchInfo, PatternMatcher, clean_path

__all__ = ["DockerIgnore", "read_ignore_lines"]


_BOM = "\ufeff"


def read_ignore_lines(lines: Iterable[str]) -> list[str]:
    """ignorefile.ReadAll: the patterns of a .dockerignore given as lines."""
    patterns: list[str] = []
    for number, line in enumerate(lines):
        line = line.rstrip("\r\n")
        if number == 0 and line.startswith(_BOM):
            line = line[len(_BOM):]
        if line.startswith("#"):
            continue
        line = line.strip()
        if line == "":
            continue
        invert = line.startswith("!")
        if invert:
            line = line[1:].strip()
        if line:
            line = clean_path(line)
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
        patterns.append("!" + line if invert else line)
    return patterns


@dataclass(frozen=True)
class DockerIgnore:
    """The patterns of a .dockerignore file and the matcher built from them."""

    patterns: tuple[str, ...] = ()
    _matcher: PatternMatcher = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "patterns", tuple(self.patterns))
        object.__setattr__(self, "_matcher", PatternMatcher(self.patterns))

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> "DockerIgnore":
        return cls(tuple(read_ignore_lines(lines)))

    @classmethod
    def from_text(cls, text: str) -> "DockerIgnore":
        return cls.from_lines(text.splitlines())

    @classmethod
    def from_file(cls, path: str | Path) -> "DockerIgnore":
        """Read a .dockerignore; a missing file means no patterns."""
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            return cls()
        return cls.from_text(data.decode("utf-8", errors="surrogateescape"))

    @classmethod
    def for_context(cls, context_dir: str | Path, dockerfile: str | Path | None = None) -> "DockerIgnore":
        """The ignore file BuildKit uses: ``<Dockerfile>.dockerignore`` if present, else
        ``<context>/.dockerignore``."""
        if dockerfile is not None:
            specific = Path(str(dockerfile) + ".dockerignore")
            if specific.is_file():
                return cls.from_file(specific)
        return cls.from_file(Path(context_dir) / ".dockerignore")

    @property
    def matcher(self) -> PatternMatcher:
        return self._matcher

    def excluded(self, relpath: str) -> bool:
        """Is ``relpath`` (relative to the context) left out of what a build transfers?

        Evaluated like BuildKit's file sync walks the context: directory by directory,
        each level reusing its parent's results (``MatchesUsingParentResults``). This
        differs from ``matches_or_parent_matches`` in rare cases, e.g. with
        ``["a/a", "!a"]`` the file ``a/a`` is excluded. The context root never is.
        """
        path = clean_path(relpath.replace("\\", "/").lstrip("/"))
        if path == ".":
            return False
        info = MatchInfo()
        parts = path.split("/")
        for depth in range(1, len(parts)):
            _, info = self.matcher.matches_using_parent_results("/".join(parts[:depth]), info)
        return self.matcher.matches_using_parent_results(path, info)[0]

    def included(self, relpath: str) -> bool:
        return not self.excluded(relpath)

    def filter(self, relpaths: Iterable[str]) -> list[str]:
        """The paths that are not excluded, in their given order."""
        return [p for p in relpaths if not self.excluded(p)]

    def exclude_patterns(self) -> list[str]:
        """The patterns as the ``local.excludepatterns`` attr of a local source wants them."""
        return list(self.patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)
