"""The /etc/hosts and /etc/resolv.conf given to a RUN, as BuildKit generates them.

hosts: localhost and the sandbox's hostname (``executor/oci/hosts.go``). resolv.conf: the
host's, with loopback nameservers removed unless the host network is shared, falling
back to public resolvers when none are left (``executor/oci/resolvconf.go``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from pathlib import Path

HOST_RESOLV_CONF = Path("/etc/resolv.conf")
SYSTEMD_RESOLV_CONF = Path("/run/systemd/resolve/resolv.conf")
DEFAULT_NAMESERVERS = ("8.8.8.8", "8.8.4.4", "2001:4860:4860::8888", "2001:4860:4860::8844")


def hosts_file(hostname: str, extra_hosts: Sequence[tuple[str, str]] = ()) -> str:
    """localhost lines, then one ``ip<TAB>host`` line per extra host, in order."""
    lines = [f"127.0.0.1\tlocalhost {hostname}".rstrip(), "::1\tlocalhost ip6-localhost ip6-loopback"]
    for name, ip in extra_hosts:
        lines.append(f"{ip}\t{name}")
    return "\n".join(lines) + "\n"


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def resolv_conf(host_network: bool, source: Path | None = None) -> str:
    """The resolv.conf for a container, from the host's."""
    path = source or HOST_RESOLV_CONF
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    if host_network:
        return text if text.endswith("\n") or not text else text + "\n"
    if source is None and any(_is_loopback(ns) for ns in _nameservers(text)):
        try:
            text = SYSTEMD_RESOLV_CONF.read_text(encoding="utf-8", errors="replace")
        except OSError:
            pass
    kept = [line for line in text.splitlines()
            if not (line.split()[:1] == ["nameserver"] and _is_loopback(line.split()[1] if len(line.split()) > 1 else ""))]
    if not any(line.split()[:1] == ["nameserver"] for line in kept):
        kept += [f"nameserver {ns}" for ns in DEFAULT_NAMESERVERS]
    return "\n".join(kept) + "\n"


def _nameservers(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            out.append(fields[1])
    return out
