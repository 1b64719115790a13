"""What the device-side red-team tests share (tests/security/test_bundle_*.py, test_deploy_*.py): real
offline bundles and a device where v1 is deployed (made once per session and copied per test), hostile
rewrites of a bundle, the agent run directly on the "device" (this machine, reached over the local sshd
or as a local process), snapshots that tell whether anything was lost, signing keys, and the tally whose
one-line summary the session prints at the end.

Fixtures are defined in the test modules (from the builders here), so that this folder needs no
conftest.py of its own.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
import shlex
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

from edgeml.device import agent as device_agent
from tests.devices.device_helpers import make_onnx_model
from tests.support.cli import edgeml

AGENT = Path(device_agent.__file__)
_CACHE: Dict[str, object] = {}


# ------------------------------------------------------------------------------------ the tally


@dataclass
class Tally:
    """Red-team figures for the closing note: per kind of attack, cases tried, refused (or survived), lost."""

    kinds: Dict[str, List[int]] = field(default_factory=dict)
    printed: bool = False

    def record(self, kind: str, refused: bool, lost: bool) -> None:
        tried, ok, gone = self.kinds.setdefault(kind, [0, 0, 0])
        self.kinds[kind] = [tried + 1, ok + int(refused), gone + int(lost)]

    def summary(self) -> str:
        total = [sum(values[i] for values in self.kinds.values()) for i in range(3)]
        parts = "; ".join(f"{kind} {tried}/{ok}/{gone}" for kind, (tried, ok, gone) in sorted(self.kinds.items()))
        return (f"device red-team: {total[0]} cases tried, {total[1]} refused or survived, {total[2]} lost "
                f"(tried/refused/lost: {parts})")


TALLY = Tally()


def print_summary(request) -> None:
    """Print the tally once per session, past pytest's output capture (called from session fixtures'
    teardowns in several modules)."""
    if TALLY.printed or not TALLY.kinds:
        return
    TALLY.printed = True
    line = TALLY.summary()
    capture = request.config.pluginmanager.getplugin("capturemanager")
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    if capture is not None and reporter is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            reporter.write_line(line)
    else:
        print(line)


# -------------------------------------------------------------------------------- bundles, device


def device_python(sshd) -> str:
    """X.Y of the python3 an ssh login to this machine gets (the bundles' wheels must match it)."""
    if "device_python" not in _CACHE:
        done = sshd.login().run("python3 -c 'import sys; print(sys.version_info[0], sys.version_info[1])'",
                                check=True)
        _CACHE["device_python"] = ".".join(done.stdout.split())
    return _CACHE["device_python"]


def device_python_path(login) -> str:
    """The python3 an ssh login to this machine runs (for running the agent directly)."""
    if "device_python_path" not in _CACHE:
        done = login.run("command -v python3", check=True)
        _CACHE["device_python_path"] = done.stdout.strip()
    return _CACHE["device_python_path"]


def skip_unless_x86_64(pytest) -> None:
    if platform.machine() != "x86_64":
        pytest.skip("the deploy tests build x86_64 bundles for the local sshd")


def make_key(folder: Path, name: str) -> Path:
    """A fresh ed25519 key pair (NAME and NAME.pub) without a passphrase."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if not path.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"edgeml-test-{name}", "-f", str(path)],
                       check=True, capture_output=True)
    return path


def bundles(tmp_path_factory, python: str) -> dict:
    """Session-wide bundles for generic-x86_64: "v1" (offline, unsigned), "v2" (offline, signed by
    keys/release with `edgeml bundle --sign`), "small" (no wheels: verified, never installed), the models,
    and the keys ("release" signs, "attacker" is any other key)."""
    if "bundles" in _CACHE:
        return _CACHE["bundles"]
    root = tmp_path_factory.mktemp("security-bundles")
    keys = {name: make_key(root / "keys", name) for name in ("release", "attacker")}
    made: dict = {"keys": keys, "models": {}}
    for name, seed, extra in (("v1", 11, []), ("v2", 12, ["--sign", keys["release"]])):
        model = make_onnx_model(root / name / "classifier.onnx", seed)
        made["models"][name] = model
        made[name] = root / f"{name}.tar.gz"
        edgeml("bundle", model, "--device", "generic-x86_64", "--python", python, "--version", name, "-o", made[name],
               *extra, check_exit=0)
    made["small"] = root / "small.tar.gz"
    edgeml("bundle", made["models"]["v1"], "--device", "generic-x86_64", "--no-wheels", "--version", "s1",
           "-o", made["small"], check_exit=0)
    _CACHE["bundles"] = made
    return made


def deployed_v1(tmp_path_factory, login, made: dict) -> Path:
    """A deploy directory where v1 was deployed by a real `edgeml deploy` (copy it, never change it)."""
    if "deployed_v1" not in _CACHE:
        state = tmp_path_factory.mktemp("security-deployed") / "edgeml"
        edgeml("deploy", made["v1"], *login.deploy_args(), "--dir", state, check_exit=0)
        _CACHE["deployed_v1"] = state
    return _CACHE["deployed_v1"]


def copy_device(state: Path, target: Path) -> Path:
    """A device of a test's own: a copy of a deployed state (relative links, venvs that run where they are)."""
    shutil.copytree(state, target, symlinks=True)
    return target


# ------------------------------------------------------------------------------ hostile rewrites


@dataclass
class Member:
    info: tarfile.TarInfo
    data: bytes = b""
    stream: Optional[Callable[[], io.RawIOBase]] = None  # for huge members (never held in memory)


def read_members(bundle: Path) -> List[Member]:
    with tarfile.open(bundle, "r:gz") as tar:
        return [Member(m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar.getmembers()]


def top_of(members: List[Member]) -> str:
    return members[0].info.name.split("/", 1)[0]


def manifest_of(members: List[Member]) -> dict:
    return json.loads(members[0].data)


def set_manifest(members: List[Member], manifest: dict, *, recompute: bool = True) -> None:
    """Put `manifest` into the first member; with `recompute`, first make every listed file's size and
    sha256 match the member of that path (so only what the case changes on purpose is hostile)."""
    if recompute:
        top = top_of(members)
        by_path = {}
        for member in members[1:]:
            if member.info.isreg() and member.info.name.startswith(top + "/"):
                by_path.setdefault(member.info.name[len(top) + 1:], member)
        for entry in manifest.get("files", []):
            member = by_path.get(entry.get("path"))
            if member is not None and member.stream is None:
                entry["bytes"], entry["sha256"] = len(member.data), hashlib.sha256(member.data).hexdigest()
    members[0].data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


def regular(name: str, data: bytes, mode: int = 0o644) -> Member:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 1_700_000_000
    return Member(info, data)


def special(name: str, kind: bytes, linkname: str = "") -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mtime = kind, linkname, 1_700_000_000
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3  # /dev/null
    return Member(info)


class Zeros(io.RawIOBase):
    def __init__(self, size: int):
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def huge(name: str, size: int) -> Member:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = size, 1_700_000_000
    return Member(info, stream=lambda: Zeros(size))


def write_bundle(target: Path, members: List[Member]) -> Path:
    """Write members as a .tar.gz (GNU format: absolute names and long links are kept as given)."""
    with gzip.open(target, "wb", compresslevel=1) as zipped, \
            tarfile.open(fileobj=zipped, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for member in members:
            info = member.info
            if member.stream is not None:
                tar.addfile(info, io.BufferedReader(member.stream(), 1 << 20))
            elif info.isreg():
                info.size = len(member.data)
                tar.addfile(info, io.BytesIO(member.data))
            else:
                tar.addfile(info)
    return target


def sign_members(members: List[Member], key: Path, *, position: int = 1) -> None:
    """(Re-)sign the manifest as it is now with `key`; the signature member goes at `position`."""
    from edgeml.device.signing import sign

    top = top_of(members)
    members[:] = [m for m in members if m.info.name != f"{top}/edgeml-bundle.json.sig"]
    members.insert(position, regular(f"{top}/edgeml-bundle.json.sig", sign(members[0].data, key)))


def strip_signature(members: List[Member]) -> None:
    top = top_of(members)
    members[:] = [m for m in members if m.info.name != f"{top}/edgeml-bundle.json.sig"]


# ------------------------------------------------------------------------------ state and agent


def snapshot(root: Path) -> dict:
    """What a deploy directory (or any folder) holds: every path with its type, size, mtime and link
    target (staging/ and the lock file excluded: they are scratch space)."""
    state = {}
    if not os.path.lexists(root):
        return state
    for base, folders, files in os.walk(root):
        relative_base = os.path.relpath(base, root)
        if relative_base == "staging" or relative_base.startswith("staging/"):
            folders[:] = []
            continue
        for name in folders + files:
            path = os.path.join(base, name)
            relative = os.path.normpath(os.path.join(relative_base, name))
            if relative in (".lock", "staging"):
                continue
            stat = os.lstat(path)
            link = os.readlink(path) if os.path.islink(path) else None
            state[relative] = (stat.st_mode, stat.st_size if not os.path.isdir(path) else 0, stat.st_mtime_ns, link)
    return state


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def agent_over_ssh(login, python: str, remote_dir: Path, bundle: Path, *extra: str, timeout: float = 300):
    """Run the agent as `edgeml deploy` does (bundle streamed on stdin with --receive, "commit" after "ready"),
    but without the controller's own checks: what a device gets from any controller. Returns (exit code,
    events)."""
    staging = remote_dir / "staging" / f"direct-{os.urandom(4).hex()}"
    staging.mkdir(parents=True)
    data = bundle.read_bytes()
    command = " ".join([shlex.quote(python), shlex.quote(str(AGENT)), "deploy", "--dir", shlex.quote(str(remote_dir)),
                        "--bundle", shlex.quote(str(staging / "bundle.tar.gz")), "--sha256",
                        hashlib.sha256(data).hexdigest(), "--receive", str(len(data)),
                        *(shlex.quote(arg) for arg in extra)])
    done = subprocess.run([*login.ssh_args(), command], input=data + b"commit\n", capture_output=True,
                          timeout=timeout)
    events = [json.loads(line) for line in done.stdout.decode().splitlines() if line.startswith("{")]
    return done.returncode, events, done.stderr.decode(errors="replace")


def current_runs(login, remote_dir: Path) -> subprocess.CompletedProcess:
    """The agent's own smoke test (every model of the active release, once, in its venv), over ssh."""
    current = remote_dir / "current"
    models = json.loads((current / "edgeml-bundle.json").read_text())["models"]
    paths = " ".join(shlex.quote(str(current / m["path"])) for m in models)
    python = shlex.quote(str(current / "venv" / "bin" / "python"))
    return login.run(f"{python} -c {shlex.quote(device_agent.SMOKE_TEST)} {paths}")
