"""The `--host` fan-out reports progress as ProgressEvents (no printing), from one thread at a time."""

from __future__ import annotations

import shutil
import time

import pytest

from edgeml.device.deploy import deploy_to_hosts
from edgeml.device.ssh import SshOptions


@pytest.mark.skipif(shutil.which("ssh") is None, reason="the OpenSSH client (ssh) is not installed")
def test_fan_out_reports_events_per_host_one_at_a_time(capsys):
    hosts = ["nobody@127.0.0.1:1", "nobody@127.0.0.1:9"]  # nothing listens on these ports
    events, inside, overlaps = [], [], []

    def progress(event) -> None:
        if inside:
            overlaps.append(event)
        inside.append(True)
        time.sleep(0.05)  # two unserialised threads would overlap here
        events.append(event)
        inside.pop()

    results = deploy_to_hosts(hosts, SshOptions(connect_timeout=5), action="status", progress=progress)
    assert [(r.host, r.ok, r.stage) for r in results] == [(host, False, "status") for host in hosts]
    assert sorted(event.message for event in events) == [f"{host}: status: running on the device"
                                                            for host in hosts]
    assert all(event.stage == "status" and event.level == "info" for event in events)
    assert not overlaps
    assert capsys.readouterr() == ("", "")  # the library printed nothing


def test_unknown_action_is_refused():
    with pytest.raises(ValueError, match="action must be one of"):
        deploy_to_hosts(["localhost"], SshOptions(), action="reboot")
