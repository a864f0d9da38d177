"""The conformance cases: Dockerfiles in cases/, each with its `#conformance:` options."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

CASES_DIR = Path(__file__).parent / "cases"
_OPTION = re.compile(r"^#conformance:\s*(\w+)=(.*)$", re.M)
_BASE = re.compile(r"(?<=[\s=])busybox(?=\s|$)", re.M)


@dataclass(frozen=True)
class Case:
    """One Dockerfile and the build flags both builders get.

    Options (comment lines `#conformance: key=value`): `args` (flags for both builders;
    `{ctx}` is the context dir), `context` (`default`, `ignore` or `patterns`: with a .dockerignore of one of two sets),
    `expect` (`image`, the default, or `failure`: both builders must fail).
    """

    name: str
    text: str
    args: list[str] = field(default_factory=list)
    context: str = "default"
    expect: str = "image"

    def dockerfile(self, base: str, http: str = "") -> str:
        """The Dockerfile with `busybox` (in FROM, --from= and ARG defaults) replaced by `base`
        and `{http}` by the URL of the HTTP server that serves the context."""
        text = self.text.replace("{http}", http)
        return "\n".join(_BASE.sub(base, line) if line.lstrip().upper().startswith(("FROM", "COPY", "RUN", "ARG"))
                         else line for line in text.splitlines()) + "\n"

    def flags(self, ctx: Path) -> list[str]:
        return [arg.replace("{ctx}", str(ctx)) for arg in self.args]


def load_case(path: Path) -> Case:
    text = path.read_text()
    options = {key: value.strip() for key, value in _OPTION.findall(text)}
    return Case(name=path.name.removesuffix(".Dockerfile"), text=text,
                args=shlex.split(options.get("args", "")), context=options.get("context", "default"),
                expect=options.get("expect", "image"))


def all_cases() -> list[Case]:
    return [load_case(path) for path in sorted(CASES_DIR.glob("*.Dockerfile"))]
