"""Rules of bundle names and member paths that hold for every input (hypothesis), on the functions the device
agent runs (`edgeml.device.agent`) and the ones `edgeml bundle` runs (`edgeml.device.bundle`):

- a path the agent accepts stays inside the release folder whatever it is joined to, and holds no '', '.',
  '..' part, no backslash or control character, and is not absolute;
- every path made of ordinary parts is accepted (the rule does not refuse what `edgeml bundle` writes);
- a bundle member is accepted only as NAME-VERSION/<accepted path>;
- a name or version is accepted exactly when it matches the documented rule, on both sides alike.
"""

from __future__ import annotations

import posixpath
import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from edgeml.device import agent, bundle

SAFE_CHARACTERS = string.ascii_letters + string.digits + "._+-"
ORDINARY_PART = st.text(SAFE_CHARACTERS + "äé ()[]@~", min_size=1, max_size=40).filter(
    lambda part: part not in (".", ".."))
NASTY = st.sampled_from(["..", ".", "", "/", "\\", "\x00", "\n", "\x1b", "\x7f"])


def _accepted_path(value) -> bool:
    return agent.path_problem(value) is None


@given(st.text(max_size=80) | st.lists(st.text(max_size=12) | NASTY, max_size=6).map("/".join))
def test_an_accepted_path_never_leaves_the_release_folder(value):
    if not _accepted_path(value):
        return
    parts = value.split("/")
    assert not value.startswith("/") and "\\" not in value
    assert not any(part in ("", ".", "..") for part in parts)
    assert not any(ord(c) < 32 or ord(c) == 127 for c in value)
    release = "/device/edgeml/releases/v1"
    assert posixpath.normpath(posixpath.join(release, value)).startswith(release + "/")


@given(st.lists(ORDINARY_PART, min_size=1, max_size=5))
def test_paths_of_ordinary_parts_are_accepted(parts):
    assume(parts[0] not in agent.RESERVED_NAMES)
    path = "/".join(parts)
    assume(len(path) <= agent.MAX_PATH_LENGTH)
    assert agent.path_problem(path) is None
    assert bundle._checked_path(path) == path  # the build side applies the same rule


@given(st.lists(ORDINARY_PART, min_size=1, max_size=4), NASTY, st.integers(0, 4))
def test_a_nasty_part_anywhere_is_refused(parts, nasty, where):
    parts.insert(min(where, len(parts)), nasty)
    path = "/".join(parts)
    assert agent.path_problem(path) is not None
    with pytest.raises(agent.Failure):
        agent.check_member_name(f"app-1.0/{path}")
    with pytest.raises(bundle.BundleError):
        bundle._checked_path(path)


@given(st.text(SAFE_CHARACTERS, min_size=1, max_size=70), st.lists(ORDINARY_PART, min_size=1, max_size=4))
def test_a_member_is_the_bundle_folder_and_an_accepted_path(top, parts):
    assume(parts[0] not in agent.RESERVED_NAMES)
    path = "/".join(parts)
    member = f"{top}/{path}"
    if bundle.SAFE_NAME.fullmatch(top):
        assert agent.check_member_name(member) == (top, path)
    else:
        with pytest.raises(agent.Failure):
            agent.check_member_name(member)
    with pytest.raises(agent.Failure):
        agent.check_member_name(f"/{member}")
    with pytest.raises(agent.Failure):
        agent.check_member_name(top)  # the folder alone is no file


@given(st.text(max_size=80) | st.text(SAFE_CHARACTERS, max_size=80))
def test_names_and_versions_follow_one_rule_on_both_sides(value):
    documented = (value[:1].isascii() and value[:1].isalnum() and len(value) <= 64
                  and all(c in SAFE_CHARACTERS for c in value))
    assert (agent.name_problem(value) is None) == documented
    assert (bundle.SAFE_NAME.fullmatch(value) is not None and len(value) <= bundle.MAX_NAME_LENGTH) == documented
    if documented:
        assert bundle._checked("version", value) == value
        assert "/" not in value and value not in (".", "..")
    else:
        with pytest.raises(bundle.BundleError):
            bundle._checked("version", value)
        with pytest.raises(agent.Failure):
            agent.check_name("version", value)
