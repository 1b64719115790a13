"""The device agent's bundle verifier (`extract_verified`) and release layout, on bundles built here member by
member: a good bundle comes out byte for byte; every kind of damage or trick is refused at the verify stage
before anything it names is written outside the destination. The agent runs in this process (it is the
standard-library script `edgeml deploy` copies to the device)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from edgeml.device import agent

TOP = "app-1.0"
FILES = {"models/model.tflite": b"\x1c\x00\x00\x00TFL3" + bytes(range(64)), "install.sh": b"#!/bin/sh\necho ok\n",
         "wheels/numpy.whl": b"PK" + b"\x00" * 40}


def manifest_for(files, **changes) -> dict:
    manifest = {"schema": agent.SCHEMA, "name": "app", "version": "1.0", "models": [{"path": "models/model.tflite"}],
                "files": [{"path": path, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                          for path, data in files.items()]}
    manifest.update(changes)
    return manifest


def build(path: Path, members, manifest=None, *, signature: bytes = None) -> Path:
    """A .tar.gz of `members` [(name, file bytes | ("type", a tarfile member type))], the manifest first (bytes
    or a dict)."""
    manifest = manifest_for(FILES) if manifest is None else manifest
    raw = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    entries = [(f"{TOP}/{agent.BUNDLE_MANIFEST}", raw)]
    if signature is not None:
        entries.append((f"{TOP}/{agent.BUNDLE_SIGNATURE}", signature))
    with tarfile.open(path, "w:gz") as tar:
        for name, data in entries + list(members):
            info = tarfile.TarInfo(name)
            if isinstance(data, bytes):
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                info.type = data[1]
                info.linkname = "/etc/passwd"
                tar.addfile(info)
    return path


def good_members():
    return [(f"{TOP}/{path}", data) for path, data in FILES.items()]


def extract(bundle: Path, destination: Path, **kwargs):
    return agent.extract_verified(bundle, agent.sha256_file(bundle), destination, **kwargs)


def refused(bundle: Path, destination: Path, match: str, **kwargs) -> None:
    with pytest.raises(agent.Failure, match=match) as caught:
        extract(bundle, destination, **kwargs)
    assert caught.value.stage == "verify"


def test_a_good_bundle_comes_out_byte_for_byte(tmp_path):
    bundle = build(tmp_path / "b.tar.gz", good_members())
    out = tmp_path / "out"
    manifest = extract(bundle, out)
    assert manifest == manifest_for(FILES)
    for path, data in FILES.items():
        assert (out / path).read_bytes() == data
    assert (out / "install.sh").stat().st_mode & 0o777 == 0o755
    assert (out / "models/model.tflite").stat().st_mode & 0o777 == 0o644
    assert json.loads((out / agent.BUNDLE_MANIFEST).read_bytes()) == manifest
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(
        [*FILES, agent.BUNDLE_MANIFEST])


def test_a_copy_damaged_in_transit_is_refused_before_it_is_opened(tmp_path):
    bundle = build(tmp_path / "b.tar.gz", good_members())
    with pytest.raises(agent.Failure, match="bundle sha256 mismatch after upload") as caught:
        agent.extract_verified(bundle, "0" * 64, tmp_path / "out")
    assert caught.value.stage == "verify" and not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage, match", [
    ("unlisted", "not listed in the bundle manifest"),
    ("twice", "not listed in the bundle manifest, or listed once and present twice"),
    ("missing", "missing 1 listed file"),
    ("size", "bytes, manifest says"),
    ("content", "sha256 mismatch for models/model.tflite"),
    ("other-folder", "not listed in the bundle manifest"),
    ("traversal", "refusing member"),
    ("absolute", "refusing member"),
    ("symlink", "links, devices and directories are not allowed"),
    ("hardlink", "links, devices and directories are not allowed"),
    ("directory", "links, devices and directories are not allowed"),
    ("fifo", "links, devices and directories are not allowed"),
])
def test_damage_and_tricks_are_refused(tmp_path, damage, match):
    members = good_members()
    if damage == "unlisted":
        members.append((f"{TOP}/extra.py", b"print('hi')"))
    elif damage == "twice":
        members.append(members[0])
    elif damage == "missing":
        members.pop()
    elif damage == "size":
        members[0] = (members[0][0], members[0][1] + b"!")
    elif damage == "content":
        members[0] = (members[0][0], bytes(reversed(members[0][1])))
    elif damage == "other-folder":
        members[0] = (f"other-1.0/{members[0][0].split('/', 1)[1]}", members[0][1])
    elif damage == "traversal":
        members.insert(0, (f"{TOP}/../../escaped.sh", b"#!/bin/sh\n"))
    elif damage == "absolute":
        members.insert(0, ("/tmp/escaped.sh", b"#!/bin/sh\n"))
    else:
        kind = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE, "directory": tarfile.DIRTYPE,
                "fifo": tarfile.FIFOTYPE}[damage]
        members.insert(0, (f"{TOP}/models/link", ("type", kind)))
    bundle = build(tmp_path / "b.tar.gz", members)
    refused(bundle, tmp_path / "out", match)
    assert not (tmp_path / "escaped.sh").exists() and not (tmp_path.parent / "escaped.sh").exists()


@pytest.mark.parametrize("manifest, match", [
    (b"{not json", "is not JSON"),
    (b"[1, 2]", "not a JSON object"),
    ({**manifest_for(FILES), "schema": "edgeml.bundle/99"}, "unsupported bundle schema"),
    ({**manifest_for(FILES), "version": "../../etc"}, "refusing bundle version"),
    ({**manifest_for(FILES), "name": ""}, "refusing bundle name"),
    ({**manifest_for(FILES), "files": []}, "must list 'files' and 'models'"),
    (manifest_for({**FILES, "../up": b"x"}), "refusing file"),
    (manifest_for(FILES, models=[{"path": "models/other.tflite"}]), "is not one of the bundle's files"),
])
def test_a_bad_manifest_is_refused_before_any_file_is_written(tmp_path, manifest, match):
    bundle = build(tmp_path / "b.tar.gz", good_members(), manifest)
    refused(bundle, tmp_path / "out", match)
    assert not (tmp_path / "out").exists()


def test_the_manifest_must_come_first(tmp_path):
    bundle = tmp_path / "b.tar.gz"
    with tarfile.open(bundle, "w:gz") as tar:
        manifest = json.dumps(manifest_for(FILES)).encode()
        for name, data in good_members() + [(f"{TOP}/{agent.BUNDLE_MANIFEST}", manifest)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    refused(bundle, tmp_path / "out", "must come first")


def test_the_signature_check_sees_the_raw_manifest_and_signature_before_any_file(tmp_path):
    seen = []

    def check(raw, signature):
        seen.append((raw, signature))
        assert not (tmp_path / "out").exists()  # nothing extracted yet

    raw = json.dumps(manifest_for(FILES)).encode()
    extract(build(tmp_path / "unsigned.tar.gz", good_members(), raw), tmp_path / "out", check_signature=check)
    assert seen == [(raw, None)]
    seen.clear()
    signed = build(tmp_path / "signed.tar.gz", good_members(), raw, signature=b"-----BEGIN SSH SIGNATURE-----")
    (tmp_path / "out").rename(tmp_path / "first")
    extract(signed, tmp_path / "out", check_signature=check)
    assert seen == [(raw, b"-----BEGIN SSH SIGNATURE-----")]
    assert (tmp_path / "out" / agent.BUNDLE_SIGNATURE).read_bytes() == b"-----BEGIN SSH SIGNATURE-----"
    assert (tmp_path / "out" / agent.BUNDLE_MANIFEST).read_bytes() == raw  # the signed bytes, unchanged

    def reject(raw, signature):
        raise agent.Failure("verify", "signature does not match a trusted key")

    with pytest.raises(agent.Failure, match="trusted key"):
        extract(signed, tmp_path / "rejected", check_signature=reject)
    assert not (tmp_path / "rejected").exists()


def test_release_links_name_only_safe_versions_inside_releases(tmp_path):
    layout = agent.Layout(str(tmp_path / "edgeml"))
    layout.releases.mkdir(parents=True)
    (layout.releases / "v1").mkdir()
    assert layout.target(layout.current) is None  # nothing deployed
    layout.point(layout.current, "v1")
    assert os.readlink(layout.current) == "releases/v1" and layout.target(layout.current) == "v1"
    assert not layout.is_complete("v1")
    (layout.releases / "v1" / agent.OK_MARKER).write_text("done\n")
    assert layout.is_complete("v1") and not layout.is_complete(None) and not layout.is_complete("../v1")
    for bad in ("../outside", "/etc", "releases/v1", ""):
        with pytest.raises(agent.Failure):
            layout.point(layout.current, bad)
        with pytest.raises(agent.Failure):
            layout.release(bad)
    assert layout.target(layout.current) == "v1"  # a refused switch changes nothing
    os.unlink(layout.current)
    os.symlink("../../etc", layout.current)  # a link someone else made: not a release
    assert layout.target(layout.current) is None
