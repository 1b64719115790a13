"""`edgeml`: a bug is exit 70 (EX_SOFTWARE) with a request for a report, never exit 2, which means the user's
input was refused; scripts (and these tests) tell a crash from a refusal by the code."""

from __future__ import annotations

from edgeml.error_reporting import EXIT_BAD_INPUT, EXIT_INTERNAL_ERROR
from tests.support.cli import edgeml, invoke


def _crash(*args, **kwargs):
    raise TypeError("'NoneType' object is not subscriptable")  # stands for any bug inside edgeml


def test_a_bug_exits_70_with_one_line_and_a_request_for_a_report(monkeypatch):
    monkeypatch.setattr("edgeml.device.profiles.load_profiles", _crash)
    result = invoke("devices")
    assert (EXIT_INTERNAL_ERROR, result.exit_code) == (70, 70)
    assert "internal error: TypeError: 'NoneType' object is not subscriptable" in result.stderr
    assert "this is a bug in edgeml, please report it" in result.stderr and "--debug" in result.stderr
    assert "Traceback" not in result.stderr

    debug = invoke("--debug", "devices")
    assert debug.exit_code == 70 and "Traceback" in debug.stderr and "_crash" in debug.stderr


def test_bad_input_is_2_and_not_called_a_bug(tmp_path):
    done = edgeml("inspect", tmp_path / "missing.tflite")
    assert done.returncode == EXIT_BAD_INPUT == 2
    assert "internal error" not in done.stderr and "report" not in done.stderr
