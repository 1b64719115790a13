"""`edgeml setup`: building the onnx2tf tool environment is explicit, and a rerun reuses it.

The build itself (about 2.6 GB of wheels) runs once per machine, in `make test` before pytest (`make onnx2tf-env`);
here the environment must already be there (skip without it, fail under CI) and the command must reuse it.
"""

from __future__ import annotations

import json

from tests.support.cli import edgeml
from tests.support.marks import require_onnx2tf_env


def test_a_second_run_reuses_the_environment():
    require_onnx2tf_env()
    done = edgeml("setup", "onnx2tf", check_exit=0)
    assert "reused" in done.stderr + done.stdout
    assert "pip install" not in done.stderr  # nothing was installed again


def test_json_names_the_environment_and_its_versions():
    from edgeml_converters import onnx2tf_env

    require_onnx2tf_env()
    report = json.loads(edgeml("setup", "onnx2tf", "--json", check_exit=0).stdout)
    assert report["ready"] and report["reused"]
    assert report["path"] == str(onnx2tf_env.tool_env().root)
    assert report["versions"]["onnx2tf"] == onnx2tf_env.ONNX2TF_VERSION
    assert report["versions"]["tensorflow"].startswith("2.19")
    assert report["requirements"] == list(onnx2tf_env.REQUIREMENTS)
    assert report["size_bytes"] > 100 * 1024 ** 2  # TensorFlow alone is more: the size was measured, not guessed


def test_unknown_tool_exits_2_listing_what_can_be_set_up():
    done = edgeml("setup", "tensorrt", check_exit=2)
    assert "unknown tool 'tensorrt'" in done.stderr and "onnx2tf" in done.stderr
    assert "Traceback" not in done.stderr


def test_without_a_tool_it_lists_them(tmp_path):
    done = edgeml("setup", "--json", env=_with_cache(tmp_path), check_exit=0)
    rows = json.loads(done.stdout)
    assert [row["tool"] for row in rows] == ["onnx2tf"] and rows[0]["ready"] is False


def test_doctor_says_how_to_set_it_up_when_missing(tmp_path):
    report = json.loads(edgeml("doctor", "--json", env=_with_cache(tmp_path), check_exit=0).stdout)
    check = next(check for check in report["checks"] if check["check"] == "tool env onnx2tf")
    assert not check["ok"] and "edgeml setup onnx2tf" in check["detail"]


def _with_cache(tmp_path):
    import os

    return {**os.environ, "EDGEML_CACHE": str(tmp_path / "cache")}


def test_a_failed_install_is_one_line_and_not_taken_as_ready(tmp_path):
    """pip with no package index to reach (PIP_NO_INDEX): exit 2 naming pip's reason; the stamp is not written,
    so convert still says to run setup, and a rerun resumes in the same venv."""
    from edgeml_converters import onnx2tf_env

    environment = {**_with_cache(tmp_path), "PIP_NO_INDEX": "1"}
    done = edgeml("setup", "onnx2tf", env=environment, check_exit=2)
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "pip failed" in error[0] and "onnx2tf==" in error[0], done.stderr
    assert "edgeml setup onnx2tf` again" in error[0] and "Traceback" not in done.stderr
    root = tmp_path / "cache" / "tools" / "onnx2tf"
    assert (root / "bin" / "python").exists() and not (root / onnx2tf_env.STAMP).exists()
    listed = json.loads(edgeml("setup", "--json", env=environment, check_exit=0).stdout)
    assert listed[0]["ready"] is False
    # --force starts from nothing: the half-built environment is removed first (and pip fails again here).
    marker = root / "lib" / "left-over"
    marker.write_text("from the failed build")
    again = edgeml("setup", "onnx2tf", "--force", env=environment, check_exit=2)
    assert f"removing {root}" in again.stderr and not marker.exists()
