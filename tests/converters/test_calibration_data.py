"""Reading calibration data from image folders and CSV files (no TensorFlow needed)."""

from __future__ import annotations

import numpy as np
import pytest
from edgeml_converters.calibration import load_data, split_for_validation
from edgeml_converters.errors import CalibrationError
from edgeml_converters.loading import TensorInfo


def test_image_folder_is_resized_to_the_input_shape(tmp_path):
    from PIL import Image

    for index in range(5):
        Image.fromarray(np.full((20, 30, 3), index * 40, np.uint8)).save(tmp_path / f"img{index}.png")
    inputs = [TensorInfo("pixels", (None, 8, 8, 1), "float32")]
    data = load_data(tmp_path, inputs, purpose="calibration", limit=3)
    assert data.arrays["pixels"].shape == (3, 8, 8, 1)
    # Raw 0..255 values (the model rescales itself); evenly chosen files 0, 2, 4 -> gray 0, 80, 160.
    np.testing.assert_allclose(data.arrays["pixels"][:, 0, 0, 0], [0, 80, 160], atol=1)


def test_csv_drops_the_label_column(tmp_path):
    csv = tmp_path / "rows.csv"
    csv.write_text("a,b,label,name\n1,2,0,x\n3,4,1,y\n")
    data = load_data(csv, [TensorInfo("features", (None, 2), "float32")], purpose="calibration")
    np.testing.assert_array_equal(data.arrays["features"], [[1, 2], [3, 4]])
    with pytest.raises(CalibrationError, match="3 numeric columns, the model takes 5 features"):
        load_data(csv, [TensorInfo("features", (None, 5), "float32")], purpose="calibration")


def test_held_back_samples_are_not_calibration_samples():
    inputs = [TensorInfo("x", (None, 1), "float32")]
    data = load_data(np.arange(500, dtype="float32")[:, None], inputs, purpose="calibration")
    calibration, validation = split_for_validation(data, 300)
    assert calibration.samples == 300 and validation.samples == 200
    assert not set(calibration.arrays["x"][:, 0]) & set(validation.arrays["x"][:, 0])
