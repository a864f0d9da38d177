"""Exporters against the real tools: skopeo, umoci, docker load into a real dockerd.

The image is assembled by hand from overlay-form layer directories, so these tests
exercise the exporters alone: a busybox base, a layer that adds files, and a layer
that deletes a file (whiteout) and replaces a directory (opaque).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from solver.cache.content import ContentStore
from solver.export import ExportLayer, ExportSource, export, parse_output, ExportError
from solver.snapshot.fsutil import apply_layer, make_whiteout, mark_opaque
from fixtures.rootfs import make_busybox_rootfs

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="layers with uid 0 files and whiteouts need root")

IMAGE_CONFIG = {
    "architecture": "amd64",
    "os": "linux",
    "config": {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GREETING=hello"],
        "Cmd": ["cat", "/hello.txt"],
        "Entrypoint": ["/bin/sh", "-c", "exec \"$@\"", "--"],
        "WorkingDir": "/opt",
        "User": "0:0",
        "ExposedPorts": {"8080/tcp": {}},
        "Labels": {"org.example.kind": "test"},
    },
    "history": [
        {"created_by": "busybox rootfs", "comment": "base"},
        {"created_by": "ENV GREETING=hello", "comment": "buildkit.dockerfile.v0", "empty_layer": True},
        {"created_by": "COPY hello.txt /hello.txt # buildkit", "comment": "buildkit.dockerfile.v0"},
        {"created_by": "RUN /bin/sh -c rm /etc/removed-later # buildkit", "comment": "buildkit.dockerfile.v0"},
        {"created_by": "CMD [\"cat\" \"/hello.txt\"]", "comment": "buildkit.dockerfile.v0", "empty_layer": True},
    ],
}


def _make_layers(root: Path, mtime: int | None = None) -> list[Path]:
    base = make_busybox_rootfs(root / "l1")
    l2 = root / "l2"
    (l2 / "opt" / "dir").mkdir(parents=True)
    (l2 / "etc").mkdir()
    (l2 / "hello.txt").write_text("hello from llbook\n")
    (l2 / "etc" / "removed-later").write_text("soon gone\n")
    (l2 / "opt" / "dir" / "a").write_text("a\n")
    (l2 / "opt" / "dir" / "b").write_text("b" * 5000)
    os.chmod(l2 / "opt" / "dir" / "b", 0o600)
    os.chown(l2 / "opt" / "dir" / "b", 1000, 1000)
    (l2 / "opt" / "link").symlink_to("dir/a")
    os.link(l2 / "opt" / "dir" / "a", l2 / "opt" / "hardlink")
    l3 = root / "l3"
    (l3 / "etc").mkdir(parents=True)
    make_whiteout(l3 / "etc" / "removed-later")
    (l3 / "opt" / "dir").mkdir(parents=True)
    mark_opaque(l3 / "opt" / "dir")
    (l3 / "opt" / "dir" / "c").write_text("c\n")
    if mtime is not None:
        for layer in (base, l2, l3):
            for dirpath, dirs, files in os.walk(layer):
                for name in dirs + files:
                    os.utime(os.path.join(dirpath, name), (mtime, mtime), follow_symlinks=False)
    return [base, l2, l3]


def _flatten(layers: list[Path], dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for layer in layers:
        apply_layer(layer, dest)
    return dest


def _source(tmp: Path, store: ContentStore, layers: list[Path]) -> ExportSource:
    @contextlib.contextmanager
    def mount_rootfs():
        with tempfile.TemporaryDirectory(dir=tmp) as d:
            yield _flatten(layers, Path(d) / "rootfs")

    return ExportSource(store, IMAGE_CONFIG, [ExportLayer(diff_dir=p) for p in layers], mount_rootfs,
                        created=1_700_000_000.5)


def tree(root: Path) -> dict[str, tuple]:
    """Every entry under root: type, mode, owner, size and link target."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath, name)
            st = p.lstat()
            kind = stat.S_IFMT(st.st_mode)
            out[str(p.relative_to(root))] = (
                kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                st.st_size if stat.S_ISREG(st.st_mode) else 0,
                os.readlink(p) if stat.S_ISLNK(st.st_mode) else "")
    return out


@pytest.fixture
def built(tmp_path: Path):
    store = ContentStore(tmp_path / "store")
    layers = _make_layers(tmp_path / "layers")
    return store, layers, _source(tmp_path, store, layers)


