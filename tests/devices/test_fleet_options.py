"""The fleet path's pieces that need no device: --serial/--max-fail parsing, the results read from the
playbook's JSON-lines callback, and the exported playbook's files (no Ansible needed for these)."""

from __future__ import annotations

import json

import pytest

from edgeml.device import fleet


def test_serial_and_max_fail_take_what_ansible_takes():
    assert fleet.parse_serial("1") == ["1"]
    assert fleet.parse_serial("1, 25%,100%") == ["1", "25%", "100%"]
    assert fleet.parse_max_fail("0") == 0 and fleet.parse_max_fail("10%") == 10
    assert fleet.parse_serial(None) is None and fleet.parse_max_fail(None) is None
    for bad in ("0", "-1", "0%", "101%", "a", "1,,2"):
        with pytest.raises(fleet.FleetError, match="--serial"):
            fleet.parse_serial(bad)
    for bad in ("101", "-5", "x", "1.5"):
        with pytest.raises(fleet.FleetError, match="--max-fail"):
            fleet.parse_max_fail(bad)


def agent_lines(*events) -> str:
    return "\n".join(json.dumps(event) for event in events)


def status(host, version):
    return {"event": "ok", "host": host, "step": "connect", "rc": 0,
            "stdout": agent_lines({"event": "result", "action": "status", "version": version, "previous": None})}


def test_results_tell_failed_stopped_and_untouched_hosts_apart():
    events = [
        {"event": "ok", "host": "a", "step": "hosts", "msg": ["a", "b", "c", "d"]},
        status("a", "v1"), status("b", "v1"),
        {"event": "failed", "host": "a", "step": "deploy", "rc": 1, "msg": "non-zero return code",
         "stdout": agent_lines({"event": "stage", "stage": "verify", "message": "checking"},
                               {"event": "error", "stage": "verify", "message": "sha256 mismatch for m.onnx"})},
        {"event": "stopped"},
        {"event": "unreachable", "host": "d", "step": "connect", "msg": "ssh: connect to host: Connection refused"},
        {"event": "failed", "host": "d", "step": "connect", "msg": "ssh: connect to host: Connection refused"},
        {"event": "stats", "hosts": {}},
    ]
    results = {r.host: r for r in fleet._results(events, [], 2, "deploy", None)}
    assert list(results) == ["a", "b", "c", "d"]  # Ansible's order, every host of the play
    a, b, c, d = (results[h] for h in "abcd")
    assert (a.ok, a.outcome, a.stage, a.error, a.version) == (False, "failed", "verify", "sha256 mismatch for m.onnx",
                                                              "v1")
    assert (b.ok, b.outcome, b.stage, b.before) == (False, "stopped", "stopped", "v1")
    assert "failure threshold" in b.error
    assert (c.ok, c.outcome) == (False, "not started")
    assert (d.outcome, d.stage, d.error) == ("unreachable", "connect", "ssh: connect to host: Connection refused")


def test_a_module_failure_names_the_step_and_the_most_specific_message():
    event = {"event": "failed", "host": "a", "step": "upload", "msg": "MODULE FAILURE",
             "module_stderr": "Traceback ...\nOSError: [Errno 28] No space left on device\n"}
    assert fleet._failure(event) == ("upload", "OSError: [Errno 28] No space left on device")


def test_an_activated_host_reports_before_and_after():
    events = [status("a", "v1"),
              {"event": "ok", "host": "a", "step": "deploy", "rc": 0,
               "stdout": agent_lines({"event": "result", "action": "activated", "version": "v2", "previous": "v1"})}]
    (result,) = fleet._results(events, [], 0, "deploy", None)
    assert (result.ok, result.outcome, result.before, result.version, result.previous) == (
        True, "activated", "v1", "v2", "v1")
    assert result.to_dict()["outcome"] == "activated"


def test_ansible_playbook_that_did_not_run_is_a_fleet_error():
    with pytest.raises(fleet.FleetError, match="exit 5.*bad option"):
        fleet._results([], ["[ERROR]: bad option"], 5, "status", None)


def test_exported_playbook_has_everything_it_needs(tmp_path):
    target = fleet.export_playbook(tmp_path / "out")
    names = {str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()}
    assert {"site.yml", "README.md", ".edgeml-ansible.json", "callback_plugins/edgeml_events.py",
            "roles/edgeml/defaults/main.yml", "roles/edgeml/tasks/main.yml", "roles/edgeml/tasks/deploy.yml",
            "roles/edgeml/tasks/rollback.yml", "roles/edgeml/tasks/bench.yml", "roles/edgeml/files/agent.py"} <= names
    assert not [name for name in names if "__pycache__" in name]
    yaml = pytest.importorskip("yaml")
    for name in names:
        if name.endswith(".yml"):
            assert yaml.safe_load((target / name).read_text()) is not None, name
