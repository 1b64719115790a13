"""The controller side of `edgeml deploy`: per host, upload the bundle and the agent, let the agent
verify, install and smoke-test, answer its "ready" with "commit", and collect the result. Hosts run in
parallel; one failing host never stops the others.

Progress is reported as ProgressEvents whose stage is the deploy step ("upload", "install", "smoke",
...) and whose message starts with "HOST: STAGE: ", so lines of parallel hosts can be told apart. The
callback is called from one thread at a time.

The bundle is streamed to the agent over the ssh session that runs it (`agent.py deploy --receive BYTES`),
so the agent holds its staging folder from the first byte: a deploy killed mid-upload leaves a folder the
next deploy knows to be abandoned, and removes."""

from __future__ import annotations

import json
import shlex
import shutil
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence

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
                    progress: ProgressCallback = None, trust: Sequence[str] = (),
                    untrust: Sequence[str] = ()) -> List[HostResult]:
    """The `--host` fan-out: on every host in parallel, deploy `bundle` or run `action` (rollback, status),
    then, with `bench`, benchmark the active model (`bench_args`: the agent's --runs/--threads).

    `trust`: public keys ('TYPE BASE64', see signing.read_public_key) to pin on the devices with this
    deploy, `untrust`: fingerprints of pinned keys to drop; the devices accept the change only when the
    bundle verifies against the keys pinned before and after it (see the agent).

    A bad bundle fails here, before any host is contacted; a failing host is a HostResult with ok False.
    """
    from edgeml.device.bundle import BundleError, read_bundle_manifest, read_bundle_signature, sha256_file

    if action is not None and action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, not {action!r}")
    if (trust or untrust) and bundle is None:
        raise BundleError("--trust/--untrust change the pinned keys together with a deploy: give a signed BUNDLE")
    if bundle is not None:
        manifest, _ = read_bundle_manifest(bundle)  # also re-checks every name the device turns into a path
        version, digest = manifest["version"], sha256_file(bundle)
        if (trust or untrust) and read_bundle_signature(bundle) is None:
            raise BundleError(f"{bundle} is not signed: --trust/--untrust need a bundle signed by a key the devices "
                              "will trust (edgeml bundle ... --sign KEY)")
    progress = _serialized(progress)

    def work(ssh: Ssh) -> HostResult:
        if bundle is not None:
            result = deploy_bundle(ssh, bundle, digest, version, remote_dir, python, progress, trust=trust,
                                   untrust=untrust)
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


# Run by the device's python in the one ssh session of a deploy: make this deploy's staging folder, write the
# agent (the first SIZE bytes of stdin, read exactly) into it and become the agent, which then reads the bundle
# from the same stdin. No other session, so no window in which the folder exists without an agent holding it.
BOOTSTRAP = """\
import os, sys
folder, size = os.path.abspath(sys.argv[1]), int(sys.argv[2])
os.makedirs(folder)
data = b""
while len(data) < size:
    block = os.read(0, size - len(data))
    if not block:
        sys.exit("edgeml: the controller disconnected before the agent arrived")
    data += block
with open(os.path.join(folder, "agent.py"), "wb") as out:
    out.write(data)
agent = os.path.join(folder, "agent.py")
os.execv(sys.executable, [sys.executable, agent, *sys.argv[3:], "--bundle", os.path.join(folder, "bundle.tar.gz")])
"""


def deploy_bundle(ssh: Ssh, bundle: Path, sha256: str, version: str, remote_dir: str, python: str,
                  progress: ProgressCallback = None, *, trust: Sequence[str] = (),
                  untrust: Sequence[str] = ()) -> HostResult:
    """Deploy one bundle to one host, in one ssh session: BOOTSTRAP, the agent, the bundle and "commit" all
    go through its stdin. `python` is the device's interpreter, a path or a name (one word, quoted for the
    remote shell); `version` must be a checked bundle version (read_bundle_manifest)."""
    host = ssh.target.spec
    staging = f"{remote_dir.rstrip('/')}/staging/{version}-{uuid.uuid4().hex[:8]}"
    agent_source = AGENT_SOURCE.encode("utf-8")
    size = bundle.stat().st_size
    _step(progress, host, "upload", f"copying {bundle.name} ({format_size(size)})")
    keys = [*(f"--trust-key {shlex.quote(key)}" for key in trust),
            *(f"--untrust-key {shlex.quote(fingerprint)}" for fingerprint in untrust)]
    command = " ".join([remote_path(python), "-c", shlex.quote(BOOTSTRAP), remote_path(staging),
                        str(len(agent_source)), "deploy", "--dir", remote_path(remote_dir),
                        "--sha256", shlex.quote(sha256), "--receive", str(size), *keys])
    return _converse(ssh, command, progress, upload=(agent_source, bundle))


def device_command(ssh: Ssh, action: str, remote_dir: str, python: str, progress: ProgressCallback = None,
                   extra: Optional[List[str]] = None) -> HostResult:
    """status / rollback / bench: the agent is piped to `python3 -` (nothing is left on the device)."""
    arguments = " ".join(shlex.quote(a) for a in (extra or []))
    command = f"{remote_path(python)} - {action} --dir {remote_path(remote_dir)} {arguments}".strip()
    _step(progress, ssh.target.spec, action, "running on the device")
    done = ssh.run(command, input=AGENT_SOURCE, stage=action)
    return _result_from_events(ssh.target.spec, done.stdout.splitlines(), done.stderr, progress)


def _converse(ssh: Ssh, command: str, progress: ProgressCallback, upload=None) -> HostResult:
    """Run the agent's deploy, stream `upload` (bytes, then a file's contents) to its stdin from a thread
    while its events are read, relay its progress and answer "ready" with "commit"."""
    process = ssh.popen(command)
    sender = None
    if upload is not None:
        head, path = upload

        def send() -> None:
            try:
                process.stdin.buffer.write(head)
                with open(path, "rb") as source:
                    shutil.copyfileobj(source, process.stdin.buffer, 1 << 20)
                process.stdin.buffer.flush()
            except OSError:  # the agent stopped reading (it refused or failed): its error event says why
                pass

        sender = threading.Thread(target=send, name=f"upload-{ssh.target.spec}", daemon=True)
        sender.start()
    lines = []
    for line in process.stdout:
        lines.append(line)
        event = _parse(line)
        if event.get("event") == "stage":
            _step(progress, ssh.target.spec, event.get("stage", ""), event.get("message", ""))
        elif event.get("event") == "ready":
            _step(progress, ssh.target.spec, "commit", "verified and smoke-tested; activating")
            if sender is not None:
                sender.join()
            try:
                process.stdin.write("commit\n")
                process.stdin.flush()
            except OSError:
                pass
    if sender is not None:
        sender.join(timeout=30)
    try:
        process.stdin.close()
    except OSError:
        pass
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
