"""The controller side of `edgeml deploy`: per host, upload the bundle and the agent, let the agent
verify, install and smoke-test, answer its "ready" with "commit", and collect the result. Hosts run in
parallel; one failing host never stops the others.

Progress is reported as ProgressEvents whose stage is the deploy step ("upload", "install", "smoke",
...) and whose message starts with "HOST: STAGE: ", so lines of parallel hosts can be told apart. The
callback is called from one thread at a time."""

from __future__ import annotations

import json
import shlex
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

from edgeml_runtime.progress import ProgressCallback, report

from edgeml.console import format_size
from edgeml.device import agent
from edgeml.device.ssh import Ssh, SshError, SshOptions, SshTarget, last_line, remote_path

__all__ = ["HostResult", "deploy_bundle", "deploy_to_hosts", "device_command", "run_on_hosts"]

ACTIONS = ("rollback", "status")
AGENT_SOURCE = Path(agent.__file__).read_text(encoding="utf-8")


@dataclass
class HostResult:
    host: str
    ok: bool
    action: Optional[str] = None
    version: Optional[str] = None
    previous: Optional[str] = None
    stage: Optional[str] = None
    error: Optional[str] = None
    details: dict = field(default_factory=dict)
    bench: List[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def deploy_to_hosts(hosts: List[str], options: SshOptions, *, bundle: Optional[Path] = None,
                    action: Optional[str] = None, bench: bool = False, bench_args: Optional[List[str]] = None,
                    remote_dir: str = "~/edgeml", python: str = "python3",
                    progress: ProgressCallback = None) -> List[HostResult]:
    """The `--host` fan-out: on every host in parallel, deploy `bundle` or run `action` (rollback, status),
    then, with `bench`, benchmark the active model (`bench_args`: the agent's --runs/--threads).

    A bad bundle fails here, before any host is contacted; a failing host is a HostResult with ok False.
    """
    from edgeml.device.bundle import read_bundle_manifest, sha256_file

    if action is not None and action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, not {action!r}")
    if bundle is not None:
        manifest, _ = read_bundle_manifest(bundle)
        version, digest = manifest["version"], sha256_file(bundle)
    progress = _serialized(progress)

    def work(ssh: Ssh) -> HostResult:
        if bundle is not None:
            result = deploy_bundle(ssh, bundle, digest, version, remote_dir, python, progress)
        elif action is not None:
            result = device_command(ssh, action, remote_dir, python, progress)
        else:
            result = HostResult(ssh.target.spec, True, action="bench")
        if bench and result.ok:
            measured = device_command(ssh, "bench", remote_dir, python, progress, bench_args)
            result.bench = measured.bench
            result.version = result.version or measured.version
            if not measured.ok:
                result.ok, result.stage, result.error = False, measured.stage, measured.error
        return result

    return run_on_hosts(hosts, work, options)


def run_on_hosts(hosts: List[str], work: Callable[[Ssh], HostResult], options: SshOptions) -> List[HostResult]:
    """Run `work` for every host in parallel; results in the order the hosts were given."""
    targets = [SshTarget.parse(host) for host in hosts]

    def guarded(target: SshTarget) -> HostResult:
        try:
            return work(Ssh(target, options))
        except SshError as error:
            stage, _, message = str(error).partition(": ")
            return HostResult(target.spec, False, stage=stage, error=message)

    with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
        return list(pool.map(guarded, targets))


def deploy_bundle(ssh: Ssh, bundle: Path, sha256: str, version: str, remote_dir: str, python: str,
                  progress: ProgressCallback = None) -> HostResult:
    host = ssh.target.spec
    staging = f"{remote_dir.rstrip('/')}/staging/{version}-{uuid.uuid4().hex[:8]}"
    _step(progress, host, "connect", "creating the staging directory")
    quoted = remote_path(staging)
    done = ssh.run(f"mkdir -p {quoted} && cat > {quoted}/agent.py && cd {quoted} && pwd", input=AGENT_SOURCE)
    if done.returncode != 0:
        return HostResult(host, False, stage="upload", error=last_line(done.stderr) or "cannot create staging")
    absolute = done.stdout.strip().splitlines()[-1]
    _step(progress, host, "upload", f"copying {bundle.name} ({format_size(bundle.stat().st_size)})")
    try:
        ssh.upload(str(bundle), f"{absolute}/bundle.tar.gz")
    except SshError:
        ssh.run(f"rm -rf {shlex.quote(absolute)}")
        raise
    command = (f"{python} {shlex.quote(absolute)}/agent.py deploy --dir {remote_path(remote_dir)} "
               f"--bundle {shlex.quote(absolute)}/bundle.tar.gz --sha256 {sha256}")
    return _converse(ssh, command, progress)


def device_command(ssh: Ssh, action: str, remote_dir: str, python: str, progress: ProgressCallback = None,
                   extra: Optional[List[str]] = None) -> HostResult:
    """status / rollback / bench: the agent is piped to `python3 -` (nothing is left on the device)."""
    arguments = " ".join(shlex.quote(a) for a in (extra or []))
    command = f"{python} - {action} --dir {remote_path(remote_dir)} {arguments}".strip()
    _step(progress, ssh.target.spec, action, "running on the device")
    done = ssh.run(command, input=AGENT_SOURCE, stage=action)
    return _result_from_events(ssh.target.spec, done.stdout.splitlines(), done.stderr, progress)


def _converse(ssh: Ssh, command: str, progress: ProgressCallback) -> HostResult:
    """Run the agent's deploy, relay its progress and answer "ready" with "commit"."""
    process = ssh.popen(command)
    lines = []
    for line in process.stdout:
        lines.append(line)
        event = _parse(line)
        if event.get("event") == "stage":
            _step(progress, ssh.target.spec, event.get("stage", ""), event.get("message", ""))
        elif event.get("event") == "ready":
            _step(progress, ssh.target.spec, "commit", "verified and smoke-tested; activating")
            process.stdin.write("commit\n")
            process.stdin.flush()
    process.stdin.close()
    stderr = process.stderr.read()
    process.wait()
    if process.returncode == 255 and not any(_parse(line).get("event") in ("result", "error") for line in lines):
        raise SshError(f"device: {last_line(stderr) or 'ssh failed'}")
    return _result_from_events(ssh.target.spec, lines, stderr, progress, relay=False)


def _result_from_events(host: str, lines: List[str], stderr: str, progress: ProgressCallback, relay: bool = True):
    for line in lines:
        event = _parse(line)
        kind = event.pop("event", None)
        if kind == "stage" and relay:
            _step(progress, host, event.get("stage", ""), event.get("message", ""))
        elif kind == "result":
            action, version = event.pop("action", None), event.pop("version", None)
            previous = event.pop("previous", None)
            bench = event.pop("results", []) if action == "bench" else []
            return HostResult(host, True, action, version, previous, details=event, bench=bench)
        elif kind == "error":
            return HostResult(host, False, stage=event.get("stage"), error=event.get("message"))
    reason = last_line(stderr) or "the device script printed no result"
    return HostResult(host, False, stage="device", error=reason)


def _parse(line: str) -> dict:
    line = line.strip()
    if not line.startswith("{"):
        return {}
    try:
        return json.loads(line)
    except ValueError:
        return {}


def _step(progress: ProgressCallback, host: str, stage: str, message: str) -> None:
    report(progress, stage, f"{host}: {stage}: {message}")


def _serialized(progress: ProgressCallback) -> ProgressCallback:
    """`progress`, called by one host's thread at a time."""
    if progress is None:
        return None
    lock = threading.Lock()

    def locked(event) -> None:
        with lock:
            progress(event)

    return locked
