"""Entitlements, as BuildKit's ``util/entitlements``: privileged requests need an opt-in.

A RUN with ``--network=host`` needs ``network.host``; ``--security=insecure`` needs
``security.insecure``. The check runs over the whole graph before any vertex executes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from solver.errors import BuildError
from solver.llb import pb

NETWORK_HOST = "network.host"
SECURITY_INSECURE = "security.insecure"
DEVICE = "device"
KNOWN = (NETWORK_HOST, SECURITY_INSECURE, DEVICE)


class EntitlementError(BuildError):
    """A vertex asks for an entitlement that was not granted."""


@dataclass(frozen=True)
class Entitlements:
    granted: frozenset[str]

    @classmethod
    def parse(cls, values: Iterable[str]) -> "Entitlements":
        granted = set()
        for value in values:
            for item in str(value).split(","):
                item = item.strip()
                if not item:
                    continue
                if item not in KNOWN:
                    raise ValueError(f"unknown entitlement {item!r} (known: {', '.join(KNOWN)})")
                granted.add(item)
        return cls(frozenset(granted))

    def allows(self, name: str) -> bool:
        return name in self.granted


def required_by(op: pb.Op) -> list[str]:
    """Entitlements an op needs."""
    if not isinstance(op.op, pb.ExecOp):
        return []
    needed = []
    if int(op.op.network) == int(pb.NetMode.HOST):
        needed.append(NETWORK_HOST)
    if int(op.op.security) == int(pb.SecurityMode.INSECURE):
        needed.append(SECURITY_INSECURE)
    return needed


def validate(ops: dict[str, pb.Op], names: dict[str, str], entitlements: Entitlements) -> None:
    """Raise ``EntitlementError`` naming the first vertex whose entitlement is missing."""
    for digest, op in ops.items():
        for name in required_by(op):
            if not entitlements.allows(name):
                raise EntitlementError(
                    f"entitlement {name} is not allowed; pass --allow {name} to grant it",
                    vertex=digest, name=names.get(digest, ""))
