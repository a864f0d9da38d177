"""OCI platforms as the Go client normalises them (containerd `platforms.Normalize`), and as
OCI documents (image indexes, configs) spell them; the one `Platform` type of the project
(`solver.source.registry.Platform` is this class)."""

from __future__ import annotations

import platform as _host
from collections.abc import Mapping
from dataclasses import dataclass, field

from solver.errors import LLBookError
from solver.llb import pb

_ARCH_ALIASES = {
    "x86_64": ("amd64", ""), "x86-64": ("amd64", ""), "amd64": ("amd64", ""),
    "aarch64": ("arm64", ""), "arm64": ("arm64", ""),
    "armhf": ("arm", "v7"), "armel": ("arm", "v6"), "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"),
    "i386": ("386", ""), "i486": ("386", ""), "i586": ("386", ""), "i686": ("386", ""), "386": ("386", ""),
    "ppc64le": ("ppc64le", ""), "ppc64": ("ppc64", ""), "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""), "mips64": ("mips64", ""), "mips64le": ("mips64le", ""),
    "loongarch64": ("loong64", ""), "loong64": ("loong64", ""),
}


@dataclass(frozen=True)
class Platform:
    """An OCI platform such as linux/amd64 or linux/arm/v7."""

    os: str = "linux"
    architecture: str = "amd64"
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = field(default=())

    @classmethod
    def parse(cls, spec: str) -> Platform:
        """`os/arch[/variant]` or `arch` (os defaults to linux), normalised."""
        parts = [p for p in spec.strip().split("/")]
        if not 1 <= len(parts) <= 3 or not all(parts):
            raise LLBookError(f"invalid platform {spec!r}: expected os/arch[/variant]")
        if len(parts) == 1:
            return cls(os="linux", architecture=parts[0]).normalize()
        return cls(os=parts[0], architecture=parts[1], variant=parts[2] if len(parts) == 3 else "").normalize()

    @classmethod
    def host(cls) -> Platform:
        """This machine's platform in GOOS/GOARCH names (what Go's `platforms.DefaultSpec` gives)."""
        return cls(os="linux", architecture=_host.machine().lower() or "amd64").normalize()

    def normalize(self) -> Platform:
        """Lower-case os, GOARCH names, arm variants as containerd does."""
        arch, variant = self.architecture.lower(), self.variant.lower()
        mapped, default_variant = _ARCH_ALIASES.get(arch, (arch, ""))
        if mapped == "arm64" and variant in ("8", "v8"):
            variant = ""
        elif mapped == "amd64" and variant in ("v1",):
            variant = ""
        elif mapped == "arm":
            variant = {"5": "v5", "6": "v6", "7": "v7", "8": "v8", "": default_variant or "v7"}.get(variant, variant)
        elif not variant:
            variant = default_variant
        return Platform(self.os.lower(), mapped, variant, self.os_version, tuple(self.os_features))

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Platform:
        """An OCI `platform` object (index entry, image config) as it stands, not normalised."""
        features = data.get("os.features") or ()
        return cls(os=str(data.get("os", "")), architecture=str(data.get("architecture", "")),
                   variant=str(data.get("variant", "") or ""),
                   os_version=str(data.get("os.version", "") or ""),
                   os_features=tuple(str(f) for f in features) if isinstance(features, list) else ())

    def to_dict(self) -> dict[str, object]:
        """The OCI `platform` object, keys in the order Go's encoder writes them."""
        out: dict[str, object] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant:
            out["variant"] = self.variant
        return out

    def normalized_variant(self) -> str:
        """The variant with the implicit defaults spelled out (arm64 → v8, arm → v7)."""
        if self.architecture == "arm64" and self.variant in ("", "v8", "8"):
            return "v8"
        if self.architecture == "arm" and self.variant in ("", "7", "v7"):
            return "v7"
        return self.variant

    def matches(self, other: Platform) -> bool:
        """Same os and architecture, and the same variant after normalisation."""
        return (self.os == other.os and self.architecture == other.architecture
                and self.normalized_variant() == other.normalized_variant())

    def to_pb(self) -> pb.Platform:
        return pb.Platform(architecture=self.architecture, os=self.os, variant=self.variant,
                           os_version=self.os_version, os_features=list(self.os_features))

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)
