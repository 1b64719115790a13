"""Fixtures for the serving tests: deployment directories and a real Mosquitto broker."""

from __future__ import annotations

import pytest
from serving_support import Broker, make_release, switch


@pytest.fixture
def deployment(tmp_path):
    """A deployment directory with release v1 (the fp32 MLP with labels.json) as current."""
    root = tmp_path / "deploy"
    make_release(root, "v1")
    switch(root, "v1")
    return root


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """One Mosquitto for the session (tests that restart it use `own_broker`)."""
    server = Broker(tmp_path_factory.mktemp("mosquitto"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_broker(tmp_path):
    server = Broker(tmp_path)
    server.start()
    yield server
    server.stop()
