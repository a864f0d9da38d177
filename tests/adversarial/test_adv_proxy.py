"""A corrupting, truncating, flaky HTTP proxy on 127.0.0.1 in front of the real registry
(`fixtures.proxies.FlakyProxy`), pulled from by `llbook build` (`FROM <proxy>/library/busybox`):
a flipped byte is refused with an error naming the digest and nothing is stored; a body cut
short is retried, then refused; 503/429/dropped/reset/truncated responses are retried and the
build succeeds; a full disk during the pull fails at once (one GET), naming the cache dir
(issue 18 point 7). Measured: requests the proxy saw and failed, blobs stored, corrupt entries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adv_helpers import build, check_cache, report, write
from fixtures.imagebuild import build_image, file_entry, layer_from_entries, push_image
from fixtures.proxies import FlakyProxy
from solver.source.reference import parse as parse_reference
from solver.source.registry import RetryPolicy, default_platform

pytestmark = pytest.mark.root
ATTEMPTS = RetryPolicy().attempts  # what llbook build retries a broken download with


def layer_digest(registry_with_busybox) -> str:
    native = str(default_platform())
    image = registry_with_busybox.images.get(native, registry_with_busybox.images["linux/amd64"])
    return image.layers[0].blob.digest


def blob_gets(proxy: FlakyProxy, digest: str) -> list[int]:
    return [status for method, path, status in proxy.requests if method == "GET" and digest in path]


def from_proxy(adv, proxy: FlakyProxy, name: str, repo: str = "library/busybox:latest") -> Path:
    return write(adv.base / name / "Dockerfile", f"FROM {proxy.host}/{repo}\nRUN echo pulled > /p\n").parent


def errors_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(("error:", "llbook: error:"))]


def stored(cache: Path, digest: str) -> bool:
    return (cache / "blobs" / "sha256" / digest.split(":", 1)[1]).exists()


def test_corrupted_layer_is_refused_naming_the_digest(adv, registry_with_busybox) -> None:
    digest = layer_digest(registry_with_busybox)
    with FlakyProxy(registry_with_busybox.host, failures=1000, mode="corrupt",
                    match=lambda method, path: method == "GET" and digest in path) as proxy:
        ctx = from_proxy(adv, proxy, "corrupt")
        proc, _ = build(adv.env, ctx, adv.cache)
        errors, refused = errors_of(proc.stderr), blob_gets(proxy, digest)
        corrupt_after_failure, _ = check_cache(adv.env, adv.cache)
        was_stored = stored(adv.cache, digest)
        proxy.failures_left = 0  # the network heals: nothing of the refused pull stays in the way
        healed, _ = build(adv.env, ctx, adv.cache)
        corrupt, check = check_cache(adv.env, adv.cache)
    report("registry proxy", "a layer with one byte flipped (same size), then a healthy proxy",
           hostile_inputs=len(refused), corrupted_responses=proxy.failures_sent, corrupt_entries=corrupt + corrupt_after_failure,
           stored_bad_blobs=int(was_stored), healed_build_ok=int(healed.returncode == 0))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert len(errors) == 1 and digest in errors[0] and "refused" in errors[0], proc.stderr
    assert not was_stored and corrupt_after_failure == 0
    assert healed.returncode == 0, healed.stderr
    assert corrupt == 0, check.stdout


def test_truncated_body_is_retried_then_refused(adv, registry_with_busybox) -> None:
    digest = layer_digest(registry_with_busybox)
    with FlakyProxy(registry_with_busybox.host, failures=1000, mode="truncate",
                    match=lambda method, path: method == "GET" and digest in path) as proxy:
        ctx = from_proxy(adv, proxy, "truncate")
        proc, _ = build(adv.env, ctx, adv.cache)
        gets = blob_gets(proxy, digest)
        errors = errors_of(proc.stderr)
        proxy.failures_left = ATTEMPTS - 1  # fewer cuts than attempts: the retries get it
        retried, _ = build(adv.env, ctx, adv.cache)
        corrupt, check = check_cache(adv.env, adv.cache)
    report("registry proxy", "every layer GET cut off at half its body, then 3 cuts and a whole one",
           hostile_inputs=proxy.failures_sent, layer_gets_when_refused=len(gets),
           retried_build_ok=int(retried.returncode == 0), corrupt_entries=corrupt)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert len(gets) == ATTEMPTS  # retried, then refused
    assert len(errors) == 1 and digest in errors[0] and "broke off" in errors[0], proc.stderr
    assert not stored(adv.cache, digest) or retried.returncode == 0
    assert retried.returncode == 0, retried.stderr
    assert corrupt == 0, check.stdout


def test_transient_errors_are_retried_and_the_build_succeeds(adv, registry_with_busybox) -> None:
    digest = layer_digest(registry_with_busybox)
    # two proxies in a row: the inner one fails blob GETs, the outer one manifest requests
    with FlakyProxy(registry_with_busybox.host, script=["503", "reset", "truncate"],
                    match=lambda method, path: method == "GET" and digest in path) as blobs, \
            FlakyProxy(blobs.host, script=["503", "drop", "429"],
                       match=lambda method, path: "/manifests/" in path) as manifests:
        ctx = from_proxy(adv, manifests, "flaky")
        proc, _ = build(adv.env, ctx, adv.cache)
        corrupt, check = check_cache(adv.env, adv.cache)
    failures = blobs.failures_sent + manifests.failures_sent
    report("registry proxy", "503, 429, dropped connection, TCP reset and a cut body on manifests and the layer",
           hostile_inputs=failures, build_ok=int(proc.returncode == 0), corrupt_entries=corrupt)
    assert failures == 6
    assert proc.returncode == 0, proc.stderr
    assert stored(adv.cache, digest)
    assert corrupt == 0, check.stdout


def test_full_disk_during_a_pull_fails_at_once_naming_the_cache_dir(adv, registry, registry_client,
                                                                   busybox_layer, small_tmpfs) -> None:
    big = layer_from_entries([file_entry("random.bin", os.urandom(6 * 1024 * 1024))])
    image = build_image([busybox_layer, big], default_platform())
    push_image(registry_client, parse_reference(f"{registry.host}/library/bigrandom:v1"), image)
    cache = small_tmpfs("3m") / "cache"
    with FlakyProxy(registry.host, failures=0) as proxy:
        ctx = from_proxy(adv, proxy, "enospc", "library/bigrandom:v1")
        proc, _ = build(adv.env, ctx, cache)
        gets = [path.rsplit("/", 1)[-1] for method, path, _ in proxy.requests if method == "GET" and "/blobs/" in path]
    errors = errors_of(proc.stderr)
    print("  " + "\n  ".join(errors))
    corrupt, check = check_cache(adv.env, cache)
    report("full disk", "a 6 MiB layer pulled into a cache dir on a 3 MiB tmpfs",
           blob_gets=len(gets), blobs_fetched_twice=len(gets) - len(set(gets)), error_lines=len(errors),
           corrupt_entries=corrupt)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert len(gets) == len(set(gets)), gets  # no blob fetched twice: ENOSPC is not transient
    assert len(errors) == 1 and "no space left" in errors[0] and str(cache) in errors[0], proc.stderr
    assert corrupt == 0, check.stdout
