"""Fixtures for the runtime tests. They use committed tiny models (see data/make_models.py) and must
pass with only numpy and one backend installed: tests needing the other backend are skipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.models import DATA


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def reference() -> dict:
    with np.load(DATA / "reference.npz") as archive:
        return {key: archive[key] for key in archive.files}
