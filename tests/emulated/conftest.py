"""Fixtures for the emulated-Pi tests: the device (built or reused from ~/.cache/edgeml/emulated) and
models made on the host. Where the device cannot be built the tests are skipped, except in CI (env CI
set), where that is a failure: CI must really run them."""

from __future__ import annotations

import sys

import pytest

from tests.support.marks import unavailable

TARGET = "rpi4"


@pytest.fixture(scope="session")
def emulated_pi():
    from edgeml.emulation import EmulationError, build

    try:
        return build(TARGET, progress=lambda event: print(event.message, file=sys.stderr))
    except EmulationError as error:
        unavailable(str(error))


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict:
    from tests.emulated.emulated_models import make_models

    return make_models(tmp_path_factory.mktemp("emulated-models"))
