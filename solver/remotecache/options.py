"""``--cache-to`` / ``--cache-from`` in buildx's syntax (``type=registry,ref=…,mode=max``).

A value without ``=`` is a reference: ``--cache-from REF`` means ``type=registry,ref=REF``
(and, as docker build does, the inline cache of the image REF names is read too).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field

from solver.errors import LLBookError

TYPES = ("registry", "local", "inline")


class CacheOptionError(LLBookError):
    """A ``--cache-to``/``--cache-from`` value that cannot be used."""


@dataclass(frozen=True)
class CacheSpec:
    type: str
    ref: str = ""
    dest: str = ""
    src: str = ""
    mode: str = "min"
    tag: str = "latest"
    oci_mediatypes: bool = True
    image_manifest: bool = False
    ignore_error: bool = False
    bare: bool = False  # given as a bare reference
    attrs: dict[str, str] = field(default_factory=dict)


def _bool(value: str, key: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on", ""):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise CacheOptionError(f"cache option {key}={value!r} is not a boolean")


def parse_cache_spec(text: str, *, exporting: bool) -> CacheSpec:
    flag = "--cache-to" if exporting else "--cache-from"
    text = text.strip()
    if not text:
        raise CacheOptionError(f"{flag}: empty value")
    if "=" not in text:
        if exporting:
            raise CacheOptionError(f"{flag} {text!r}: use type=registry,ref={text}")
        return CacheSpec("registry", ref=text, bare=True)
    attrs: dict[str, str] = {}
    for part in next(csv.reader([text])):
        key, sep, value = part.partition("=")
        if not sep:
            raise CacheOptionError(f"{flag}: {part!r} is not key=value")
        attrs[key.strip().lower()] = value.strip()
    kind = attrs.pop("type", "registry")
    if kind not in TYPES:
        raise CacheOptionError(f"{flag}: unknown type {kind!r}; use registry, local or inline")
    spec = CacheSpec(
        kind, ref=attrs.pop("ref", ""), dest=attrs.pop("dest", ""), src=attrs.pop("src", ""),
        mode=attrs.pop("mode", "min"), tag=attrs.pop("tag", "latest"),
        oci_mediatypes=_bool(attrs.pop("oci-mediatypes", "true"), "oci-mediatypes"),
        image_manifest=_bool(attrs.pop("image-manifest", "false"), "image-manifest"),
        ignore_error=_bool(attrs.pop("ignore-error", "false"), "ignore-error"), attrs=attrs)
    _validate(spec, flag, exporting)
    return spec


def _validate(spec: CacheSpec, flag: str, exporting: bool) -> None:
    if spec.mode not in ("min", "max"):
        raise CacheOptionError(f"{flag}: mode={spec.mode!r}; use min or max")
    if spec.type == "registry" and not spec.ref:
        raise CacheOptionError(f"{flag} type=registry needs ref=")
    if spec.type == "local" and exporting and not spec.dest:
        raise CacheOptionError(f"{flag} type=local needs dest=")
    if spec.type == "local" and not exporting and not spec.src:
        raise CacheOptionError(f"{flag} type=local needs src=")
    if spec.type == "inline" and exporting and spec.mode == "max":
        raise CacheOptionError(f"{flag} type=inline supports only mode=min, as BuildKit's inline cache")
    if spec.type == "inline" and not exporting and not spec.ref:
        raise CacheOptionError(f"{flag} type=inline needs ref= (the image to read it from)")
    if spec.image_manifest and not spec.oci_mediatypes:
        raise CacheOptionError(f"{flag}: image-manifest=true needs oci-mediatypes=true")
