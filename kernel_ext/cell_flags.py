"""docker build's flags in the notebook: ``%%dockerfile`` (this cell) and ``%llb config`` (every cell).

--network, --label, --add-host, --shm-size, --ulimit, --no-cache-filter, --secret and --ssh
are declared and parsed by ``llbook build``'s own code (solver.cli.build_flags, build,
build_ssh) and lowered as it lowers them (solver.frontend.RunOptions). A cell's RUN
flags (network, hosts, /dev/shm, ulimits) apply to that cell's RUNs, on top of the
session's; labels go on the session image; secrets and ssh agents serve the build.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, replace
from typing import Any

from solver.frontend import RunOptions


@dataclass(frozen=True)
class BuildFlags:
    """docker build's flags of a cell, or of the session (``%llb config``)."""

    network: str | None = None  # None: the session's (a cell) or BuildKit's default (the session)
    run: RunOptions = field(default_factory=RunOptions)
    secrets: tuple[Any, ...] = ()  # solver.cli.build.SecretSpec
    ssh: tuple[Any, ...] = ()  # solver.cli.build_ssh.SSHSpec

    @property
    def empty(self) -> bool:
        return self == BuildFlags()

    def over(self, base: "BuildFlags") -> "BuildFlags":
        """These flags on top of ``base``: a network or /dev/shm size replaces, hosts, labels,
        ulimits (by name), secrets and ssh ids add to (and replace) the base's."""
        run = RunOptions(labels=tuple({**dict(base.run.labels), **dict(self.run.labels)}.items()),
                         extra_hosts=base.run.extra_hosts + self.run.extra_hosts,
                         shm_size=self.run.shm_size or base.run.shm_size,
                         ulimits=tuple({u[0]: u for u in base.run.ulimits + self.run.ulimits}.values()),
                         no_cache_stages=_stages(base.run.no_cache_stages, self.run.no_cache_stages))
        return BuildFlags(self.network or base.network, run, _by_id(base.secrets + self.secrets),
                          _by_id(base.ssh + self.ssh))

    def lowering(self, options: Any) -> Any:
        """``options`` (LoweringOptions) with these flags, as ``dockerfile_to_llb`` sets them."""
        return replace(options, **self.run.lowering_fields(self.network))

    def describe(self) -> list[list[str]]:
        """Rows for ``%llb config``: only the flags that are set."""
        run = self.run
        rows = [["network", self.network or ""],
                ["add-host", ", ".join(f"{h}:{ip}" for h, ip in run.extra_hosts)],
                ["shm-size", str(run.shm_size) if run.shm_size else ""],
                ["ulimit", ", ".join(f"{n}={s}:{h}" for n, s, h in run.ulimits)],
                ["label", ", ".join(f"{k}={v}" for k, v in run.labels)],
                ["no-cache-filter", ",".join(run.no_cache_stages or ()) if run.no_cache_stages is not None else ""],
                ["secret", ", ".join(f"id={s.id},src={s.src}" for s in self.secrets)],
                ["ssh", ", ".join(s.id + ("=" + ",".join(s.paths) if s.paths else "") for s in self.ssh)]]
        return [row for row in rows if row[1]]


def _stages(base: tuple[str, ...] | None, mine: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if base is None or mine is None:
        return mine if base is None else base
    return () if not base or not mine else tuple(dict.fromkeys(base + mine))


def _by_id(specs: tuple[Any, ...]) -> tuple[Any, ...]:
    """One spec per id, the later one winning (a cell's over the session's)."""
    return tuple({spec.id: spec for spec in specs}.values())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags, declared by ``llbook build``'s own functions."""
    from solver.cli.build import add_secret_argument
    from solver.cli.build_flags import add_run_arguments
    from solver.cli.build_ssh import add_arguments as add_ssh_argument
    add_run_arguments(parser)
    add_secret_argument(parser)
    add_ssh_argument(parser)


def from_args(args: argparse.Namespace) -> BuildFlags:
    """The parsed flags as ``llbook build`` turns them into the frontend's RunOptions."""
    from solver.cli.build_flags import run_options
    return BuildFlags(args.network, run_options(args), tuple(args.secrets), tuple(args.ssh))
