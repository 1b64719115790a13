"""Every refusal of the device agent's manifest, name and path checks, with its stage and its message, and
every limit at its edge (accepted at the limit, refused one past it). A deploy's user reads these messages
on the controller; mutation testing (tests/mutation.py) showed which of them only a test like this pins
down. The agent runs in this process (`edgeml.device.agent`, the standard-library script deploy copies)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile

import pytest

from edgeml.device import agent
from tests.devices.test_agent_verification import FILES, TOP, build, extract, good_members, manifest_for

SHA = "a" * 64


def refusal(function, *args) -> str:
    with pytest.raises(agent.Failure) as caught:
        function(*args)
    assert caught.value.stage == "verify"
    return str(caught.value)


def entry(path, size=1, sha256=SHA):
    return {"path": path, "bytes": size, "sha256": sha256}


def manifest(**changes):
    base = {"schema": agent.SCHEMA, "name": "app", "version": "1.0", "models": [{"path": "models/m.tflite"}],
            "files": [entry("models/m.tflite"), entry("install.sh")]}
    base.update(changes)
    return base


@pytest.mark.parametrize("bad, message", [
    ([], "the bundle manifest is not a JSON object"),
    (manifest(schema="edgeml.bundle/2"), f"unsupported bundle schema 'edgeml.bundle/2'; expected {agent.SCHEMA}"),
    (manifest(name="../x"), 'refusing bundle name "../x": it may only hold letters, digits'),
    (manifest(version=5), "refusing bundle version 5: it may only hold letters, digits"),
    (manifest(files={}), "the bundle manifest must list 'files' and 'models'"),
    (manifest(models={}), "the bundle manifest must list 'files' and 'models'"),
    (manifest(files=[]), "the bundle manifest must list 'files' and 'models'"),
    (manifest(device=[]), "the bundle manifest's 'device' must be an object"),
    (manifest(files=["install.sh"]), "every entry of the manifest's 'files' must be an object"),
    (manifest(files=[entry("/etc/x")]), 'refusing file "/etc/x": it is absolute'),
    (manifest(files=[entry("models/m.tflite", size=-1)]), "models/m.tflite: the manifest's size is not a byte count"),
    (manifest(files=[entry("models/m.tflite", size=True)]), "models/m.tflite: the manifest's size is not a byte count"),
    (manifest(files=[entry("models/m.tflite", size="1")]), "models/m.tflite: the manifest's size is not a byte count"),
    (manifest(files=[entry("models/m.tflite", sha256="A" * 64)]),
     "models/m.tflite: the manifest's sha256 is not 64 hex digits"),
    (manifest(files=[entry("models/m.tflite", sha256="a" * 63)]),
     "models/m.tflite: the manifest's sha256 is not 64 hex digits"),
    (manifest(files=[entry("models/m.tflite", sha256=None)]),
     "models/m.tflite: the manifest's sha256 is not 64 hex digits"),
    (manifest(files=[entry("models/m.tflite"), entry("models/m.tflite")]),
     "models/m.tflite is listed twice in the bundle manifest"),
    (manifest(files=[entry("models/m.tflite"), entry("models")]),
     "the manifest lists models both as a file and a folder"),
    (manifest(files=[entry("models/m.tflite"), entry("a/b/c"), entry("a/b")]),
     "the manifest lists a/b both as a file and a folder"),
    (manifest(files=[entry("models/m.tflite"), entry("b"), entry("b/c"), entry("a"), entry("a/c")]),
     "the manifest lists a both as a file and a folder"),  # the first of them, sorted
    (manifest(models=[{"path": "models/other.tflite"}]),
     'model "models/other.tflite" is not one of the bundle\'s files'),
    (manifest(models=["models/m.tflite"]), 'model "models/m.tflite" is not one of the bundle\'s files'),
    (manifest(models=[{"path": "venv/m.tflite"}]), 'refusing model "venv/m.tflite": it uses the reserved name'),
])
def test_every_manifest_refusal_says_what_is_wrong(bad, message):
    assert message in refusal(agent.check_manifest, bad)


def test_a_good_manifest_passes_as_it_is():
    good = manifest(files=[entry("models/m.tflite", size=0), entry("a/b/c"), entry("a/bc")])
    assert agent.check_manifest(good) is good


@pytest.mark.parametrize("value, problem", [
    (None, "is empty or not a string"),
    (123, "is empty or not a string"),
    ("", "is empty or not a string"),
    ("x" * 1025, "is longer than 1024 characters"),
    ("/etc/passwd", "is absolute"),
    ("a\\b", "holds a backslash or control characters"),
    ("a\x7fb", "holds a backslash or control characters"),
    ("a\nb", "holds a backslash or control characters"),
    ("a//b", "has an empty, '.' or '..' part"),
    ("a/./b", "has an empty, '.' or '..' part"),
    ("a/../b", "has an empty, '.' or '..' part"),
    ("a/", "has an empty, '.' or '..' part"),
    ("a/" + "é" * 128, "has a part longer than 255 bytes"),  # 256 bytes in UTF-8
    ("venv/bin/python", "uses the reserved name 'venv'"),
    (agent.OK_MARKER, f"uses the reserved name '{agent.OK_MARKER}'"),
])
def test_path_problems_word_for_word(value, problem):
    assert agent.path_problem(value) == problem
    assert refusal(agent.check_path, "file", value) == f"refusing file {json.dumps(value)}: it {problem}"


def test_path_limits_at_their_edge():
    longest = "/".join(["x" * 204] * 5)
    assert len(longest) == 1024 and agent.path_problem(longest) is None
    assert agent.path_problem("a/" + "é" * 127 + "x") is None  # a part of exactly 255 bytes
    assert agent.path_problem("models/venv") is None  # reserved only as the first part
    assert agent.path_problem("x" * 1024) is not None  # one part of 1024 bytes: too long a part, not a path


def test_names_at_their_edge_and_the_message():
    assert agent.name_problem("v" * 64) is None
    problem = agent.name_problem("v" * 65)
    assert problem == ("may only hold letters, digits, '.', '_', '+' and '-' (at most 64, not starting with '.' "
                       "or '-')")
    assert refusal(agent.check_name, "version", "v" * 65) == f'refusing bundle version "{"v" * 65}": it {problem}'
    assert agent.check_name("name", "app_1.0+b-2") == "app_1.0+b-2"


def test_member_names_at_their_edge():
    longest = "a" * (2 * agent.MAX_NAME_LENGTH + 1)  # NAME-VERSION: two names and a dash
    assert agent.check_member_name(f"{longest}/x") == (longest, "x")
    message = refusal(agent.check_member_name, f"{longest}a/x")
    assert message == f'refusing member "{longest}a/x": not inside the bundle\'s NAME-VERSION folder'
    assert "not inside" in refusal(agent.check_member_name, "a$b/x")
    assert "not inside" in refusal(agent.check_member_name, "/x")
    assert refusal(agent.check_member_name, "app-1.0/a/../b") == (
        'refusing member "app-1.0/a/../b": its path has an empty, \'.\' or \'..\' part')
    assert agent.check_member_name(f"app-1.0/{agent.BUNDLE_MANIFEST}") == ("app-1.0", agent.BUNDLE_MANIFEST)
    assert agent.check_member_name(f"app-1.0/{agent.BUNDLE_SIGNATURE}") == ("app-1.0", agent.BUNDLE_SIGNATURE)


def _tar(path, entries):
    """entries: (name, bytes) files or (name, ("type", tarfile type)) others, in order."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if isinstance(data, bytes):
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                info.type, info.linkname = data[1], "elsewhere"
                tar.addfile(info)
    return path


