"""A model trained and converted once for the command-line tests that need a real one (stderr, reports)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.support.cli import edgeml, user_environment


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """`edgeml train --dataset digits --epochs 2` then `edgeml convert --int8`, run as a user's shell runs
    them (no TF_CPP_MIN_LOG_LEVEL set); the commands' CompletedProcess objects are kept for their stderr."""
    root = tmp_path_factory.mktemp("digits")
    environment = user_environment()
    train = edgeml("train", "--dataset", "digits", "--epochs", "2", "-o", root / "model", env=environment,
                   check_exit=0)
    convert = edgeml("convert", root / "model" / "model.keras", "--int8", "-o", root / "converted",
                     env=environment, check_exit=0)
    return SimpleNamespace(root=root, model=root / "model", converted=root / "converted", train=train,
                           convert=convert, env=environment)
