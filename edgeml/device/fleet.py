"""The fleet side of `edgeml deploy`: the on-device agent of the `--host` path, run by Ansible over an
inventory, in batches, with a failure threshold.

    results = run_fleet("hosts.ini", action="deploy", bundle=Path("app.tar.gz"), serial=["1", "25%"],
                        max_fail=0, progress=display)
    export_playbook(Path("ansible/edgeml"))    # site.yml + roles/edgeml (tasks, defaults, files/agent.py)

Both run the same playbook: `run_fleet` exports it to a temporary directory and starts
`ansible-playbook -i INVENTORY site.yml -e ...` with the `edgeml_events` stdout callback (shipped with the
playbook), which prints one JSON object per task result; those become one `FleetHostResult` per host.
Ansible (ansible-core) is an optional dependency: `pip install 'edgeml[fleet]'`.

Progress is reported as ProgressEvents whose stage is the deploy step and whose message starts with
"HOST: STEP: ", as in the `--host` path.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

from edgeml_runtime.errors import EdgeMLError
from edgeml_runtime.progress import ProgressCallback, report

from edgeml.device import agent
from edgeml.device.deploy import HostResult
from edgeml.device.ssh import SshOptions, last_line

__all__ = ["ACTIONS", "FleetError", "FleetHostResult", "ansible_playbook_command", "export_playbook",
           "parse_max_fail", "parse_serial", "run_fleet"]

ACTIONS = ("deploy", "status", "rollback", "bench")
TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "ansible"
ROLE_FILES = Path("roles") / "edgeml" / "files"
EXPORT_MARKER = ".edgeml-ansible.json"
CALLBACK = "edgeml_events"
INSTALL_HINT = "pip install 'edgeml[fleet]'"
# The task whose agent output is the host's result, per action (the rest move files or read the status).
RESULT_STEP = {"deploy": "deploy", "rollback": "rollback", "status": "connect", "bench": "bench"}
# ansible-playbook's exit codes when it ran and some hosts failed (2) or were unreachable (3), or the
# run was stopped (4 is also a parser error, told apart by the absence of any host result).
PLAYBOOK_RAN = (0, 2, 3, 4)
_PERCENT = re.compile(r"^(\d{1,3})%$")


class FleetError(EdgeMLError):
    """Ansible is missing, the inventory or the options are wrong, or ansible-playbook could not run."""


@dataclass
class FleetHostResult(HostResult):
    """A HostResult with what the host ran before (`before`) and how its part of the rollout ended
    (`outcome`: activated, unchanged, rolled back, status, bench, failed, unreachable, stopped (its batch
    was stopped by the failure threshold before its turn) or not started (a later batch))."""

    before: Optional[str] = None
    outcome: str = ""


# ------------------------------------------------------------------------------------ options


def parse_serial(text: Optional[str]) -> Optional[List[str]]:
    """--serial: 'N', 'N%' or a comma-separated list of them (Ansible's `serial`, e.g. 1,25%,100%)."""
    if text is None:
        return None
    items = [item.strip() for item in str(text).split(",")]
    for item in items:
        percent = _PERCENT.match(item)
        if percent and 0 < int(percent.group(1)) <= 100:
            continue
        if item.isdigit() and int(item) > 0:
            continue
        raise FleetError(f"--serial {text}: give a number of hosts (1), a percentage (25%) or a list (1,25%,100%)")
    return items


def parse_max_fail(text: Optional[str]) -> Optional[int]:
    """--max-fail: a percentage 0..100 ('10' or '10%'); the rollout stops when a batch has more failures."""
    if text is None:
        return None
    value = str(text).strip().rstrip("%")
    if not value.isdigit() or int(value) > 100:
        raise FleetError(f"--max-fail {text}: give a percentage from 0 (stop at the first failure) to 100")
    return int(value)


# ------------------------------------------------------------------------------------ Ansible


def ansible_playbook_command() -> List[str]:
    """argv that starts ansible-playbook: the ansible-core installed with edgeml (`python -m ansible`), else
    an `ansible-playbook` on PATH (e.g. a pipx or distribution install), else FleetError with the pip command."""
    try:
        import ansible  # noqa: F401 - only whether it is there
    except ImportError:
        found = shutil.which("ansible-playbook")
        if found is None:
            raise FleetError(f"--inventory runs ansible-playbook, and Ansible is not installed: {INSTALL_HINT} "
                             "(or put ansible-playbook on PATH)") from None
        return [found]
    return [sys.executable, "-m", "ansible", "playbook"]


def export_playbook(directory: Path) -> Path:
    """Write the playbook to `directory` (created, or replaced if it holds an earlier export): site.yml,
    roles/edgeml (tasks, defaults, files/agent.py), callback_plugins/edgeml_events.py, README.md.

    Written under a temporary name next to it and renamed into place; a directory with other files in
    it is refused rather than overwritten."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise FleetError(f"--export-ansible {directory}: not a directory")
    if directory.is_dir() and any(directory.iterdir()) and not (directory / EXPORT_MARKER).is_file():
        raise FleetError(f"--export-ansible {directory}: the directory has other files in it; give a new or "
                         "empty directory (an earlier export is replaced)")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        _write_playbook(staging)
        os.chmod(staging, 0o755)
        if directory.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old-", dir=directory.parent))
            os.replace(directory, old / "export")
            os.replace(staging, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def _write_playbook(target: Path) -> None:
    from edgeml import __version__

    shutil.copytree(TEMPLATES, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    files = target / ROLE_FILES
    files.mkdir(parents=True, exist_ok=True)
    source = Path(agent.__file__).read_bytes()
    (files / "agent.py").write_bytes(source)
    marker = {"written_by": f"edgeml {__version__}", "agent_sha256": _sha256(source),
              "run": "ansible-playbook -i INVENTORY site.yml -e bundle=PATH"}
    (target / EXPORT_MARKER).write_text(json.dumps(marker, indent=2) + "\n")


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def run_fleet(inventory: Path, *, action: str = "deploy", bundle: Optional[Path] = None,
              limit: Optional[str] = None, serial: Optional[Sequence[str]] = None, max_fail: Optional[int] = None,
              bench: bool = False, bench_runs: Optional[int] = None, bench_threads: Optional[int] = None,
              ssh: Optional[SshOptions] = None, remote_dir: Optional[str] = None, python: Optional[str] = None,
              trust: Sequence[str] = (), untrust: Sequence[str] = (),
              progress: ProgressCallback = None) -> List[FleetHostResult]:
    """Run `action` on the inventory's hosts (matching `limit`) through ansible-playbook and return one
    result per host, in the order Ansible took them.

    `serial`/`max_fail`: Ansible's batches and max_fail_percentage; a host that cannot be reached counts
    as failed. `remote_dir`/`python`, when given, override every host's edgeml_dir/edgeml_python.
    `trust`/`untrust`: keys to pin ('TYPE BASE64') and fingerprints to unpin with this deploy, as in
    `deploy_to_hosts` (the agent decides; the bundle must be signed).
    A bad bundle, a missing Ansible or an inventory Ansible cannot read raise FleetError before any host
    is contacted; failing hosts are results with ok False.
    """
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, not {action!r}")
    if action == "deploy":
        if bundle is None:
            raise ValueError("deploy needs a bundle")
        from edgeml.device.bundle import read_bundle_manifest

        read_bundle_manifest(bundle)  # a bad bundle is refused here, before any host is contacted
    if trust or untrust:
        from edgeml.device.bundle import read_bundle_signature

        if bundle is None or action != "deploy":
            raise FleetError("--trust/--untrust change the pinned keys together with a deploy: give a signed BUNDLE")
        if read_bundle_signature(bundle) is None:
            raise FleetError(f"{bundle} is not signed: --trust/--untrust need a bundle signed by a key the devices "
                             "will trust (edgeml bundle ... --sign KEY)")
    command = ansible_playbook_command()
    extra = {"edgeml_action": action}
    if bundle is not None:
        extra["bundle"] = str(Path(bundle).resolve())
    if serial:
        extra["edgeml_serial"] = [int(item) if item.isdigit() else item for item in serial]
    if max_fail is not None:
        extra["edgeml_max_fail"] = max_fail
    if bench:
        extra["edgeml_bench"] = True
    if bench_runs:
        extra["edgeml_bench_runs"] = bench_runs
    if bench_threads:
        extra["edgeml_bench_threads"] = bench_threads
    if trust:
        extra["edgeml_trust_keys"] = list(trust)
    if untrust:
        extra["edgeml_untrust_keys"] = list(untrust)
    if remote_dir is not None:
        extra["edgeml_dir"] = remote_dir
    if python is not None:
        extra["edgeml_python"] = python
    with tempfile.TemporaryDirectory(prefix="edgeml-ansible-") as work:
        playbook = Path(work) / "playbook"
        _write_playbook(playbook)
        argv = [*command, "-i", str(Path(inventory).resolve()), str(playbook / "site.yml"), "-e", json.dumps(extra),
                *_ssh_arguments(ssh), *(["--limit", limit] if limit else [])]
        events, stderr, returncode = _run_playbook(argv, playbook, progress)
    return _results(events, stderr, returncode, action, progress)


def _ssh_arguments(ssh: Optional[SshOptions]) -> List[str]:
    """-i / -F / -o of the --host path as ansible-playbook options (the inventory's own
    ansible_ssh_common_args and ansible_ssh_private_key_file take precedence, as Ansible does)."""
    if ssh is None:
        return []
    args = ["--private-key", str(ssh.identity)] if ssh.identity else []
    common = (["-F", str(ssh.config)] if ssh.config else []) + [part for option in ssh.options
                                                                for part in ("-o", option)]
    if common:
        args += ["--ssh-common-args", shlex.join(common)]
    return args


def _environment(playbook: Path) -> Dict[str, str]:
    env = dict(os.environ)
    plugins = [str(playbook / "callback_plugins"), *filter(None, [env.get("ANSIBLE_CALLBACK_PLUGINS")])]
    env.update(ANSIBLE_STDOUT_CALLBACK=CALLBACK, ANSIBLE_CALLBACK_PLUGINS=os.pathsep.join(plugins),
               ANSIBLE_INVENTORY_UNPARSED_FAILED="True", ANSIBLE_RETRY_FILES_ENABLED="False",
               ANSIBLE_NOCOLOR="True", PYTHONUNBUFFERED="1")
    env.pop("ANSIBLE_CALLBACK_WHITELIST", None)
    return env


def _run_playbook(argv: List[str], playbook: Path, progress: ProgressCallback):
    """Run ansible-playbook; relay its events as progress while it runs. (events, stderr lines, exit code)."""
    process = subprocess.Popen(_dying_with_this_process(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, bufsize=1, env=_environment(playbook), cwd=os.getcwd())
    stderr: List[str] = []
    reader = threading.Thread(target=_read_stderr, args=(process.stderr, stderr, progress), daemon=True)
    reader.start()
    events: List[dict] = []
    current: Dict[str, str] = {}  # host -> the step it is in
    terminated = _SigtermForwarder(process)
    try:
        for line in process.stdout:
            event = _parse(line)
            if not event:
                continue
            events.append(event)
            _relay(event, current, progress)
        process.wait()
    except BaseException:  # Ctrl-C: ansible-playbook got the SIGINT too; let it end its ssh sessions
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        raise
    finally:
        terminated.restore()
    reader.join(timeout=10)
    if terminated.signalled:
        raise KeyboardInterrupt
    return events, stderr, process.returncode


# Started in front of ansible-playbook on Linux: asks the kernel for a SIGINT when edgeml dies (prctl's
# PR_SET_PDEATHSIG, kept across exec), gives up if edgeml is already gone, then becomes ansible-playbook.
_DEATH_SIGNAL_LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGINT)\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(130)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def _dying_with_this_process(argv: List[str]) -> List[str]:
    """argv that runs `argv` so that it is interrupted, as by Ctrl-C, when this process dies however it dies:
    even SIGKILL, which no handler here sees. Otherwise ansible-playbook would roll the bundle out unwatched
    after `edgeml deploy` was killed; interrupted, it ends its ssh sessions and devices that have not switched
    `current` yet back out (the --host path's behaviour). Linux only; elsewhere `argv` as it is."""
    if not sys.platform.startswith("linux"):
        return argv
    return [sys.executable, "-c", _DEATH_SIGNAL_LAUNCHER, str(os.getpid()), *argv]


class _SigtermForwarder:
    """While ansible-playbook runs, a SIGTERM to edgeml interrupts it as Ctrl-C would (it then ends its ssh
    sessions, and devices that have not switched `current` yet back out) instead of leaving it running."""

    def __init__(self, process: subprocess.Popen):
        self.process, self.signalled, self.previous = process, False, None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._forward)

    def _forward(self, _signum, _frame) -> None:
        self.signalled = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)

    def restore(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
            self.previous = None


def _read_stderr(stream, lines: List[str], progress: ProgressCallback) -> None:
    for line in stream:
        line = line.rstrip()
        if not line:
            continue
        lines.append(line)
        if line.startswith("[WARNING]"):
            report(progress, "ansible", line.replace("[WARNING]:", "ansible:", 1).strip(), level="warning")


def _relay(event: dict, current: Dict[str, str], progress: ProgressCallback) -> None:
    kind, host, step = event.get("event"), event.get("host"), event.get("step")
    if not host or not step or step in ("hosts", "check"):
        return
    if kind == "start" and current.get(host) != step:
        current[host] = step
        report(progress, step, f"{host}: {step}: {_task_label(event.get('task'))}")
    elif kind == "ok" and step in ("deploy", "rollback"):  # what the agent did, as the --host path shows it
        for line in _agent_events(event):
            if line.get("event") == "stage":
                report(progress, str(line.get("stage")), f"{host}: {line.get('stage')}: {line.get('message')}")
    elif kind in ("failed", "unreachable"):
        failure = _failure(event)
        report(progress, failure[0], f"{host}: {failure[0]}: failed: {failure[1]}")


def _task_label(task: Optional[str]) -> str:
    return (task or "").split(" : ", 1)[-1]


def _parse(line: str) -> dict:
    line = line.strip()
    if not line.startswith("{"):
        return {}
    try:
        parsed = json.loads(line)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _agent_events(event: dict) -> List[dict]:
    """The agent's JSON lines in a command task's stdout."""
    return [parsed for parsed in map(_parse, str(event.get("stdout") or "").splitlines()) if parsed]


def _failure(event: dict):
    """(step, message) of a failed or unreachable task: the agent's own error when it printed one, else
    the most specific of Ansible's messages."""
    for line in _agent_events(event):
        if line.get("event") == "error":
            return line.get("stage") or event.get("step"), line.get("message") or "failed"
    generic = ("non-zero return code", "MODULE FAILURE")
    texts = [event.get(field) for field in ("msg", "stderr", "module_stderr", "module_stdout")]
    texts = [last_line(text) for text in texts if isinstance(text, str) and last_line(text)]
    specific = [text for text in texts if not text.startswith(generic)]
    return event.get("step") or "ansible", (specific or texts or [str(event.get("event"))])[0]


# ------------------------------------------------------------------------------------- results


def _results(events: List[dict], stderr: List[str], returncode: int, action: str,
             progress: ProgressCallback) -> List[FleetHostResult]:
    if any(event.get("event") == "no_hosts" for event in events):
        raise FleetError("no host of the inventory matches (check --limit and the inventory's groups)")
    hosts = _hosts(events)
    if not hosts or returncode not in PLAYBOOK_RAN:
        detail = " | ".join(line for line in stderr if line.strip() and not line.startswith("[WARNING]"))[-1500:]
        raise FleetError(f"ansible-playbook failed (exit {returncode}): {detail or 'no output'}")
    stopped = any(event.get("event") == "stopped" for event in events)
    by_host: Dict[str, List[dict]] = {host: [] for host in hosts}
    for event in events:
        if event.get("host") in by_host and event.get("event") != "start":
            by_host[event["host"]].append(event)
    results = [_host_result(host, by_host[host], action, stopped) for host in hosts]
    for result in results:
        if action == "deploy" and result.ok:
            report(progress, "done", f"{result.host}: {result.outcome}: {result.before or '-'} -> {result.version}")
    return results


def _hosts(events: Iterable[dict]) -> List[str]:
    """Every host of the play, in Ansible's order (the run_once `hosts` task lists them all)."""
    for event in events:
        if event.get("step") == "hosts" and isinstance(event.get("msg"), list):
            return [str(host) for host in event["msg"]]
    seen: Dict[str, None] = {}
    for event in events:
        if event.get("host") and event.get("step") not in (None, "hosts", "check"):
            seen.setdefault(event["host"], None)
    return list(seen)


def _host_result(host: str, events: List[dict], action: str, stopped: bool) -> FleetHostResult:
    status = _agent_result(events, "connect")
    before = status.get("version") if status else None
    done = _agent_result(events, RESULT_STEP[action])
    failed = next((e for e in events if e.get("event") in ("failed", "unreachable") and e.get("step")), None)
    if failed is not None:
        stage, message = _failure(failed)
        unreachable = any(event.get("event") == "unreachable" for event in events)
        active = done.get("version") if done and action == "deploy" else before
        return FleetHostResult(host, False, stage=stage, error=message, before=before, version=active,
                               outcome="unreachable" if unreachable else "failed")
    if done is None:
        if not events:
            return FleetHostResult(host, False, stage="not started", before=before, version=before,
                                   error="the rollout stopped before this host's batch", outcome="not started")
        reason = "the failure threshold stopped the rollout" if stopped else "the play ended"
        return FleetHostResult(host, False, stage="stopped", before=before, version=before, outcome="stopped",
                               error=f"{reason} before this host's turn")
    kind = done.pop("action", action)
    version, previous = done.pop("version", None), done.pop("previous", None)
    result = FleetHostResult(host, True, kind, version, previous, before=before, outcome=kind)
    if action == "bench":
        result.bench = done.pop("results", [])
    else:
        result.details = done
    if action == "deploy":
        measured = _agent_result(events, "bench")
        result.bench = measured.get("results", []) if measured else []
    return result


def _agent_result(events: List[dict], step: str) -> Optional[dict]:
    for event in events:
        if event.get("step") == step and event.get("event") == "ok":
            for line in _agent_events(event):
                if line.get("event") == "result":
                    line = dict(line)
                    line.pop("event", None)
                    return line
    return None