@pytest.mark.parametrize("entries", [
    [],  # an empty archive
    [(f"{TOP}/{agent.BUNDLE_MANIFEST}", ("type", tarfile.SYMTYPE))],
    [(f"{TOP}/{agent.BUNDLE_MANIFEST}", ("type", tarfile.DIRTYPE))],
    [(f"{TOP}/models/{agent.BUNDLE_MANIFEST}", b"{}")],
])
def test_not_a_bundle_unless_a_regular_manifest_comes_first(tmp_path, entries):
    bundle = _tar(tmp_path / "b.tar.gz", entries)
    message = refusal(extract, bundle, tmp_path / "out")
    assert message == f"b.tar.gz: not an edgeml bundle ({agent.BUNDLE_MANIFEST} must come first)"


def test_manifest_size_limit_at_its_edge(tmp_path):
    raw = json.dumps(manifest_for(FILES)).encode()
    at_limit = raw + b" " * (agent.MAX_MANIFEST_BYTES - len(raw))  # JSON allows trailing whitespace
    extract(build(tmp_path / "at.tar.gz", good_members(), at_limit), tmp_path / "at")
    over = at_limit + b" "
    message = refusal(extract, build(tmp_path / "over.tar.gz", good_members(), over), tmp_path / "over")
    assert message == (f"{agent.BUNDLE_MANIFEST} is {agent.MAX_MANIFEST_BYTES + 1} bytes; refusing more than "
                       f"{agent.MAX_MANIFEST_BYTES}")


