"""`edgeml select --emulated rpi4`: the artifacts measured inside the emulated Pi (aarch64 Python under qemu), the
figures marked emulated; they replace the converting machine's recommendation but never a real device's."""

from __future__ import annotations

import json

import pytest

from tests.support.cli import edgeml
from tests.support.conversions import A_DEVICE, conversion_dir
from tests.support.models import MLP_FP32, MLP_INT8, MLP_ONNX

pytestmark = [pytest.mark.emulated, pytest.mark.slow]

QUICK = ["--threads", "1", "--budget-seconds", "0.2"]


def test_select_inside_the_emulated_pi_and_its_precedence(emulated_pi, tmp_path):
    out = conversion_dir(tmp_path / "converted")  # recommended by "this machine"
    result = json.loads(edgeml("select", out, "--emulated", "rpi4", *QUICK, "--json", check_exit=0,
                               timeout=1800).stdout)
    recommended = json.loads((out / "manifest.json").read_text())["recommended"]
    measured_on = recommended["measured_on"]
    assert result["written"] and measured_on["kind"] == "emulated rpi4" and measured_on["emulated"] is True
    assert measured_on["arch"] == "aarch64" and measured_on["emulator"] == emulated_pi.emulated
    rows = result["measurements"][0]["rows"]
    assert [row["path"] for row in rows] == [m.name for m in (MLP_FP32, MLP_INT8, MLP_ONNX)]
    assert all(row["p50_ms"] > 0 for row in rows)  # LiteRT and ONNX Runtime both run under the emulator

    # A recommendation measured on a real device stays: the emulated table is shown, with a note.
    device = conversion_dir(tmp_path / "measured-on-device", measured_on=A_DEVICE)
    before = (device / "manifest.json").read_bytes()
    done = edgeml("select", device, "--emulated", "rpi4", *QUICK, check_exit=0, timeout=1800)
    assert "EMULATED: not device latency" in done.stdout
    assert "note: kept the recommendation measured on the device pi@192.0.2.10" in done.stdout
    assert "never replaces a real device's" in done.stdout
    assert (device / "manifest.json").read_bytes() == before
