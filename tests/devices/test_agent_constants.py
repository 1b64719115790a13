"""The on-device agent runs alone on the device (standard library only), so it keeps copies of the names
the rest of edgeml takes from `edgeml_runtime.formats`; they must stay the same."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from edgeml_runtime import formats

import edgeml.device

AGENT = Path(edgeml.device.__file__).with_name("agent.py")


def _agent():
    spec = importlib.util.spec_from_file_location("edgeml_device_agent_copy", AGENT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_agent_copies_of_the_layout_and_bundle_names_match_the_registry():
    agent = _agent()
    assert agent.BUNDLE_MANIFEST == formats.BUNDLE_MANIFEST_FILE
    assert agent.SCHEMA == formats.BUNDLE_SCHEMA
    assert agent.OK_MARKER == formats.OK_MARKER
    assert agent.RELEASES_DIR == formats.RELEASES_DIR
    assert agent.CURRENT_LINK == formats.CURRENT_LINK
    assert agent.PREVIOUS_LINK == formats.PREVIOUS_LINK
    assert agent.STAGING_DIR == formats.STAGING_DIR
    assert agent.BUNDLE_SIGNATURE == formats.BUNDLE_SIGNATURE_FILE
    assert agent.SIGNATURE_NAMESPACE == formats.SIGNATURE_NAMESPACE
    assert agent.TRUSTED_KEYS == formats.TRUSTED_KEYS_FILE


NAMES = ["v1", "1.0.0+build.7", "a" * 64, "a" * 65, "..", ".", "", "../x", "../../somewhere", "/abs", "-rf", ".hidden",
         "a/b", "a b", "a\nb", "a\\b", "caf\u00e9", "v1\x00", "x..y", "_x", "1", "A-b_c.d"]


def test_the_device_applies_the_build_time_rule_for_names():
    """`edgeml bundle` refuses a bad name or version (bundle._checked); the agent, which cannot import it,
    keeps a copy of the rule and must refuse exactly the same names on the device."""
    from edgeml.device import bundle

    agent = _agent()
    assert agent.SAFE_NAME.pattern == bundle.SAFE_NAME.pattern
    assert agent.MAX_NAME_LENGTH == bundle.MAX_NAME_LENGTH
    for name in NAMES:
        try:
            bundle._checked("version", name)
            built = True
        except bundle.BundleError:
            built = False
        assert (agent.name_problem(name) is None) == built, name
    assert agent.name_problem("..") and agent.name_problem("../../somewhere") and agent.name_problem(None)


def test_the_device_path_rule_refuses_what_leaves_a_release():
    agent = _agent()
    for good in ("models/m.onnx", "wheels/numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
                 "install.sh", "models/my model.tflite", "models/sub/dir/x.onnx"):
        assert agent.path_problem(good) is None, good
    for bad in ("", "/etc/passwd", "../x", "models/../../x", "models//x", "./x", "models/.", "a\\b", "a\nb",
                ".edgeml-ok", "venv/bin/python", "edgeml-bundle.json", "x" * 256, None, 7):
        assert agent.path_problem(bad), bad


def test_agent_imports_only_the_standard_library():
    """It is copied to the device alone and runs with the device's python3: only the smoke-test snippets it
    hands to the release's venv may import edgeml_runtime."""
    import ast

    tree = ast.parse(AGENT.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported - set(__import__("sys").stdlib_module_names) - {"__future__"}
