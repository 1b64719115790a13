"""Fixtures for the serving tests: deployment directories and a real Mosquitto broker."""

from __future__ import annotations

import pytest

from tests.serving.serving_support import broker_or_skip, make_release, switch
from tests.support.marks import require_backend_for
from tests.support.models import MLP_FP32


@pytest.fixture
def deployment(tmp_path):
    """A deployment directory with release v1 (the fp32 MLP with labels.json) as current. Skipped where no
    TFLite backend is installed (the runtime-only environment with ONNX Runtime)."""
    require_backend_for(MLP_FP32)
    root = tmp_path / "deploy"
    make_release(root, "v1")
    switch(root, "v1")
    return root


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """One Mosquitto for the session (tests that restart it use `own_broker`)."""
    server = broker_or_skip(tmp_path_factory.mktemp("mosquitto"))
    yield server
    server.stop()


@pytest.fixture
def own_broker(tmp_path):
    server = broker_or_skip(tmp_path)
    yield server
    server.stop()
