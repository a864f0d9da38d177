"""docker build's --network, --label, --add-host, --shm-size, --ulimit, --no-cache-filter, --iidfile and -q,
parsed as buildx parses them."""

from __future__ import annotations

import argparse
import ipaddress
import re
from typing import Any

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}
_ULIMIT_NAMES = {"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
                 "nproc", "rss", "rtprio", "rttime", "sigpending", "stack", "as"}


def parse_add_host(text: str) -> tuple[str, str]:
    """``host:ip`` or ``host=ip`` (buildx's toBuildkitExtraHosts); the host is lowercased as dockerui does."""
    match = re.match(r"^([^:=]+)[:=](.+)$", text)
    if not match:
        raise argparse.ArgumentTypeError(f"--add-host: invalid host {text!r}, expected HOST:IP")
    host, ip = match.group(1).lower(), match.group(2).strip("[]")
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--add-host: failed to parse IP {ip}") from None
    return host, ip


def parse_bytes(text: str) -> int:
    """Docker's RAMInBytes: ``64m``, ``1g``, ``1024`` (binary units)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtb]?)b?\s*", text.lower())
    if not match:
        raise argparse.ArgumentTypeError(f"--shm-size: invalid size {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def parse_ulimit(text: str) -> tuple[str, int, int]:
    """``name=soft[:hard]`` as go-units ParseUlimit (hard defaults to soft, soft <= hard)."""
    name, sep, limits = text.partition("=")
    if not sep or name not in _ULIMIT_NAMES:
        raise argparse.ArgumentTypeError(f"--ulimit: invalid ulimit {text!r}, expected NAME=SOFT[:HARD]")
    soft_text, _, hard_text = limits.partition(":")
    try:
        soft = int(soft_text)
        hard = int(hard_text) if hard_text else soft
    except ValueError:
        raise argparse.ArgumentTypeError(f"--ulimit: invalid number in {text!r}") from None
    if soft > hard:
        raise argparse.ArgumentTypeError(f"--ulimit: soft limit {soft} is greater than the hard limit {hard}")
    return name, soft, hard


def _label(text: str) -> tuple[str, str]:
    key, _, value = text.partition("=")
    if not key:
        raise argparse.ArgumentTypeError(f"--label: expected KEY=VALUE, got {text!r}")
    return key, value


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """--network, --label, --add-host, --shm-size, --ulimit and --no-cache-filter: the flags
    ``%%dockerfile`` and ``%llb config`` take too (kernel_ext), parsed by the same code."""
    parser.add_argument("--network", choices=["default", "host", "none"], default=None,
                        help="network of every RUN that names none (host needs the network.host entitlement)")
    parser.add_argument("--label", dest="labels", action="append", default=[], type=_label,
                        metavar="KEY=VALUE", help="set a label on the image")
    parser.add_argument("--add-host", dest="add_hosts", action="append", default=[], type=parse_add_host,
                        metavar="HOST:IP", help="add a line to /etc/hosts of every RUN")
    parser.add_argument("--shm-size", default=0, type=parse_bytes, help="size of /dev/shm of every RUN")
    parser.add_argument("--ulimit", dest="ulimits", action="append", default=[], type=parse_ulimit,
                        metavar="NAME=SOFT[:HARD]", help="a resource limit of every RUN")
    parser.add_argument("--no-cache-filter", dest="no_cache_filter", action="append", default=None,
                        metavar="STAGE", help="do not use the cache for these stages")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    parser.add_argument("--iidfile", default=None, help="write the image ID to this file")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the image ID")


def run_options(args: argparse.Namespace) -> Any:
    """The frontend's RunOptions of these flags (BuildKit's dockerui attributes)."""
    from solver.frontend import RunOptions
    stages = getattr(args, "no_cache_filter", None)
    if stages is not None:  # buildx joins the repeated flag with commas; dockerui splits them again
        stages = tuple(name for text in stages for name in text.split(",") if name)
    return RunOptions(labels=tuple(getattr(args, "labels", ())), extra_hosts=tuple(getattr(args, "add_hosts", ())),
                      shm_size=getattr(args, "shm_size", 0), ulimits=tuple(getattr(args, "ulimits", ())),
                      no_cache_stages=stages)


def history_config(network: str | None, run: Any) -> dict[str, str]:
    """The build config ``docker buildx history inspect`` prints (its names; only the flags set)."""
    config = {"Network": network or "",
              "Extra Hosts": ", ".join(f"{host}={ip}" for host, ip in run.extra_hosts),
              "No Cache Filter": "" if run.no_cache_stages is None else ", ".join(run.no_cache_stages) or "(all)",
              "Shm Size": str(run.shm_size) if run.shm_size else "",
              "Resource Limits": ", ".join(f"{name}={soft}:{hard}" for name, soft, hard in run.ulimits)}
    return {name: value for name, value in config.items() if value}


def image_id(exports: list[Any], config_digest: str | None) -> str:
    """The image ID docker build prints with -q and writes to --iidfile: its config's digest."""
    for export in exports:
        if getattr(export, "config_digest", ""):
            return export.config_digest
    return config_digest or ""
