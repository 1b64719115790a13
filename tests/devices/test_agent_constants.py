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