def test_signature_size_limit_and_kind(tmp_path):
    at_limit = b"s" * agent.MAX_SIGNATURE_BYTES
    extract(build(tmp_path / "at.tar.gz", good_members(), signature=at_limit), tmp_path / "at")
    assert (tmp_path / "at" / agent.BUNDLE_SIGNATURE).read_bytes() == at_limit
    over = build(tmp_path / "over.tar.gz", good_members(), signature=at_limit + b"s")
    assert refusal(extract, over, tmp_path / "over") == (
        f'refusing member "{TOP}/{agent.BUNDLE_SIGNATURE}": not a signature')
    raw = json.dumps(manifest_for(FILES)).encode()
    linked = _tar(tmp_path / "link.tar.gz", [(f"{TOP}/{agent.BUNDLE_MANIFEST}", raw),
                                             (f"{TOP}/{agent.BUNDLE_SIGNATURE}", ("type", tarfile.SYMTYPE)),
                                             *good_members()])
    assert "not a signature" in refusal(extract, linked, tmp_path / "link")


def test_verifier_messages_name_what_they_refuse(tmp_path):
    bundle = build(tmp_path / "b.tar.gz", good_members())
    actual = agent.sha256_file(bundle)
    wrong = "0123456789abcdef" * 4
    assert refusal(agent.extract_verified, bundle, wrong, tmp_path / "x") == (
        f"bundle sha256 mismatch after upload (expected {wrong[:12]}, got {actual[:12]}): the copy was corrupted "
        "in transit")
    many = {f"f{i}": bytes([i]) for i in range(5)}
    partial = build(tmp_path / "p.tar.gz", [(f"{TOP}/f0", many["f0"])],
                    manifest_for(many, models=[{"path": "f0"}]))
    assert refusal(extract, partial, tmp_path / "p") == "bundle is missing 4 listed file(s): f1, f2, f3"
    extra = build(tmp_path / "e.tar.gz", [*good_members(), (f"{TOP}/extra", b"x")])
    assert refusal(extract, extra, tmp_path / "e") == (
        f'refusing member "{TOP}/extra": not listed in the bundle manifest, or listed once and present twice')
    linked = build(tmp_path / "l.tar.gz", [(f"{TOP}/models/link", ("type", tarfile.SYMTYPE)), *good_members()])
    assert refusal(extract, linked, tmp_path / "l") == (
        f'refusing member "{TOP}/models/link": links, devices and directories are not allowed in a bundle')


def test_a_bundle_larger_than_the_free_space_is_refused_before_writing(tmp_path):
    huge = manifest_for(FILES)
    huge["files"][0]["bytes"] = 1 << 60
    bundle = build(tmp_path / "b.tar.gz", good_members(), huge)
    message = refusal(extract, bundle, tmp_path / "out")
    assert message.startswith(f"the bundle's files need {(1 << 60) + sum(map(len, list(FILES.values())[1:]))} "
                              f"bytes but {tmp_path} has only ") and message.endswith(" bytes free")
    assert not (tmp_path / "out").exists()


