"""`python -m edgeml_runtime`: a bug is exit 70 (EX_SOFTWARE) with a request for a report, never exit 2, which
means the user's input was refused; scripts tell the two apart by the code."""

from __future__ import annotations

import pytest
from edgeml_runtime import cli

from tests.support.marks import needs_backend_for
from tests.support.models import DATA, MLP_FP32


def _crash(*args, **kwargs):
    raise ZeroDivisionError("division by zero")  # stands for any bug inside the runtime


def test_a_bug_exits_70_with_a_request_for_a_report(monkeypatch, capsys):
    monkeypatch.setattr("edgeml_runtime.model.load", _crash)
    assert cli.EXIT_INTERNAL_ERROR == 70
    assert cli.main(["info", str(MLP_FP32)]) == 70
    err = capsys.readouterr().err
    assert "internal error: ZeroDivisionError: division by zero" in err
    assert "this is a bug in edgeml_runtime, please report it" in err and "Traceback" not in err
    assert cli.main(["--debug", "info", str(MLP_FP32)]) == 70
    assert "Traceback" in capsys.readouterr().err


@needs_backend_for(MLP_FP32)
def test_bad_input_is_still_2_and_not_a_bug(capsys, tmp_path):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(MLP_FP32.read_bytes()[:100])
    assert cli.main(["info", str(broken)]) == 2
    assert cli.main(["info", str(DATA / "missing.tflite")]) == 2
    err = capsys.readouterr().err
    assert "internal error" not in err and "report" not in err


def test_usage_errors_are_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["info"])  # argparse: the model argument is missing
    assert exit_info.value.code == 2
