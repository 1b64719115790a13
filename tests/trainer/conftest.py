"""Shared, session-scoped fixtures: each small model is trained once for all the tests that read it."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def make_table(path, rows: int = 120, seed: int = 0):
    """A small table with a numeric, a categorical and a gap-filled column, plus exact duplicates."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    size = rng.normal(10, 3, rows).round(2)
    colour = rng.choice(["red", "green", "blue"], rows)
    weight = rng.normal(50, 10, rows).round(1)
    # The label depends on both a number and a category, so the model must use both.
    label = np.where((size > 10) ^ (colour == "red"), "big", "small")
    frame = pd.DataFrame({"size": size, "colour": colour, "weight": weight, "label": label})
    frame.loc[::10, "weight"] = np.nan
    frame.loc[5::17, "colour"] = np.nan
    frame = pd.concat([frame, frame.iloc[:4]], ignore_index=True)  # 4 exact duplicates
    frame.to_csv(path, index=False)
    return frame


def make_image_folder(root, per_class: int = 12, size: int = 20, seed: int = 0):
    """Two classes of RGB PNGs that differ in brightness (easy to learn, cheap to train)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, low in (("dark", 0), ("light", 150)):
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            pixels = rng.integers(low, low + 100, (size, size + 4, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{index}.png")
    return root


@pytest.fixture(scope="session")
def table_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "table.csv"
    make_table(path)
    return path


@pytest.fixture(scope="session")
def image_folder_factory():
    return make_image_folder


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("images") / "photos")


@pytest.fixture(scope="session")
def breast_cancer_run(tmp_path_factory):
    """The tabular target run: breast cancer with the default MLP (a few seconds)."""
    from edgeml.trainer import FitConfig, load_data, train

    outdir = tmp_path_factory.mktemp("breast_cancer") / "model"
    return train(load_data(dataset="breast_cancer"), outdir, fit_config=FitConfig(seed=0))


@pytest.fixture(scope="session")
def table_run(tmp_path_factory, table_csv):
    """A CSV with a categorical column, trained briefly; used for the labels.json contract tests."""
    from edgeml.trainer import FitConfig, load_data, train

    outdir = tmp_path_factory.mktemp("table_model") / "model"
    return train(load_data(str(table_csv), target="label"), outdir, fit_config=FitConfig(epochs=40, seed=0),
                 save_h5=True)
