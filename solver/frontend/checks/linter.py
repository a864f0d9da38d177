"""Collects check warnings under the options in force (BuildKit's ``linter.Linter``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from solver.errors import DockerfileError
from solver.frontend.checks.options import CheckOptions, comment_options
from solver.frontend.checks.rules import Rule


@dataclass(frozen=True)
class CheckWarning:
    """One finding: the rule, what it says about this line, and where."""

    rule: str
    description: str
    url: str
    message: str
    filename: str
    start_line: int
    end_line: int

    @property
    def short(self) -> str:
        """``LintFormatShort``: "Rule: message (line N)"."""
        text = f"{self.rule}: {self.message}"
        return f"{text} (line {self.start_line})" if self.start_line > 0 else text

    def to_dict(self) -> dict[str, object]:
        return {"rule": self.rule, "description": self.description, "url": self.url, "message": self.message,
                "filename": self.filename, "start_line": self.start_line, "end_line": self.end_line}


@dataclass
class Linter:
    """Options in force plus the shared list the warnings go to."""

    options: CheckOptions
    filename: str = "Dockerfile"
    warnings: list[CheckWarning] = field(default_factory=list)
    called: list[str] = field(default_factory=list)  # rule names, in the order they first fired

    def run(self, rule: Rule, lines: tuple[int, int], *args: str) -> None:
        """Record ``rule`` at ``lines`` (start, end) unless the options turn it off."""
        if rule.deprecated or not self.options.enabled(rule.name, experimental=rule.experimental):
            return
        if rule.name not in self.called:
            self.called.append(rule.name)
        self.warnings.append(CheckWarning(rule.name, rule.description, rule.url, rule.message(*args),
                                          self.filename, lines[0], lines[1]))

    def with_comments(self, comments: Iterable[str]) -> "Linter":
        """The same sink under the options of a ``# check=`` comment above one instruction."""
        extra = comment_options(comments)
        if extra is None:
            return self
        return Linter(self.options.merged(extra), self.filename, self.warnings, self.called)

    def error(self) -> DockerfileError | None:
        """With ``error=true``, any warning fails the build (``Linter.Error``)."""
        if not self.options.error or not self.warnings:
            return None
        first = self.warnings[0]
        return DockerfileError(f"lint violation found for rules: {', '.join(self.called)}", first.start_line,
                               first.filename)
