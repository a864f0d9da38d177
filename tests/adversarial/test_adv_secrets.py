"""Secrets that must appear nowhere: a build uses `--secret id=tok,src=FILE` in several RUNs
(the default target, a custom target, a failing RUN), is exported as type=oci, tar and local,
writes --metadata-file and its progress log, and is recorded in the history (CACHE/history).
The value is then searched for in every file of the cache dir, the exports, the metadata and
the logs, raw and in compressed blobs (gzip, zstd) and base64. A RUN that measured the
secret's length proves it was really mounted. Measured: files and bytes searched, hits."""

from __future__ import annotations

import base64
import gzip
import os
import secrets as pysecrets
import zlib
from pathlib import Path

import pytest
import zstandard

from adv_helpers import build, llbook, report, write

pytestmark = pytest.mark.root


def needles(value: bytes) -> list[bytes]:
    """The value, and its base64 form at each of the 3 alignments it can have in a longer text."""
    found = [value]
    for j in range(3):
        part = value[j:]
        part = part[: len(part) - len(part) % 3]
        found.append(base64.b64encode(part))
    return found


def decoded_forms(data: bytes) -> list[bytes]:
    forms = [data]
    if data[:2] == b"\x1f\x8b":
        try:
            forms.append(gzip.decompress(data))
        except (OSError, EOFError, zlib.error):
            pass
    if data[:4] == b"\x28\xb5\x2f\xfd":
        try:
            forms.append(zstandard.ZstdDecompressor().decompressobj().decompress(data))
        except zstandard.ZstdError:
            pass
    return forms


def search(paths: list[Path], value: bytes) -> tuple[int, int, list[str]]:
    """Files and bytes searched below ``paths``, and the files that hold the value."""
    files, size, hits = 0, 0, []
    wanted = needles(value)
    for root in paths:
        walk = [(str(root.parent), [], [root.name])] if root.is_file() else os.walk(root)
        for dirpath, _, names in walk:
            for name in names:
                path = Path(dirpath, name)
                if path.is_symlink() or not path.is_file():
                    continue
                try:
                    data = path.read_bytes()
                except OSError:
                    continue
                files += 1
                size += len(data)
                if any(n in form for form in decoded_forms(data) for n in wanted):
                    hits.append(str(path))
    return files, size, hits


def test_a_secret_appears_nowhere(adv) -> None:
    value = ("llbook-secret-" + pysecrets.token_hex(20)).encode()
    secret_file = adv.base / "secret.txt"
    secret_file.write_bytes(value)
    ctx = write(adv.base / "ctx" / "Dockerfile",
                "FROM busybox\n"
                "RUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /len\n"
                "RUN --mount=type=secret,id=tok,target=/etc/tok.conf cp /etc/tok.conf /tmp/x && rm /tmp/x"
                " && echo used\n"
                "RUN --mount=type=secret,id=tok,required=true test -s /run/secrets/tok && ls -la /run/secrets\n").parent
    out = adv.base / "out"
    logs = []
    outputs = [f"type=oci,dest={out / 'image.oci.tar'}", f"type=tar,dest={out / 'rootfs.tar'}",
               f"type=local,dest={out / 'local'}", f"type=docker,dest={out / 'image.docker.tar'}"]
    for output in outputs:
        proc, meta = build(adv.env, ctx, adv.cache, "--secret", f"id=tok,src={secret_file}", "--output", output)
        assert proc.returncode == 0, proc.stderr
        logs.append(proc.stdout + proc.stderr)
    failing = write(adv.base / "fail" / "Dockerfile",
                    "FROM busybox\nRUN --mount=type=secret,id=tok test \"$(cat /run/secrets/tok)\" = nope\n").parent
    proc, _ = build(adv.env, failing, adv.cache, "--secret", f"id=tok,src={secret_file}")
    assert proc.returncode == 1
    logs.append(proc.stdout + proc.stderr)
    history = llbook(adv.env, "history", "ls", "--cache-dir", str(adv.cache))
    inspect = llbook(adv.env, "history", "inspect", "--cache-dir", str(adv.cache))
    logs += [history.stdout + history.stderr, inspect.stdout + inspect.stderr]
    log_dir = adv.base / "logs"
    for i, text in enumerate(logs):
        write(log_dir / f"log{i}.txt", text)
    assert (out / "local" / "len").read_text().strip() == str(len(value))  # the secret was mounted
    metadata = sorted(adv.base.glob("**/meta-*.json"))
    assert metadata and (adv.cache / "history").is_dir()
    control = adv.base / "control"  # the search finds the value raw, gzipped and in base64
    write(control / "plain", "x" + value.decode())
    (control / "blob.gz").write_bytes(gzip.compress(b"ab" + value))
    write(control / "b64", base64.b64encode(b"z" + value).decode())
    assert len(search([control], value)[2]) == 3
    files, size, hits = search([adv.cache, out, log_dir, *metadata], value)
    report("secrets", f"a secret in 3 RUNs and a failing one, 4 export types, metadata, logs, history",
           files_searched=files, bytes_searched=size, secret_hits=len(hits))
    assert files > 20 and not hits, hits
