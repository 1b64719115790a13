"""Activation on the device is atomic: the agent's own switch of `current` (Layout.point, the function deploy and
rollback call), watched by a reader in another process that polls the link the whole time, as a service
resolving `current/` at that moment would. The reader must never find the link missing or dangling.

A control run with a non-atomic switch (unlink, a short pause, symlink) proves the reader notices when it is.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import edgeml.device

AGENT = Path(edgeml.device.__file__).with_name("agent.py")

# Polls until the stop file appears: readlink (is the link there?) and stat through it (does it resolve?).
READER = textwrap.dedent("""
    import json, os, sys
    link, stop, ready = sys.argv[1:4]
    reads = missing = dangling = 0
    seen = set()
    open(ready, "w").close()
    while not os.path.exists(stop):
        reads += 1
        try:
            seen.add(os.readlink(link))
        except FileNotFoundError:
            missing += 1
            continue
        try:
            os.stat(os.path.join(link, "marker"))
        except FileNotFoundError:
            dangling += 1
    print(json.dumps({"reads": reads, "missing": missing, "dangling": dangling, "seen": sorted(seen)}))
""")


def _agent():
    """The agent loaded from its file, as the device runs it (alone), under its package name (so that mutation
    testing, which switches code by module name, reaches it; it is not put in sys.modules)."""
    spec = importlib.util.spec_from_file_location("edgeml.device.agent", AGENT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _watch_switches(root: Path, switch, seconds: float, max_switches: int, min_switches: int = 0) -> dict:
    """Run `switch(version)` alternately to v1/v2 while a reader process polls root/current: for `seconds`
    or `max_switches`, but at least `min_switches` (each switch fsyncs the directory, which a busy disk slows
    down; 60 s at most)."""
    stop, ready = root / "stop", root / "ready"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(root / "current"), str(stop), str(ready)],
                              stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert reader.poll() is None and time.monotonic() < deadline, "the reader did not start"
            time.sleep(0.01)
        switches = 0
        started = time.monotonic()
        while switches < max_switches and (time.monotonic() < started + seconds or switches < min_switches):
            if time.monotonic() > started + 60:
                break
            switch("v2" if switches % 2 == 0 else "v1")
            switches += 1
    finally:
        stop.touch()
        output, _ = reader.communicate(timeout=30)
    result = json.loads(output)
    result["switches"] = switches
    return result


@pytest.fixture
def layout(tmp_path):
    agent = _agent()
    layout = agent.Layout(str(tmp_path / "edgeml"))
    for version in ("v1", "v2"):
        (layout.release(version)).mkdir(parents=True)
        (layout.release(version) / "marker").write_text(version)
    layout.point(layout.current, "v1")
    return layout


def test_the_agents_switch_never_leaves_current_missing(layout):
    result = _watch_switches(layout.root, lambda version: layout.point(layout.current, version),
                             seconds=3.0, max_switches=3000, min_switches=200)
    assert result["switches"] >= 200 and result["reads"] >= 1000, result  # a real overlap was watched
    assert result["seen"] == ["releases/v1", "releases/v2"]
    assert (result["missing"], result["dangling"]) == (0, 0), result
    # No temporary link left behind, and the link is relative (the directory can move or be mounted elsewhere).
    assert sorted(path.name for path in layout.root.iterdir()) == ["current", "ready", "releases", "stop"]
    assert os.readlink(layout.current) == f"releases/{'v1' if result['switches'] % 2 == 0 else 'v2'}"


def test_the_previous_link_is_switched_the_same_way(layout):
    layout.point(layout.previous, "v2")
    result = _watch_switches(layout.root, lambda version: layout.point(layout.previous, version),
                             seconds=1.0, max_switches=500, min_switches=50)
    assert result["switches"] >= 50 and result["missing"] == 0  # `current` untouched meanwhile
    assert layout.target(layout.previous) in ("v1", "v2") and layout.target(layout.current) == "v1"


def test_control_the_reader_catches_a_non_atomic_switch(layout):
    """The same watch with the bug the issue planted (unlink, pause, symlink): the reader sees the gap."""

    def unlink_then_link(version):
        os.unlink(layout.current)
        time.sleep(0.0005)
        os.symlink(f"releases/{version}", layout.current)

    result = _watch_switches(layout.root, unlink_then_link, seconds=3.0, max_switches=400)
    assert result["missing"] > 0, result
