"""What a killed deploy leaves on the device, and how the next one cleans it up (the agent's own functions,
on this machine's file system; tests/security/test_deploy_kill.py does the same through real deploys):

- staging/: a folder whose agent is gone (its claim is no longer locked) is removed at once; a folder some
  other tool is still uploading into (no claim, recently written) is kept; an abandoned one (no claim,
  untouched for STALE_STAGING_S) is removed; links are removed, never followed.
- releases/<v>/: an install.sh still running for a killed agent is stopped before its release is removed.
- an upload that ends early removes its staging folder.
"""

from __future__ import annotations

import fcntl
import glob
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from edgeml.device import agent

AGENT = Path(agent.__file__)


def test_clean_staging_removes_what_dead_deploys_left_and_keeps_live_uploads(tmp_path):
    layout = agent.Layout(str(tmp_path / "edgeml"))
    layout.staging.mkdir(parents=True)
    old = time.time() - agent.STALE_STAGING_S - 60

    def folder(name, *, claim=False, age=None):
        path = layout.staging / name
        path.mkdir()
        (path / "bundle.tar.gz").write_bytes(b"x" * 1000)
        if claim:
            (path / agent.AGENT_CLAIM).write_text("")
        if age is not None:
            for item in path.iterdir():
                os.utime(item, (age, age))
            os.utime(path, (age, age))
        return path

    folder("dead-agent", claim=True)                # its agent was killed: nobody holds the claim
    live = folder("live-agent", claim=True)
    held = agent.open_lock_file(live / agent.AGENT_CLAIM)
    fcntl.flock(held, fcntl.LOCK_EX)                # another deploy's agent, alive
    folder("uploading-by-another-tool")             # no claim yet, written just now
    folder("abandoned-upload", age=old)             # no claim, untouched for too long
    mine = folder("this-deploy", claim=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    link = layout.staging / "link-to-outside"
    link.symlink_to(outside)
    os.utime(link, (old, old), follow_symlinks=False)
    try:
        agent.clean_staging(layout, keep=mine)
    finally:
        held.close()
    assert sorted(p.name for p in layout.staging.iterdir()) == ["live-agent", "this-deploy",
                                                                 "uploading-by-another-tool"]
    assert (outside / "keep.txt").read_text() == "keep"


def test_reap_stops_an_install_a_killed_agent_left_running(tmp_path):
    release = tmp_path / "edgeml" / "releases" / "v2"
    release.mkdir(parents=True)
    # An agent whose install step runs (a long sleep, in its own process group), then gets kill -9.
    script = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import agent; "
              "agent.run_in_release(['sleep', '300'], Path(sys.argv[2]))")
    doomed = subprocess.Popen([sys.executable, "-c", script, str(AGENT.parent), str(release)])
    marker = release / agent.BUSY_MARKER
    deadline = time.monotonic() + 30
    while not (marker.is_file() and marker.read_text().strip()):
        assert time.monotonic() < deadline, "the child never started"
        time.sleep(0.05)
    child = int(marker.read_text())
    doomed.kill()
    doomed.wait()
    assert _alive(child)  # orphaned: still running in the release
    started = time.monotonic()
    agent.reap(release)
    assert time.monotonic() - started < agent.REAP_TIMEOUT_S
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
    agent.reap(release)  # nothing left to stop: returns at once


def test_an_upload_that_ends_early_removes_its_staging_folder(tmp_path):
    root = tmp_path / "edgeml"
    staging = root / "staging" / "x"
    staging.mkdir(parents=True)
    done = subprocess.run([sys.executable, str(AGENT), "deploy", "--dir", str(root), "--bundle",
                           str(staging / "bundle.tar.gz"), "--sha256", "0" * 64, "--receive", "100000"],
                          input=b"only a few bytes", capture_output=True, timeout=60)
    assert done.returncode == 1
    assert b"disconnected during the upload" in done.stdout
    assert not staging.exists() and not list((root / "staging").iterdir())


def test_receive_only_writes_into_a_staging_folder(tmp_path):
    root = tmp_path / "edgeml"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, str(AGENT), "deploy", "--dir", str(root), "--bundle",
                           str(elsewhere / "bundle.tar.gz"), "--sha256", "0" * 64, "--receive", "10"],
                          input=b"0123456789", capture_output=True, timeout=60)
    assert done.returncode == 1 and b"--receive writes the bundle into" in done.stdout
    assert not list(elsewhere.iterdir()) and not list((root / "staging").iterdir())


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie has stopped: only its parent (init here) has not collected it yet


def _python39():
    found = os.environ.get("PYTHON39") or next(iter(sorted(glob.glob(os.path.expanduser(
        "~/.pyenv/versions/3.9*/bin/python3.9")))), None) or shutil.which("python3.9")
    return found


def test_the_agent_runs_on_python_3_9(tmp_path):
    """Devices may have Python 3.9 (Debian 11, Raspberry Pi OS bullseye): the agent's status, upload and
    refusal paths run there too."""
    python = _python39()
    if python is None:
        pytest.skip("no Python 3.9 on this machine (pyenv's, python3.9 on PATH, or PYTHON39=...)")
    root = tmp_path / "edgeml"
    status = subprocess.run([python, str(AGENT), "status", "--dir", str(root)], capture_output=True, text=True,
                            timeout=60)
    assert status.returncode == 0 and json.loads(status.stdout)["python"].startswith("3.9"), status.stderr
    manifest = json.dumps({"schema": agent.SCHEMA, "name": "app", "version": "..", "models": [],
                           "files": [{"path": "install.sh", "bytes": 0, "sha256": "0" * 64}]}).encode()
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb") as zipped, tarfile.open(fileobj=zipped, mode="w") as tar:
        info = tarfile.TarInfo("app-1/edgeml-bundle.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    data = raw.getvalue()
    staging = root / "staging" / "x"
    staging.mkdir(parents=True)
    done = subprocess.run([python, str(AGENT), "deploy", "--dir", str(root), "--bundle", str(staging / "b.tar.gz"),
                           "--sha256", hashlib.sha256(data).hexdigest(), "--receive", str(len(data))],
                          input=data, capture_output=True, timeout=60)
    event = json.loads(done.stdout.decode().splitlines()[-1])
    assert done.returncode == 1 and "refusing bundle version" in event["message"], done
    assert not list((root / "staging").iterdir())
