"""Hostile bundles against a device where v1 is deployed: each one is refused (exit 1 or 2), and nothing is lost
(the deploy directory and a sentinel folder outside it are exactly as before, and v1 still runs).

Every case is tried twice: through `edgeml deploy` (the controller re-checks names and paths before it
uploads anything), and straight into the on-device agent over ssh, the way any controller (an older
edgeml, a fleet playbook, an attacker with the bundle but not the controller) reaches it, so the device's
own checks are tested without the controller's. Checksums in the manifest are recomputed in every case,
so only the part named by the case is hostile.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile

import pytest

from tests.security import device_support as support
from tests.support.cli import edgeml

pytestmark = [pytest.mark.ssh, pytest.mark.slow]


@pytest.fixture(scope="module")
def device(sshd, tmp_path_factory, made):
    """(login, deploy dir with v1 active, sentinel folder outside it, the agent's python, signing keys): shared
    by the cases, which must leave it as it is. The sentinel sits where `releases/../../somewhere` points."""
    login = sshd.login()
    root = tmp_path_factory.mktemp("hostile-device")
    remote_dir = support.copy_device(support.deployed_v1(tmp_path_factory, login, made), root / "edgeml")
    outside = root / "somewhere"
    outside.mkdir()
    (outside / "keep.txt").write_text("must survive\n")
    return login, remote_dir, outside, support.device_python_path(login), made["keys"]


CASES = {}


def case(name: str, expect: str):
    """Register a hostile bundle: `build(members, top, manifest, device)` edits the members of the small
    bundle in place; `expect` is a fragment of the agent's refusal."""

    def register(build):
        CASES[name] = (build, expect)
        return build

    return register


def _member(members, suffix):
    return next(m for m in members if m.info.name.endswith(suffix))


# ---- names that become paths (finding 1)
for _version in ("..", "../x", "../../somewhere", "/tmp/edgeml-absolute-version", "v1\nx", ".hidden", "-rf"):
    case(f"version {_version!r}", "refusing bundle version")(
        lambda members, top, manifest, device, v=_version: support.set_manifest(members, {**manifest, "version": v}))

case("version that is the device's sentinel (absolute)", "refusing bundle version")(
    lambda members, top, manifest, device: support.set_manifest(members, {**manifest, "version": str(device[2])}))
case("name '..'", "refusing bundle name")(
    lambda members, top, manifest, device: support.set_manifest(members, {**manifest, "name": ".."}))
case("name with a slash", "refusing bundle name")(
    lambda members, top, manifest, device: support.set_manifest(members, {**manifest, "name": "a/../../b"}))


@case("model path climbing out", "refusing model")
def _(members, top, manifest, device):
    manifest["models"][0]["path"] = "../../../../somewhere/evil.onnx"
    support.set_manifest(members, manifest)


@case("model not among the files", "is not one of the bundle's files")
def _(members, top, manifest, device):
    manifest["models"][0]["path"] = "models/other.onnx"
    support.set_manifest(members, manifest)


@case("listed file climbing out", "refusing file")
def _(members, top, manifest, device):
    member = _member(members, "/install.sh")
    member.info.name = f"{top}/../escape.sh"
    next(f for f in manifest["files"] if f["path"] == "install.sh")["path"] = "../escape.sh"
    support.set_manifest(members, manifest)


@case("listed file with an absolute path", "refusing file")
def _(members, top, manifest, device):
    target = str(device[2] / "absolute.sh")
    _member(members, "/install.sh").info.name = target
    next(f for f in manifest["files"] if f["path"] == "install.sh")["path"] = target
    support.set_manifest(members, manifest)


@case("listed file with backslashes", "refusing file")
def _(members, top, manifest, device):
    _member(members, "/install.sh").info.name = f"{top}/models\\..\\..\\x.sh"
    next(f for f in manifest["files"] if f["path"] == "install.sh")["path"] = "models\\..\\..\\x.sh"
    support.set_manifest(members, manifest)


@case("listed file named like the agent's marker", "reserved name")
def _(members, top, manifest, device):
    members.append(support.regular(f"{top}/.edgeml-ok", b"2020-01-01T00:00:00Z\n"))
    manifest["files"].append({"path": ".edgeml-ok", "bytes": 0, "sha256": "0" * 64})
    support.set_manifest(members, manifest)


@case("listed file inside venv/", "reserved name")
def _(members, top, manifest, device):
    members.append(support.regular(f"{top}/venv/bin/python", b"#!/bin/sh\necho owned\n"))
    manifest["files"].append({"path": "venv/bin/python", "bytes": 0, "sha256": "0" * 64})
    support.set_manifest(members, manifest)


@case("a path listed both as a file and a folder", "both as a file and a folder")
def _(members, top, manifest, device):
    members.append(support.regular(f"{top}/models", b"x"))
    manifest["files"].append({"path": "models", "bytes": 0, "sha256": "0" * 64})
    support.set_manifest(members, manifest)


# ---- members that are not plain listed files
@case("absolute member", "not inside the bundle's NAME-VERSION folder")
def _(members, top, manifest, device):
    members.append(support.regular(str(device[2] / "absolute-member"), b"owned\n"))


@case("'..' member", "'..' part")
def _(members, top, manifest, device):
    members.append(support.regular(f"{top}/../../somewhere/dotdot-member", b"owned\n"))


@case("member in another top folder", "not listed")
def _(members, top, manifest, device):
    _member(members, "/install.sh").info.name = "other-s1/install.sh"


@case("member name with a newline", "control characters")
def _(members, top, manifest, device):
    members.append(support.regular(f"{top}/models/evil\nname", b"x"))


for _kind, _type, _link in (("symlink", tarfile.SYMTYPE, "/etc/passwd"), ("hardlink", tarfile.LNKTYPE, "/etc/passwd"),
                            ("character device", tarfile.CHRTYPE, ""), ("block device", tarfile.BLKTYPE, ""),
                            ("fifo", tarfile.FIFOTYPE, ""), ("directory", tarfile.DIRTYPE, "")):
    case(f"{_kind} member", "links, devices and directories are not allowed")(
        lambda members, top, manifest, device, t=_type, link=_link:
        members.append(support.special(f"{top}/models/evil", t, link)))


@case("symlink in place of a listed file", "links, devices and directories are not allowed")
def _(members, top, manifest, device):
    index = members.index(_member(members, "/install.sh"))
    members[index] = support.special(f"{top}/install.sh", tarfile.SYMTYPE, "/etc/passwd")


@case("hardlink to a listed file", "links, devices and directories are not allowed")
def _(members, top, manifest, device):
    members.append(support.special(f"{top}/models/second.sh", tarfile.LNKTYPE, f"{top}/install.sh"))


@case("duplicate member", "present twice")
def _(members, top, manifest, device):
    original = _member(members, "/install.sh")
    members.append(support.regular(original.info.name, original.data))


@case("duplicate member, first with other content", "sha256 mismatch for install.sh")
def _(members, top, manifest, device):
    original = _member(members, "/install.sh")
    members.insert(1, support.regular(original.info.name, original.data.replace(b"set -eu", b"touch x")))


@case("file listed twice", "listed twice")
def _(members, top, manifest, device):
    manifest["files"].append(dict(next(f for f in manifest["files"] if f["path"] == "install.sh")))
    support.set_manifest(members, manifest)


@case("huge unlisted member (256 MiB of zeros)", "not listed")
def _(members, top, manifest, device):
    members.insert(1, support.huge(f"{top}/models/huge.bin", 256 << 20))


@case("listed sizes beyond the disk", "bytes free")
def _(members, top, manifest, device):
    support.set_manifest(members, manifest)
    manifest = support.manifest_of(members)
    next(f for f in manifest["files"] if f["path"] == "install.sh")["bytes"] = 1 << 60
    support.set_manifest(members, manifest, recompute=False)


@case("unlisted extra file", "not listed")
def _(members, top, manifest, device):
    members.append(support.regular(f"{top}/extra.sh", b"#!/bin/sh\ntouch /tmp/owned\n"))


@case("listed file missing", "missing 1 listed file")
def _(members, top, manifest, device):
    members.remove(_member(members, "/install.sh"))


@case("size in the manifest is a string", "not a byte count")
def _(members, top, manifest, device):
    manifest["files"][0]["bytes"] = str(manifest["files"][0]["bytes"])
    support.set_manifest(members, manifest, recompute=False)


# ---- the manifest itself
@case("manifest not first", "must come first")
def _(members, top, manifest, device):
    members.append(members.pop(0))


@case("manifest not JSON", "not JSON")
def _(members, top, manifest, device):
    members[0].data = b'{"schema": "edgeml.bundle/1", "version": '


@case("manifest a JSON list", "not a JSON object")
def _(members, top, manifest, device):
    members[0].data = b"[]"


@case("manifest of 17 MiB", "refusing more than")
def _(members, top, manifest, device):
    members[0].data = json.dumps({**manifest, "padding": " " * (17 << 20)}).encode()


@case("byte flipped in a file", "sha256 mismatch for install.sh")
def _(members, top, manifest, device):
    member = _member(members, "/install.sh")
    member.data = member.data[:-2] + bytes([member.data[-2] ^ 0x01]) + member.data[-1:]


@case("byte flipped in the manifest's checksums", "sha256 mismatch for install.sh")
def _(members, top, manifest, device):
    support.set_manifest(members, manifest)
    flipped = support.manifest_of(members)
    entry = next(f for f in flipped["files"] if f["path"] == "install.sh")
    entry["sha256"] = ("0" if entry["sha256"][0] != "0" else "1") + entry["sha256"][1:]
    support.set_manifest(members, flipped, recompute=False)


@case("signature member that is a symlink", "not a signature")
def _(members, top, manifest, device):
    members.insert(1, support.special(f"{top}/edgeml-bundle.json.sig", tarfile.SYMTYPE, "/etc/passwd"))


@case("signed, then install.sh changed (checksums recomputed), no key pinned", "does not match the bundle manifest")
def _(members, top, manifest, device):
    support.sign_members(members, device[4]["release"])
    member = _member(members, "/install.sh")
    member.data = member.data.replace(b"set -eu\n", b"set -eu\ntouch /tmp/edgeml-owned\n")
    support.set_manifest(members, manifest)


@case("garbage signature, no key pinned", "not an OpenSSH signature")
def _(members, top, manifest, device):
    members.insert(1, support.regular(f"{top}/edgeml-bundle.json.sig", b"-----BEGIN SSH SIGNATURE-----\nAAAA\n"))


# ---- not a bundle at all
@case("not gzip", "")
def _(members, top, manifest, device):
    members.clear()


@case("truncated", "")
def _(members, top, manifest, device):
    members.append(support.huge(f"{top}/models/truncate-me.bin", 1 << 20))


def _build(name, made, device, target):
    build, _ = CASES[name]
    members = support.read_members(made["small"])
    top, manifest = support.top_of(members), support.manifest_of(members)
    build(members, top, manifest, device)
    if name == "not gzip":
        target.write_bytes(os.urandom(4096))
    else:
        support.write_bundle(target, members)
        if name == "truncated":
            data = target.read_bytes()
            target.write_bytes(data[: len(data) // 2])
    return target


def _state(device):
    _, remote_dir, outside, _, _ = device
    return support.snapshot(remote_dir), support.snapshot(outside), sorted(os.listdir(remote_dir.parent))


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_bundle_is_refused_and_nothing_is_lost(name, made, device, tmp_path):
    login, remote_dir, outside, python, _ = device
    bundle = _build(name, made, device, tmp_path / "hostile.tar.gz")
    before = _state(device)

    controller = edgeml("deploy", bundle, *login.deploy_args(), "--dir", remote_dir)
    lost_by_controller = _state(device) != before
    support.TALLY.record("hostile bundle via edgeml deploy", controller.returncode in (1, 2), lost_by_controller)

    code, events, stderr = support.agent_over_ssh(login, python, remote_dir, bundle)
    lost_by_agent = _state(device) != before
    support.TALLY.record("hostile bundle straight to the agent", code == 1, lost_by_agent)

    assert controller.returncode in (1, 2), controller.stdout + controller.stderr
    assert "Traceback" not in controller.stderr and "internal error" not in controller.stderr
    assert code == 1 and events and events[-1]["event"] == "error", (events, stderr)
    assert "Traceback" not in stderr, stderr
    _, expect = CASES[name]
    assert expect in events[-1]["message"], events[-1]
    assert not lost_by_controller and not lost_by_agent
    assert os.readlink(remote_dir / "current") == "releases/v1"
    assert not list((remote_dir / "staging").iterdir())  # every refused upload was removed again


def test_hostile_versions_leave_the_deploy_dir_and_a_sentinel_outside_intact(made, device, tmp_path):
    """Finding 1: version '..' used to delete the whole deploy directory, '../../somewhere' to replace a
    folder outside it and report "activated". Checksums are right, only the version is hostile."""
    login, remote_dir, outside, python, _ = device
    for version in ("..", "../../somewhere"):
        members = support.read_members(made["small"])
        support.set_manifest(members, {**support.manifest_of(members), "version": version})
        bundle = support.write_bundle(tmp_path / "version.tar.gz", members)
        before = _state(device)
        controller = edgeml("deploy", bundle, *login.deploy_args(), "--dir", remote_dir, check_exit=2)
        assert f"bundle version '{version}' may only hold" in controller.stderr
        code, events, _ = support.agent_over_ssh(login, python, remote_dir, bundle)
        assert code == 1 and events[-1]["stage"] == "verify"
        assert f'refusing bundle version "{version}"' in events[-1]["message"]
        assert _state(device) == before
    assert (outside / "keep.txt").read_text() == "must survive\n"
    smoke = support.current_runs(login, remote_dir)
    assert smoke.returncode == 0 and "classifier.onnx" in smoke.stdout, smoke.stderr


def test_a_bundle_outside_staging_is_left_where_it_is(made, device, tmp_path):
    """The agent removes its staging folder when done, and never a folder it did not make: given a bundle
    somewhere else (as a playbook may copy it), it works in a staging folder of its own."""
    login, remote_dir, _, python, _ = device
    copy = tmp_path / "elsewhere" / "small.tar.gz"
    copy.parent.mkdir()
    shutil.copy(made["small"], copy)
    (copy.parent / "unrelated.txt").write_text("keep me\n")
    members = support.read_members(made["small"])
    support.set_manifest(members, {**support.manifest_of(members), "version": ".."})
    support.write_bundle(copy, members)
    digest = support.sha256(copy)
    done = login.run(f"{python} {support.AGENT} deploy --dir {remote_dir} --bundle {copy} --sha256 {digest}")
    assert done.returncode == 1 and "refusing bundle version" in done.stdout
    assert copy.is_file() and (copy.parent / "unrelated.txt").is_file()
    assert not list((remote_dir / "staging").iterdir())