def test_release_paths_are_refused_when_a_link_leads_elsewhere(tmp_path):
    layout = agent.Layout(str(tmp_path / "edgeml"))
    layout.releases.mkdir(parents=True)
    outside = tmp_path / "outside" / "v1"
    outside.mkdir(parents=True)
    (layout.releases / "v1").symlink_to(outside)  # same name, another folder
    message = refusal(layout.release, "v1")
    assert message == (f"refusing {layout.releases / 'v1'}: it resolves to {outside}, outside "
                       f"{layout.releases.resolve()}")
    assert refusal(layout.release, "../v2").startswith('refusing bundle version "../v2": it may only hold')
    assert refusal(layout.point, layout.current, "../v2").startswith('refusing bundle version "../v2"')


def test_links_that_are_not_a_release_name_nothing(tmp_path):
    layout = agent.Layout(str(tmp_path / "edgeml"))
    layout.releases.mkdir(parents=True)
    for target in ("other/v1", "releases/v1/extra", "releases/..", "v1"):
        if layout.current.is_symlink():
            os.unlink(layout.current)
        os.symlink(target, layout.current)
        assert layout.target(layout.current) is None, target
    (tmp_path / "edgeml" / "v1").mkdir()
    (tmp_path / "edgeml" / "v1" / agent.OK_MARKER).write_text("done\n")  # releases/../v1 would find it
    assert layout.is_complete("../v1") is False and layout.is_complete("v1") is False


def test_a_switch_replaces_a_leftover_temporary_name(tmp_path):
    """A switch killed between its symlink and its rename leaves .current.tmp-PID behind (dangling or not);
    a later switch by a process with the same id must not trip over it."""
    layout = agent.Layout(str(tmp_path / "edgeml"))
    (layout.releases / "v1").mkdir(parents=True)
    temporary = layout.root / f".{agent.CURRENT_LINK}.tmp-{os.getpid()}"
    os.symlink("releases/gone", temporary)  # dangling
    layout.point(layout.current, "v1")
    assert layout.target(layout.current) == "v1" and not temporary.is_symlink()
    temporary.write_text("a file")
    layout.point(layout.current, "v1")
    assert layout.target(layout.current) == "v1" and not temporary.exists()


def test_the_sha256_of_a_file_is_its_sha256(tmp_path):
    path = tmp_path / "f"
    data = os.urandom(3 << 20)  # more than one 1 MiB block
    path.write_bytes(data)
    assert agent.sha256_file(path) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("bad, message", [
    ([], "the bundle manifest is not a JSON object"),
    (manifest(files=[]), "the bundle manifest must list 'files' and 'models'"),
    (manifest(device=[]), "the bundle manifest's 'device' must be an object"),
    (manifest(files=["install.sh"]), "every entry of the manifest's 'files' must be an object"),
])
def test_structural_refusals_word_for_word(bad, message):
    assert refusal(agent.check_manifest, bad) == message


def test_a_member_is_never_written_through_a_link_or_a_file_in_its_way(tmp_path):
    """Defence in depth below the manifest checks: the writer itself refuses a folder on the way that is a
    symlink (it would lead out of the release) or a file."""
    data = b"model bytes"
    bundle = _tar(tmp_path / "b.tar.gz", [(f"{TOP}/models/m.tflite", data)])
    entry_ = {"path": "models/m.tflite", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    outside = tmp_path / "outside"
    outside.mkdir()
    for name, make in (("link", lambda d: (d / "models").symlink_to(outside)),
                       ("file", lambda d: (d / "models").write_text("in the way"))):
        destination = tmp_path / name
        destination.mkdir()
        make(destination)
        with tarfile.open(bundle) as tar:
            member = tar.getmember(f"{TOP}/models/m.tflite")
            message = refusal(agent._write_checked, tar, member, destination, "models/m.tflite", entry_)
        assert message == "refusing models/m.tflite: models is not a folder"
    assert list(outside.iterdir()) == []
