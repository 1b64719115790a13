"""Small dead ends a new user hits: `edgeml devices list`, and `explore` saying what it skipped."""

from __future__ import annotations

import json

from tests.support.cli import edgeml


def test_devices_list_is_devices():
    assert edgeml("devices", "list", check_exit=0).stdout == edgeml("devices", check_exit=0).stdout
    listed = json.loads(edgeml("devices", "list", "--json", check_exit=0).stdout)
    assert listed == json.loads(edgeml("devices", "--json", check_exit=0).stdout)
    assert {"rpi5", "rpi4"} <= {profile["name"] for profile in listed}
    assert "list" in edgeml("devices", "--help", check_exit=0).stdout


def test_explore_without_target_says_it_skipped_the_class_balance(tmp_path):
    table = tmp_path / "readings.csv"
    table.write_text("temperature,humidity\n21.5,40.25\n22.0,41.5\n23.1,39.75\n21.9,45.125\n")
    done = edgeml("explore", table, "-o", tmp_path / "out", "--no-plots", check_exit=0)
    assert "class balance skipped: no --target given" in done.stdout and "--target COLUMN" in done.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert "class_balance" not in summary and summary["notes"][0].startswith("class balance skipped")
    numeric = edgeml("explore", table, "--target", "humidity", "-o", tmp_path / "out2", "--no-plots", check_exit=0)
    assert "class balance skipped: target 'humidity' looks numeric" in numeric.stdout
