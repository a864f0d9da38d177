"""A minimal Debian root filesystem made once with debootstrap and cached as a tarball under /var/tmp."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

CACHE_DIR = Path("/var/tmp/llbook-bench")
APT_SOURCES = (Path("/etc/apt/sources.list.d"), Path("/etc/apt/sources.list"))


@dataclass(frozen=True)
class DebianSource:
    uri: str
    suite: str


def _deb822_sources(text: str) -> list[DebianSource]:
    found = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("uris") and fields.get("suites"):
            found.append(DebianSource(fields["uris"].split()[0], fields["suites"].split()[0]))
    return found


def _one_line_sources(text: str) -> list[DebianSource]:
    found = []
    for line in text.splitlines():
        words = [w for w in line.split() if not w.startswith("[")]
        if len(words) >= 3 and words[0] == "deb":
            found.append(DebianSource(words[1], words[2]))
    return found


def apt_debian_source() -> DebianSource:
    """The machine's own Debian archive (not its security or update suites), read from apt's sources."""
    files: list[Path] = []
    for place in APT_SOURCES:
        if place.is_dir():
            files += sorted(place.glob("*.sources")) + sorted(place.glob("*.list"))
        elif place.exists():
            files.append(place)
    for path in files:
        text = path.read_text(errors="replace")
        sources = _deb822_sources(text) if path.suffix == ".sources" else _one_line_sources(text)
        for source in sources:
            if "security" not in source.uri and "-" not in source.suite and "/debian" in source.uri:
                return source
    raise RuntimeError("no Debian archive in apt's sources (/etc/apt/sources.list*)")


def debian_rootfs_tarball(include: str = "") -> Path:
    """Path of a gzip tarball of a debootstrap --variant=minbase rootfs; built on first use."""
    source = apt_debian_source()
    name = f"debian-{source.suite}-minbase{'-' + include.replace(',', '-') if include else ''}.tar.gz"
    tarball = CACHE_DIR / name
    if tarball.exists():
        return tarball
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed (Debian package debootstrap)")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="debootstrap-", dir=CACHE_DIR))
    try:
        cmd = ["debootstrap", "--variant=minbase"] + ([f"--include={include}"] if include else [])
        subprocess.run(cmd + [source.suite, str(work / "root"), source.uri], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for deb in (work / "root" / "var" / "cache" / "apt" / "archives").glob("*.deb"):
            deb.unlink()
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "--numeric-owner", "--xattrs", "-czf", str(partial), "-C",
                        str(work / "root"), "."], check=True)
        os.replace(partial, tarball)
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=False)
    return tarball


if __name__ == "__main__":
    print(debian_rootfs_tarball())
