"""`edgeml select --host`: measure a conversion's candidate artifacts on a device over SSH.

One ssh session per device (deploy's transport, edgeml.device.ssh): its stdin carries a small stdlib-only
script's input, a header line naming each file and its size, then the files' bytes. On the device the script
writes them into a fresh temporary folder, runs `python -m edgeml_runtime select FOLDER --json` there with
the device's Python, and removes the folder whatever happens. The device needs edgeml_runtime: the
`--remote-python` given, else the Python of the deployed release (DIR/current/venv/bin/python, which `edgeml
deploy` installs).
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from edgeml_runtime import formats
from edgeml_runtime.errors import EdgeMLError

from edgeml.device.ssh import Ssh, SshOptions, SshTarget, last_line, remote_path

__all__ = ["RemoteSelectError", "measure_on_host", "upload_list"]

# Exit code of REMOTE_SCRIPT when neither Python has edgeml_runtime (anything else is select's own).
NO_RUNTIME_EXIT = 3

# Python 3.9+ standard library only: it may run on a bare device Python. argv[1]: the exit code for "no runtime".
REMOTE_SCRIPT = r"""
import json, os, shutil, signal, subprocess, sys, tempfile
from importlib.util import find_spec
signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
stdin = sys.stdin.buffer
header = json.loads(stdin.readline())
deployed = os.path.expanduser(header["deployed_python"])
python = sys.executable if find_spec("edgeml_runtime") else deployed if os.access(deployed, os.X_OK) else None
if python is None:
    sys.stderr.write("edgeml select: no edgeml_runtime for " + sys.executable + ", and no deployed release at "
                     + deployed + "\n")
    sys.exit(int(sys.argv[1]))
folder = tempfile.mkdtemp(prefix="edgeml-select-")
try:
    for relative, size in header["files"]:
        parts = relative.split("/")
        if relative.startswith("/") or "\\" in relative or any(p in ("", ".", "..") for p in parts):
            sys.exit("edgeml select: refusing the file path " + repr(relative))
        target = os.path.join(folder, *parts)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as out:
            left = size
            while left:
                block = stdin.read(min(left, 1 << 20))
                if not block:
                    sys.exit("edgeml select: the controller disconnected during the upload")
                out.write(block)
                left -= len(block)
    command = [python, "-m", "edgeml_runtime", "select", folder, "--json"] + header["args"]
    sys.exit(subprocess.call(command, stdin=subprocess.DEVNULL))
finally:
    shutil.rmtree(folder, ignore_errors=True)
"""


class RemoteSelectError(EdgeMLError):
    """Measuring on a device failed: unreachable, no edgeml_runtime there, or select failed on it."""


def measure_on_host(host: str, options: SshOptions, manifest_path: Path, files: Sequence[Tuple[str, Path]], *,
                    python: str = "python3", remote_dir: str = "~/edgeml", args: Sequence[str] = (),
                    timeout: Optional[float] = None) -> dict:
    """The device's `python -m edgeml_runtime select --json` document for `files` ((relative path, local file),
    the manifest first) measured on `host`. RemoteSelectError says what went wrong and how to fix it."""
    ssh = Ssh(SshTarget.parse(host), options)
    header = {"files": [[relative, path.stat().st_size] for relative, path in files],
              "deployed_python": f"{remote_dir.rstrip('/')}/{formats.CURRENT_LINK}/venv/bin/python",
              "args": list(args)}
    command = f"{remote_path(python)} -c {shlex.quote(REMOTE_SCRIPT)} {NO_RUNTIME_EXIT}"
    with tempfile.TemporaryFile() as payload:  # streamed from a file: artifacts can be large
        payload.write((json.dumps(header) + "\n").encode("utf-8"))
        for _, path in files:
            with open(path, "rb") as source:
                shutil.copyfileobj(source, payload, 1 << 20)
        payload.seek(0)
        done = _run(ssh, command, payload, timeout)
    return _document(host, done, python, remote_dir, manifest_path)


def _run(ssh: Ssh, command: str, payload, timeout: Optional[float]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(ssh.ssh_argv(command), stdin=payload, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RemoteSelectError(f"{ssh.target.spec}: no result within {timeout:.0f} s; pass a smaller "
                                "--budget-seconds or fewer --threads") from None


def _document(host: str, done: subprocess.CompletedProcess, python: str, remote_dir: str,
              manifest_path: Path) -> dict:
    stderr = done.stderr.decode("utf-8", "replace")
    if done.returncode == 255:
        raise RemoteSelectError(f"{host}: cannot connect ({last_line(stderr) or 'ssh failed'}); check --host, the "
                                "key (-i / -F) and that the device is on the network")
    if done.returncode == NO_RUNTIME_EXIT and "no edgeml_runtime" in stderr:
        raise RemoteSelectError(f"{host}: {python} there has no edgeml_runtime and {remote_dir} holds no deployed "
                                f"release; deploy one first (edgeml bundle {manifest_path.parent} --device NAME, then "
                                "edgeml deploy), or pass --remote-python with a Python that has edgeml-runtime")
    if done.returncode != 0:
        if "invalid choice: 'select'" in stderr:
            raise RemoteSelectError(f"{host}: the device's edgeml_runtime predates `select`; deploy a bundle built "
                                    "with this edgeml, or pip install -U edgeml-runtime there")
        raise RemoteSelectError(f"{host}: select failed on the device: {_reason(stderr)}")
    try:
        document = json.loads(done.stdout.decode("utf-8", "replace"))
    except ValueError:
        raise RemoteSelectError(f"{host}: the device's select printed no JSON ({_reason(stderr)})") from None
    if not isinstance(document, dict) or not isinstance(document.get("rows"), list):
        raise RemoteSelectError(f"{host}: the device's select answered without rows; update edgeml-runtime there")
    return document


def _reason(stderr: str) -> str:
    line = last_line(stderr) or "no message"
    return line[len("error: "):] if line.startswith("error: ") else line


def upload_list(manifest_path: Path, candidates: List) -> List[Tuple[str, Path]]:
    """What to send: the manifest and each candidate artifact, under the relative path the manifest lists."""
    return [(formats.MANIFEST_FILE, manifest_path), *((c.name, c.path) for c in candidates)]

