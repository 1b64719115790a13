"""Signed bundles and pinned keys, with real `ssh-keygen` keys and real deploys over the local sshd.

Finding 2: a bundle with a modified install.sh and recomputed checksums was activated and ran the added
command. The checksums cannot help (whoever edits the bundle recomputes them), so the first test shows
that this still works on a device that pins no key, and the next ones that it stops once a key is
pinned: `edgeml bundle --sign KEY` signs the manifest (which lists every file's sha256), `edgeml deploy
--trust KEY.pub` pins the key in DIR/trusted_keys, and from then on the device refuses unsigned bundles,
bundles signed by other keys and bundles changed after signing, whatever the command line says.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from edgeml.device import signing
from tests.security import device_support as support
from tests.support.cli import edgeml

pytestmark = [pytest.mark.ssh, pytest.mark.slow]


@pytest.fixture(scope="module")
def v1_state(tmp_path_factory, login, made):
    return support.deployed_v1(tmp_path_factory, login, made)


@pytest.fixture(scope="module")
def pinned_state(tmp_path_factory, login, made, v1_state):
    """v1, then v2 (signed by the release key) deployed with `--trust release.pub`: current v2, previous v1,
    the release key pinned. Tests work on copies."""
    state = support.copy_device(v1_state, tmp_path_factory.mktemp("pinned") / "edgeml")
    done = edgeml("deploy", made["v2"], *login.deploy_args(), "--dir", state, "--trust",
                  made["keys"]["release"].with_suffix(".pub"), "--json", check_exit=0)
    result = json.loads(done.stdout)[0]
    assert result["action"] == "activated" and result["version"] == "v2"
    assert result["details"]["signed_by"] == _fingerprint(made["keys"]["release"])
    return state


def _fingerprint(key) -> str:
    done = subprocess.run(["ssh-keygen", "-l", "-f", str(key.with_suffix(".pub"))], capture_output=True, text=True,
                          check=True)
    return done.stdout.split()[1]


def _deploy(login, remote_dir, bundle, *args, check_exit=None):
    return edgeml("deploy", bundle, *login.deploy_args(), "--dir", remote_dir, *args, "--json", check_exit=check_exit)


def _variant(source, target, *, version=None, install_line=None, signature="keep", key=None):
    """A copy of bundle `source`: another version, a line added to install.sh (checksums recomputed), and
    its signature kept as it was, stripped, or made again with `key`."""
    members = support.read_members(source)
    manifest = support.manifest_of(members)
    if version:
        manifest["version"] = version
    if install_line:
        member = next(m for m in members if m.info.name.endswith("/install.sh"))
        member.data = member.data.replace(b"set -eu\n", b"set -eu\n" + install_line.encode() + b"\n", 1)
    support.set_manifest(members, manifest)
    if signature == "strip":
        support.strip_signature(members)
    elif signature == "sign":
        support.sign_members(members, key)
    return support.write_bundle(target, members)


def test_a_signed_bundle_is_reproducible_and_verifies_with_its_key_only(made, tmp_path):
    keys = made["keys"]
    first, second = tmp_path / "1.tar.gz", tmp_path / "2.tar.gz"
    for out in (first, second):
        info = json.loads(edgeml("bundle", made["models"]["v1"], "--device", "generic-x86_64", "--no-wheels", "-o", out,
                                 "--sign", keys["release"], "--json", check_exit=0).stdout)
    assert first.read_bytes() == second.read_bytes()  # ed25519 signatures are deterministic
    assert info["signed_by"] == _fingerprint(keys["release"])
    members = support.read_members(first)
    top = support.top_of(members)
    assert [m.info.name for m in members[:2]] == [f"{top}/edgeml-bundle.json", f"{top}/edgeml-bundle.json.sig"]
    listed = {f["path"] for f in support.manifest_of(members)["files"]}
    assert "edgeml-bundle.json.sig" not in listed  # the signature signs the manifest, it is not listed in it
    public = {name: signing.read_public_key(key.with_suffix(".pub")) for name, key in keys.items()}
    assert signing.verify(members[0].data, members[1].data, [public["release"]])
    assert not signing.verify(members[0].data, members[1].data, [public["attacker"]])
    assert not signing.verify(members[0].data + b" ", members[1].data, [public["release"]])
    text = edgeml("bundle", made["models"]["v1"], "--device", "generic-x86_64", "--no-wheels", "-o", first,
                  "--sign", keys["release"], check_exit=0).stdout
    assert f"signed by {info['signed_by']}" in text


def test_bad_signing_and_trust_arguments_exit_2(made, login, v1_state, tmp_path):
    keys = made["keys"]
    not_a_key = tmp_path / "not-a-key"
    not_a_key.write_text("hello\n")
    bad_sign = edgeml("bundle", made["models"]["v1"], "--device", "generic-x86_64", "--no-wheels", "-o",
                      tmp_path / "x.tar.gz", "--sign", not_a_key, check_exit=2)
    assert "ssh-keygen could not sign" in bad_sign.stderr and "Traceback" not in bad_sign.stderr
    device = support.copy_device(v1_state, tmp_path / "device" / "edgeml")
    private = _deploy(login, device, made["v2"], "--trust", keys["release"], check_exit=2)
    assert "is a private key: pass its public half" in private.stderr
    unsigned = _deploy(login, device, made["small"], "--trust", keys["release"].with_suffix(".pub"), check_exit=2)
    assert "is not signed" in unsigned.stderr
    no_bundle = edgeml("deploy", "--status", *login.deploy_args(), "--dir", device, "--trust",
                       keys["release"].with_suffix(".pub"), check_exit=2)
    assert "give a signed BUNDLE" in no_bundle.stderr
    assert os.readlink(device / "current") == "releases/v1" and not (device / "trusted_keys").exists()


def test_without_a_pinned_key_a_tampered_install_sh_is_activated(made, login, v1_state, tmp_path):
    """The vulnerability as the review found it, still there on a device that pins no key: only trust closes it."""
    marker = tmp_path / "tampered-install-ran"
    device = support.copy_device(v1_state, tmp_path / "device" / "edgeml")
    tampered = _variant(made["v2"], tmp_path / "t1.tar.gz", version="t1", install_line=f"touch {marker}",
                        signature="strip")
    result = json.loads(_deploy(login, device, tampered, check_exit=0).stdout)[0]
    assert result["action"] == "activated" and result["details"]["signed_by"] is None
    assert marker.exists()


def test_a_pinned_device_refuses_what_its_key_did_not_sign(made, login, pinned_state, tmp_path):
    keys = made["keys"]
    device = support.copy_device(pinned_state, tmp_path / "device" / "edgeml")
    python = support.device_python_path(login)
    marker = tmp_path / "tampered-install-ran"
    line = f"touch {marker}"
    # Refused at the verify stage, before anything is installed: the small bundle (no wheels) will do.
    signed = _variant(made["small"], tmp_path / "small-signed.tar.gz", signature="sign", key=keys["release"])
    attempts = {
        "install.sh changed after signing": (
            _variant(signed, tmp_path / "a.tar.gz", version="t2", install_line=line), "does not match", ()),
        "signature stripped": (
            _variant(signed, tmp_path / "b.tar.gz", version="t2", install_line=line, signature="strip"),
            "is not signed", ()),
        "re-signed by another key": (
            _variant(signed, tmp_path / "c.tar.gz", version="t2", install_line=line, signature="sign",
                     key=keys["attacker"]), "a key this deploy does not trust", ()),
        "re-signed by another key, which the command line tries to pin": (
            tmp_path / "c.tar.gz", "a key this deploy does not trust",
            ("--trust", str(keys["attacker"].with_suffix(".pub")))),
        "unsigned bundle": (made["small"], "is not signed", ()),
        "signature after the files instead of second": (
            _signature_moved_to_the_end(signed, tmp_path / "d.tar.gz"), "is not signed", ()),
        "garbage signature": (_garbage_signature(signed, tmp_path / "e.tar.gz"), "not an OpenSSH signature", ()),
        "a valid signature (pinned key) of other bytes": (
            _foreign_signature(signed, keys["release"], tmp_path / "f.tar.gz"), "does not match", ()),
    }
    before = support.snapshot(device)
    for name, (bundle, expect, extra) in attempts.items():
        done = _deploy(login, device, bundle, *extra)
        code, events, _ = support.agent_over_ssh(login, python, device, bundle, *_agent_args(extra))
        lost = support.snapshot(device) != before or marker.exists()
        support.TALLY.record("signature check on a pinned device", done.returncode == 1 and code == 1, lost)
        assert done.returncode == 1, (name, done.stdout, done.stderr)
        assert expect in done.stderr and expect in events[-1]["message"], (name, done.stderr, events)
        assert not lost, name
    assert os.readlink(device / "current") == "releases/v2" and os.readlink(device / "previous") == "releases/v1"
    smoke = support.current_runs(login, device)
    assert smoke.returncode == 0 and "classifier.onnx" in smoke.stdout, smoke.stderr
    status = json.loads(edgeml("deploy", "--status", *login.deploy_args(), "--dir", device, "--json",
                               check_exit=0).stdout)[0]
    assert status["details"]["trusted_keys"] == [_fingerprint(keys["release"])]
    v2 = next(r for r in status["details"]["releases"] if r["version"] == "v2")
    assert v2["signed_by"] == _fingerprint(keys["release"])


def test_keys_change_only_with_a_bundle_signed_by_a_pinned_key(made, login, pinned_state, tmp_path):
    """Rotation: pin the next key with a bundle signed by the current one, then drop the current one with
    a bundle signed by the next. v2 is already active, so these deploys change only the keys."""
    keys = {**made["keys"], "next": support.make_key(tmp_path / "keys", "next")}
    fingerprints = {name: _fingerprint(key) for name, key in keys.items()}
    public = {name: str(key.with_suffix(".pub")) for name, key in keys.items()}
    device = support.copy_device(pinned_state, tmp_path / "device" / "edgeml")
    by = {name: _variant(made["v2"], tmp_path / f"v2-{name}.tar.gz", signature="sign", key=keys[name])
          for name in ("release", "next")}

    def pinned():
        lines = (device / "trusted_keys").read_text().splitlines()
        return sorted(line.split()[-1] for line in lines if line and not line.startswith("#"))

    refused = _deploy(login, device, by["next"], "--trust", public["next"], check_exit=1)
    assert "a key this deploy does not trust" in refused.stderr and pinned() == [fingerprints["release"]]
    added = json.loads(_deploy(login, device, by["release"], "--trust", public["next"], check_exit=0).stdout)[0]
    assert added["action"] == "unchanged"
    both = sorted([fingerprints["release"], fingerprints["next"]])
    assert sorted(added["details"]["trusted_keys"]) == pinned() == both
    last = _deploy(login, device, by["release"], "--untrust", fingerprints["release"], check_exit=1)
    assert "a key this deploy does not trust" in last.stderr  # signed by the key being dropped
    _deploy(login, device, by["next"], "--untrust", fingerprints["release"], check_exit=0)
    assert pinned() == [fingerprints["next"]]
    old = _deploy(login, device, by["release"], check_exit=1)
    assert "a key this deploy does not trust" in old.stderr
    every = _deploy(login, device, by["next"], "--untrust", fingerprints["next"], check_exit=1)
    assert "refusing to unpin every key" in every.stderr and pinned() == [fingerprints["next"]]
    unknown = _deploy(login, device, by["next"], "--untrust", "SHA256:nope", check_exit=1)
    assert "no such key is pinned" in unknown.stderr
    assert os.readlink(device / "current") == "releases/v2"


def test_the_first_pin_needs_a_bundle_signed_by_the_new_key(made, login, v1_state, tmp_path):
    keys = made["keys"]
    device = support.copy_device(v1_state, tmp_path / "device" / "edgeml")
    python = support.device_python_path(login)
    by_attacker = _variant(made["v2"], tmp_path / "v2-attacker.tar.gz", signature="sign", key=keys["attacker"])
    before = support.snapshot(device)
    done = _deploy(login, device, by_attacker, "--trust", keys["release"].with_suffix(".pub"), check_exit=1)
    assert "a key this deploy does not trust" in done.stderr
    release_key = signing.read_public_key(keys["release"].with_suffix(".pub"))
    code, events, _ = support.agent_over_ssh(login, python, device, made["small"], "--trust-key", release_key)
    assert code == 1 and "is not signed" in events[-1]["message"]
    assert support.snapshot(device) == before and not (device / "trusted_keys").exists()


def test_rollback_checks_the_previous_release_against_the_keys_trusted_now(made, login, pinned_state, tmp_path):
    """v1 was deployed unsigned before the release key was pinned: once keys are pinned it may not become
    current again, by rollback either."""
    device = support.copy_device(pinned_state, tmp_path / "device" / "edgeml")
    done = edgeml("deploy", "--rollback", *login.deploy_args(), "--dir", device, check_exit=1)
    assert "failed at verify" in done.stdout and "this device accepts only signed bundles" in done.stderr
    assert os.readlink(device / "current") == "releases/v2"
    assert os.readlink(device / "previous") == "releases/v1"


def test_a_damaged_trusted_keys_file_fails_closed(made, login, pinned_state, tmp_path):
    device = support.copy_device(pinned_state, tmp_path / "device" / "edgeml")
    for content, expect in (("ssh-ed25519 not-base64!\n", "line 1 is not a public key"),
                            ("# nothing\n\n", "pins no key")):
        (device / "trusted_keys").write_text(content)
        done = _deploy(login, device, made["v2"], check_exit=1)
        assert expect in done.stderr
        lost = os.readlink(device / "current") != "releases/v2"
        support.TALLY.record("damaged trusted_keys (fails closed)", True, lost)


def _agent_args(extra):
    """The controller's --trust FILE as the agent's --trust-key 'TYPE BASE64'."""
    if not extra:
        return ()
    return ("--trust-key", signing.read_public_key(extra[1]))


def _signature_moved_to_the_end(source, target):
    """The signature, still valid, but after the files instead of right after the manifest."""
    members = support.read_members(source)
    members.append(members.pop(1))
    return support.write_bundle(target, members)


def _garbage_signature(source, target):
    members = support.read_members(source)
    members[1].data = b"-----BEGIN SSH SIGNATURE-----\nU1NIU0lHAAAAAQ==\n-----END SSH SIGNATURE-----\n"
    return support.write_bundle(target, members)


def _foreign_signature(source, key, target):
    """The manifest with a valid signature by `key`, of other bytes (another manifest)."""
    members = support.read_members(source)
    members[1].data = signing.sign(members[0].data.replace(b'"install.sh"', b'"install.sh" '), key)
    return support.write_bundle(target, members)