def _skopeo(*args: str) -> dict:
    out = subprocess.run(["skopeo", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def test_oci_tar_and_dir_read_by_skopeo(built, tmp_path: Path) -> None:
    store, layers, source = built
    tar_path = tmp_path / "out" / "image.tar"
    result = export(source, parse_output(f"type=oci,dest={tar_path},name=example.com/llbook/test:v1"))
    info = _skopeo("inspect", f"oci-archive:{tar_path}")
    assert info["Digest"] == result.manifest_digest
    assert len(info["Layers"]) == 3
    assert info["Env"] == IMAGE_CONFIG["config"]["Env"]
    with tarfile.open(tar_path) as tf:
        names = tf.getnames()
        index = json.load(tf.extractfile("index.json"))
    assert names == sorted(names)
    annotations = index["manifests"][0]["annotations"]
    assert annotations["io.containerd.image.name"] == "example.com/llbook/test:v1"
    assert annotations["org.opencontainers.image.ref.name"] == "v1"
    layout = tmp_path / "layout"
    export(source, parse_output(f"type=oci,dest={layout},tar=false,name=test:v1"))
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    assert _skopeo("inspect", f"oci:{layout}:v1")["Digest"] == result.manifest_digest


def test_umoci_unpack_gives_exactly_the_result_files(built, tmp_path: Path) -> None:
    store, layers, source = built
    layout = tmp_path / "layout"
    export(source, parse_output(f"type=oci,dest={layout},tar=false,name=test:v1"))
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:v1", str(bundle)], check=True, capture_output=True)
    expected = tree(_flatten(layers, tmp_path / "expected"))
    got = tree(bundle / "rootfs")
    assert "etc/removed-later" not in got
    assert sorted(p for p in got if p.startswith("opt/dir/")) == ["opt/dir/c"]
    assert got == expected


def test_layer_tar_uses_oci_whiteouts_sorted(built, tmp_path: Path) -> None:
    store, layers, source = built
    layout = tmp_path / "layout"
    result = export(source, parse_output(f"type=oci,dest={layout},tar=false,compression=uncompressed"))
    manifest = json.loads(store.read(result.manifest_digest))
    last = manifest["layers"][-1]
    assert last["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
    with tarfile.open(store.path(last["digest"])) as tf:
        names = tf.getnames()
    assert "etc/.wh.removed-later" in names
    assert "opt/dir/.wh..wh..opq" in names
    assert names.index("opt/dir/.wh..wh..opq") < names.index("opt/dir/c")
    config = json.loads(store.read(result.config_digest))
    assert len(config["rootfs"]["diff_ids"]) == 3
    assert [h.get("empty_layer", False) for h in config["history"]] == [False, True, False, False, True]


def test_docker_archive_loads_into_dockerd(built, tmp_path: Path, dockerd) -> None:
    store, layers, source = built
    archive = tmp_path / "image-docker.tar"
    ref = "llbook-export-test:latest"
    export(source, parse_output(f"type=docker,dest={archive},name={ref}"))
    with tarfile.open(archive) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == [ref]
    dockerd.docker("load", "-i", str(archive))
    try:
        out = dockerd.docker("run", "--rm", "--network=host", ref)
        assert out.stdout == "hello from llbook\n"
        gone = dockerd.docker("run", "--rm", "--network=host", ref, "sh", "-c",
                              "test -e /etc/removed-later && echo present || echo absent; ls /opt/dir")
        assert gone.stdout.split() == ["absent", "c"]
        history = dockerd.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", ref).stdout.splitlines()
        assert history == [h["created_by"] for h in reversed(IMAGE_CONFIG["history"])]
        inspect = json.loads(dockerd.docker("inspect", ref).stdout)[0]["Config"]
        want = IMAGE_CONFIG["config"]
        for key in ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Labels"):
            assert inspect[key] == want[key], key
    finally:
        dockerd.docker("rmi", "-f", ref, check=False)


def test_source_date_epoch_gives_identical_manifests(tmp_path: Path) -> None:
    digests = []
    for i, mtime in enumerate((1_750_000_000, 1_760_000_000)):  # both newer than the epoch
        work = tmp_path / f"build{i}"
        store = ContentStore(work / "store")
        layers = _make_layers(work / "layers", mtime=mtime)
        result = export(_source(work, store, layers), parse_output(f"type=oci,dest={work}/img.tar"),
                        epoch=1_700_000_000)
        digests.append(result.manifest_digest)
        config = json.loads(store.read(result.config_digest))
        assert config["created"] == "2023-11-14T22:13:20Z"
        assert {h["created"] for h in config["history"]} == {"2023-11-14T22:13:20Z"}
    assert digests[0] == digests[1]
    without = export(_source(tmp_path / "build1", ContentStore(tmp_path / "s3"), _make_layers(tmp_path / "l3")),
                     parse_output(f"type=oci,dest={tmp_path}/x.tar"))
    assert without.manifest_digest != digests[0]


def test_zstd_export_accepted_by_skopeo(built, tmp_path: Path) -> None:
    store, layers, source = built
    tar_path = tmp_path / "zstd.tar"
    result = export(source, parse_output(f"type=oci,dest={tar_path},compression=zstd,name=z:1"))
    manifest = json.loads(store.read(result.manifest_digest))
    assert {l["mediaType"] for l in manifest["layers"]} == {"application/vnd.oci.image.layer.v1.tar+zstd"}
    info = _skopeo("inspect", f"oci-archive:{tar_path}")
    assert info["Digest"] == result.manifest_digest
    copied = tmp_path / "copied"
    subprocess.run(["skopeo", "copy", f"oci-archive:{tar_path}", f"oci:{copied}:z"], check=True, capture_output=True)
    assert _skopeo("inspect", f"oci:{copied}:z")["Digest"] == result.manifest_digest


def test_tar_and_local_exports_hold_the_result_filesystem(built, tmp_path: Path) -> None:
    store, layers, source = built
    expected = tree(_flatten(layers, tmp_path / "expected"))
    export(source, parse_output(f"type=local,dest={tmp_path}/local"))
    assert tree(tmp_path / "local") == expected
    export(source, parse_output(f"type=tar,dest={tmp_path}/fs.tar"))
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    subprocess.run(["tar", "-xpf", str(tmp_path / "fs.tar"), "-C", str(unpacked)], check=True)
    assert tree(unpacked) == expected


def test_docker_mediatypes_option(built, tmp_path: Path) -> None:
    store, layers, source = built
    result = export(source, parse_output(f"type=oci,dest={tmp_path}/d.tar,oci-mediatypes=false"))
    manifest = json.loads(store.read(result.manifest_digest))
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert manifest["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert {l["mediaType"] for l in manifest["layers"]} == {"application/vnd.docker.image.rootfs.diff.tar.gzip"}


@pytest.mark.parametrize("text, message", [
    ("type=oci", "needs dest="),
    ("type=weird,dest=x", "unknown type"),
    ("type=oci,dest=x,compression=lz4", "unknown compression"),
    ("type=oci,dest=x,tar=maybe", "not a boolean"),
    ("type=image", "needs name="),
])
def test_bad_output_specs_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ExportError, match=message):
        parse_output(text)


def test_failed_export_leaves_no_partial_file(built, tmp_path: Path) -> None:
    store, layers, source = built
    dest = tmp_path / "partial.tar"
    broken = ExportSource(store, IMAGE_CONFIG, [ExportLayer(diff_dir=layers[0]), ExportLayer(diff_dir=tmp_path / "missing")],
                          source.mount_rootfs)
    with pytest.raises(FileNotFoundError):
        export(broken, parse_output(f"type=oci,dest={dest}"))
    assert not dest.exists()
    assert not list(dest.parent.glob(".partial.tar.tmp*"))


def test_push_to_loopback_registry_then_pull_with_docker(built, registry, registry_client, dockerd) -> None:
    store, layers, source = built
    name = f"{registry.host}/llbook/pushed:v1"
    first = export(source, parse_output(f"type=image,name={name},push=true"), registry_client=registry_client)
    assert first.push is not None and len(first.push.uploaded) == 4  # 3 layers + config
    info = _skopeo("inspect", "--tls-verify=false", f"docker://{name}")
    assert info["Digest"] == first.manifest_digest == first.push.manifest_digest
    again = export(source, parse_output(f"type=image,name={name},push=true"), registry_client=registry_client)
    assert again.push is not None and again.push.uploaded == [] and len(again.push.skipped) == 4
    try:
        dockerd.docker("pull", name)
        assert dockerd.docker("run", "--rm", "--network=host", name).stdout == "hello from llbook\n"
    finally:
        dockerd.docker("rmi", "-f", name, check=False)


def test_push_mounts_blobs_across_repositories(built, registry, registry_client) -> None:
    store, layers, source = built
    export(source, parse_output(f"type=image,name={registry.host}/llbook/base:1,push=true"),
           registry_client=registry_client)
    source.base_repository = "llbook/base"
    other = export(source, parse_output(f"type=image,name={registry.host}/llbook/other:1,push=true"),
                   registry_client=registry_client)
    assert other.push is not None
    assert len(other.push.mounted) == 3 and other.push.uploaded == [other.config_digest]


def test_chunked_upload_of_large_blobs(built, registry, registry_client) -> None:
    from solver.export import build_image
    from solver.export.push import push_image as push
    store, layers, source = built
    image = build_image(source, parse_output("type=oci,dest=unused"))
    name = f"{registry.host}/llbook/chunked:1"
    report = push(registry_client, store, image, name, chunked_above=1024)
    assert len(report.uploaded) == 4
    info = _skopeo("inspect", "--tls-verify=false", f"docker://{name}")
    assert info["Digest"] == image.manifest.digest
    copied = Path(tempfile.mkdtemp()) / "copy"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{name}", f"oci:{copied}:x"],
                   check=True, capture_output=True)  # skopeo re-verifies every blob digest
