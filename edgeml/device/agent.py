"""The on-device side of `edgeml deploy`: a standalone script (Python 3.9+, standard library only) that
`edgeml deploy` copies to the device and runs with the device's `python3`.

    python3 agent.py deploy   --dir DIR --bundle FILE --sha256 HEX [--receive BYTES]
                              [--trust-key 'TYPE BASE64' ...] [--untrust-key SHA256:... ...]
                              (then answers "commit" on stdin)
    python3 agent.py status   --dir DIR
    python3 agent.py rollback --dir DIR
    python3 agent.py bench    --dir DIR [--runs N] [--threads N]

Layout under DIR: `releases/<version>/` (bundle files, `venv/`, `.edgeml-ok` once installed and
smoke-tested), `current` and `previous` (relative symlinks into releases/), `staging/` (uploads),
`trusted_keys` (pinned signing keys, OpenSSH allowed-signers format), `.lock`. Nothing a deploy does is
visible through `current` until the final symlink rename, and that rename only happens after the
controller answers "commit": if the connection drops before, the new release is removed and the
previous one stays active.

The device trusts nothing in a bundle it has not checked itself: every name that becomes a path (the
version, file and model paths, member names) must pass the same rule as at build time, and every path
is resolved and must stay inside DIR before anything is created or removed. Once DIR/trusted_keys
exists, only bundles whose manifest carries a valid signature (`ssh-keygen -Y verify`) by a pinned key
are accepted, whatever the command line says. `--trust-key`/`--untrust-key` change the pinned keys
together with a deploy: the bundle must verify against the keys pinned before (if any) and after the
change, so the first pin needs a bundle signed by the new key, and later changes a bundle signed by a
key that was already pinned and stays pinned.

With `--receive BYTES`, the bundle comes on stdin (exactly BYTES, then the "commit" line) and is written
to FILE while this process holds a lock on FILE's staging folder. A staging folder whose lock is no
longer held belongs to a killed deploy and is removed by the next one; child processes (install.sh,
the smoke test) run in their own process group, recorded in the release, so a deploy after a killed one
stops them before it removes their half-made release.

Output: one JSON object per line on stdout ({"event": "stage"|"ready"|"result"|"error", ...}).
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import hashlib
import json
import os
import platform
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path, PurePosixPath

# Copies of edgeml_runtime.formats' names (this script runs alone on the device; a test checks they match).
BUNDLE_MANIFEST = "edgeml-bundle.json"
BUNDLE_SIGNATURE = "edgeml-bundle.json.sig"
SIGNATURE_NAMESPACE = "edgeml-bundle"
SCHEMA = "edgeml.bundle/1"
OK_MARKER = ".edgeml-ok"
RELEASES_DIR = "releases"
CURRENT_LINK = "current"
PREVIOUS_LINK = "previous"
STAGING_DIR = "staging"
TRUSTED_KEYS = "trusted_keys"
# A copy of edgeml.device.bundle's build-time rule for bundle names and versions (a test checks they match).
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
MAX_NAME_LENGTH = 64

KEEP_RELEASES = 3  # besides current and previous, the newest installed releases kept for --rollback
COMMIT_TIMEOUT_S = 600
LOCK_TIMEOUT_S = 120
REAP_TIMEOUT_S = 60
STALE_STAGING_S = 3600  # a staging folder no agent ever claimed (an upload by other tools), untouched this long
MAX_MANIFEST_BYTES = 16 << 20
MAX_SIGNATURE_BYTES = 64 << 10
MAX_PATH_LENGTH = 1024

SERVICE_UNIT = "edgeml-serve.service"
AGENT_CLAIM = ".edgeml-agent"  # in a staging folder: flock-held by the agent working in it
BUSY_MARKER = ".edgeml-running"  # in a release: flock-held by its child processes, holds their process group
# Names the agent writes into a release: a bundle may not bring files of these names.
RESERVED_NAMES = frozenset({OK_MARKER, BUNDLE_MANIFEST, BUNDLE_SIGNATURE, "venv", "install.log", SERVICE_UNIT,
                            BUSY_MARKER})
SIGNER_PRINCIPAL = "edgeml"  # the principal of every line written to trusted_keys
KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa",
             "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")

# Run in the release's venv: load every model and run it once on zeros, outputs must be finite.
SMOKE_TEST = r"""
import json, sys
import numpy as np
import edgeml_runtime as er
for path in sys.argv[1:]:
    model = er.load(path)
    feeds = {}
    for spec in model.inputs:
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in spec.shape]
        dtype = "float32" if spec.quantization is not None else spec.dtype
        feeds[spec.name] = np.zeros(shape, dtype=dtype)
    outputs = model.run(feeds)
    for name, value in outputs.items():
        value = np.asarray(value)
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise SystemExit(f"{path}: output {name} is not finite")
    print(json.dumps({"model": path, "backend": model.backend,
                      "outputs": {k: list(np.shape(v)) for k, v in outputs.items()}}))
"""


class Failure(Exception):
    """A step failed; `stage` says which (verify, install, smoke, activate, rollback, bench, ...)."""

    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage


class Interrupted(Exception):
    pass


def emit(event: str, **fields) -> None:
    try:
        sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, OSError):  # the controller is gone; carry on cleaning up
        pass


def stage(name: str, message: str) -> None:
    emit("stage", stage=name, message=message)


def sha256_file(path: Path) -> str:  # a copy of edgeml_runtime.files's: this script runs alone on the device
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------ names


def name_problem(value) -> str | None:
    """Why `value` is not a valid bundle name or version (the build-time rule), or None."""
    if not isinstance(value, str) or not SAFE_NAME.fullmatch(value) or len(value) > MAX_NAME_LENGTH:
        return (f"may only hold letters, digits, '.', '_', '+' and '-' (at most {MAX_NAME_LENGTH}, not starting "
                "with '.' or '-')")
    return None


def check_name(what: str, value) -> str:
    problem = name_problem(value)
    if problem:
        raise Failure("verify", f"refusing bundle {what} {json.dumps(value)}: it {problem}")
    return value


def path_problem(value) -> str | None:
    """Why `value` is not a safe path inside a release (relative, POSIX, no '', '.' or '..' parts, no
    backslash or control characters, not one of the names the agent writes), or None. `edgeml bundle`
    applies this same function to every file it adds."""
    if not isinstance(value, str) or not value:
        return "is empty or not a string"
    if len(value) > MAX_PATH_LENGTH:
        return f"is longer than {MAX_PATH_LENGTH} characters"
    if value.startswith("/"):
        return "is absolute"
    if "\\" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "holds a backslash or control characters"
    parts = value.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "has an empty, '.' or '..' part"
    if any(len(part.encode("utf-8", "surrogateescape")) > 255 for part in parts):
        return "has a part longer than 255 bytes"
    if parts[0] in RESERVED_NAMES:
        return f"uses the reserved name {parts[0]!r}"
    return None


def check_path(what: str, value) -> str:
    problem = path_problem(value)
    if problem:
        raise Failure("verify", f"refusing {what} {json.dumps(value)}: it {problem}")
    return value


def check_member_name(name: str):
    """(top directory, path inside it) of a safe member name; refuse anything else."""
    top, _, relative = name.partition("/")
    if not top or len(top) > 2 * MAX_NAME_LENGTH + 1 or not SAFE_NAME.fullmatch(top):
        raise Failure("verify", f"refusing member {json.dumps(name)}: not inside the bundle's NAME-VERSION folder")
    problem = None if relative in (BUNDLE_MANIFEST, BUNDLE_SIGNATURE) else path_problem(relative)
    if problem:
        raise Failure("verify", f"refusing member {json.dumps(name)}: its path {problem}")
    return top, relative


def check_manifest(manifest) -> dict:
    """Refuse a manifest whose structure, names or paths the device would not handle safely."""
    if not isinstance(manifest, dict):
        raise Failure("verify", "the bundle manifest is not a JSON object")
    if manifest.get("schema") != SCHEMA:
        raise Failure("verify", f"unsupported bundle schema {manifest.get('schema')!r}; expected {SCHEMA}")
    check_name("name", manifest.get("name"))
    check_name("version", manifest.get("version"))
    files, models = manifest.get("files"), manifest.get("models")
    if not isinstance(files, list) or not isinstance(models, list) or not files:
        raise Failure("verify", "the bundle manifest must list 'files' and 'models'")
    if not isinstance(manifest.get("device", {}), dict):
        raise Failure("verify", "the bundle manifest's 'device' must be an object")
    listed = set()
    for entry in files:
        if not isinstance(entry, dict):
            raise Failure("verify", "every entry of the manifest's 'files' must be an object")
        path = check_path("file", entry.get("path"))
        size, digest = entry.get("bytes"), entry.get("sha256")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise Failure("verify", f"{path}: the manifest's size is not a byte count")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise Failure("verify", f"{path}: the manifest's sha256 is not 64 hex digits")
        if path in listed:
            raise Failure("verify", f"{path} is listed twice in the bundle manifest")
        listed.add(path)
    prefixes = {"/".join(p.split("/")[:i]) for p in listed for i in range(1, p.count("/") + 1)}
    if listed & prefixes:
        raise Failure("verify", f"the manifest lists {sorted(listed & prefixes)[0]} both as a file and a folder")
    for model in models:
        if not isinstance(model, dict) or check_path("model", model.get("path")) not in listed:
            raise Failure("verify", f"model {json.dumps(model.get('path') if isinstance(model, dict) else model)} "
                                    "is not one of the bundle's files")
    return manifest


# ----------------------------------------------------------------------------------------- layout


class Layout:
    def __init__(self, root: str):
        self.root = Path(os.path.expanduser(root)).absolute()
        self.releases = self.root / RELEASES_DIR
        self.current = self.root / CURRENT_LINK
        self.previous = self.root / PREVIOUS_LINK
        self.staging = self.root / STAGING_DIR
        self.trusted_keys = self.root / TRUSTED_KEYS

    def target(self, link: Path):
        """The release version a link points at (releases/<safe name>), or None."""
        if not link.is_symlink():
            return None
        parts = PurePosixPath(os.readlink(link)).parts
        if len(parts) != 2 or parts[0] != RELEASES_DIR or name_problem(parts[1]):
            return None
        return parts[1]

    def release(self, version: str) -> Path:
        """releases/<version>, refused unless `version` is a safe name and the path stays in releases/."""
        check_name("version", version)
        return inside(self.releases / version, self.releases)

    def is_complete(self, version) -> bool:
        if version is None or name_problem(version):
            return False
        path = self.releases / version
        return not path.is_symlink() and (path / OK_MARKER).is_file()

    def point(self, link: Path, version: str) -> None:
        """Atomically make `link` point at releases/<version> (symlink to a temporary name, rename)."""
        check_name("version", version)
        temporary = link.with_name(f".{link.name}.tmp-{os.getpid()}")
        if temporary.is_symlink() or temporary.exists():
            temporary.unlink()
        os.symlink(f"{RELEASES_DIR}/{version}", temporary)
        os.replace(temporary, link)
        fsync_directory(self.root)


def inside(path: Path, parent: Path) -> Path:
    """`path`, if it resolves (following every symlink that exists) to a direct child of `parent` as
    resolved; refuse anything else before it is created or removed."""
    real_parent, real = parent.resolve(), path.resolve()
    if real.parent != real_parent or real.name != path.name:
        raise Failure("verify", f"refusing {path}: it resolves to {real}, outside {real_parent}")
    return path


def fsync_directory(path: Path) -> None:
    directory = os.open(path, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def remove(path: Path) -> None:
    """Remove a file, a symlink (never what it points at) or a folder tree."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


class Lock:
    """One deploy/rollback at a time per directory (flock; released when the process dies)."""

    def __init__(self, layout: Layout):
        self.path = layout.root / ".lock"

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open_lock_file(self.path)
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise Failure("lock", f"another edgeml deploy is running in {self.path.parent}") from None
                time.sleep(0.5)

    def __exit__(self, *exc):
        self.handle.close()


def open_lock_file(path: Path):
    """A file to flock, created if missing, never truncated, never followed when it is a symlink."""
    return os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644), "r+")


def _held(path: Path) -> bool:
    """Whether some live process holds the flock on `path`."""
    try:
        with open(path, "rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
    except BlockingIOError:
        return True
    except OSError:
        return False


# ----------------------------------------------------------------------------- staging


class Workspace:
    """This deploy's (or rollback's) staging folder, claimed (flock on AGENT_CLAIM) while the agent works in it
    and removed when it is done. It is the bundle's folder when the bundle is in DIR/staging/<x>/ (where
    `edgeml deploy` puts it), else a new folder in staging/ (and the bundle, if any, is left where it is)."""

    def __init__(self, layout: Layout, bundle: Path | None = None):
        layout.staging.mkdir(parents=True, exist_ok=True)
        parent = bundle.absolute().parent if bundle is not None else None
        if parent is not None and not parent.is_symlink() and parent.is_dir() and (
                parent.resolve().parent == layout.staging.resolve()):
            self.path = parent
        else:
            self.path = inside(layout.staging / f"agent-{os.getpid()}-{uuid.uuid4().hex[:8]}", layout.staging)
            self.path.mkdir()
        self.handle = open_lock_file(self.path / AGENT_CLAIM)
        fcntl.flock(self.handle, fcntl.LOCK_EX)

    def close(self) -> None:
        remove(self.path)
        self.handle.close()


def receive(bundle: Path, size: int) -> None:
    """Write exactly `size` bytes from stdin to `bundle` (raw reads: the "commit" line that follows stays
    unread for wait_for_commit)."""
    remaining = size
    with open(bundle, "xb") as out:
        while remaining:
            block = os.read(sys.stdin.fileno(), min(1 << 20, remaining))
            if not block:
                raise Interrupted("the controller disconnected during the upload")
            out.write(block)
            remaining -= len(block)


def clean_staging(layout: Layout, keep: Path) -> None:
    """Remove what killed deploys left in staging/: folders whose agent is gone (their claim is no longer
    held), and folders no agent ever claimed that nobody has written to for STALE_STAGING_S (an upload
    that died before its agent started). Called under the deploy lock."""
    if not layout.staging.is_dir():
        return
    for path in layout.staging.iterdir():
        if path == keep:
            continue
        try:
            if path.is_symlink() or not path.is_dir():
                stale = time.time() - path.lstat().st_mtime > STALE_STAGING_S
            elif (path / AGENT_CLAIM).is_file():
                stale = not _held(path / AGENT_CLAIM)
            else:
                stale = time.time() - _newest_mtime(path) > STALE_STAGING_S
            if stale:
                remove(path)
        except OSError:
            continue


def _newest_mtime(folder: Path) -> float:
    newest = folder.lstat().st_mtime
    for base, _, names in os.walk(folder):
        for name in names:
            try:
                newest = max(newest, os.lstat(os.path.join(base, name)).st_mtime)
            except OSError:
                pass
    return newest


# ------------------------------------------------------------------------------ child processes


def run_in_release(argv, release: Path, **kwargs) -> subprocess.CompletedProcess:
    """Run a child process of `release` (install.sh, the smoke test) in a process group of its own. The
    group's id is written to release/BUSY_MARKER, whose flock the children hold for as long as they run:
    if this agent is killed, the next deploy stops them (reap) before it touches the release."""
    marker = release / BUSY_MARKER
    with open_lock_file(marker) as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.truncate(0)
        process = subprocess.Popen(argv, start_new_session=True, pass_fds=(handle.fileno(),), **kwargs)
        handle.write(f"{process.pid}\n")
        handle.flush()
        try:
            stdout, stderr = process.communicate()
        except BaseException:
            _kill_group(process.pid)
            process.wait()
            raise
    try:
        marker.unlink()
    except OSError:
        pass
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def reap(release: Path) -> None:
    """Stop what a killed deploy left running in `release` (see run_in_release)."""
    marker = release / BUSY_MARKER
    if marker.is_symlink() or not marker.is_file():
        return
    with open(marker, "rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        text = handle.read(32).decode("ascii", "replace").strip()
        if text.isdigit() and int(text) > 1:
            _kill_group(int(text))
        deadline = time.monotonic() + REAP_TIMEOUT_S
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise Failure("install", f"processes of an interrupted deploy still run in {release}; "
                                             "stop them, then deploy again") from None
                time.sleep(0.2)


# ----------------------------------------------------------------------------- signing keys


def parse_public_key(text: str):
    """(key type, base64 blob) of an OpenSSH public key line (an allowed-signers line also works:
    principals and options before the key are skipped). ValueError when there is none."""
    tokens = text.split()
    for index, token in enumerate(tokens[:-1]):
        if token in KEY_TYPES:
            encoded = tokens[index + 1]
            try:
                blob = base64.b64decode(encoded, validate=True)
            except ValueError:
                break
            if _ssh_string(blob, 0)[0] != token.encode():
                break
            return token, base64.b64encode(blob).decode("ascii")
    raise ValueError("not an OpenSSH public key (expected 'ssh-ed25519 AAAA...' or another key type)")


def fingerprint(encoded: str) -> str:
    """SHA256:... as `ssh-keygen -l` prints it."""
    digest = hashlib.sha256(base64.b64decode(encoded)).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def signature_key(signature: bytes):
    """(key type, base64 blob) of the key that made an armored SSHSIG signature (not a verification: it
    only says who claims to have signed). ValueError when it is not one."""
    try:
        lines = signature.decode("ascii").strip().splitlines()
        if len(lines) < 3 or lines[0] != "-----BEGIN SSH SIGNATURE-----" or lines[-1] != "-----END SSH SIGNATURE-----":
            raise ValueError
        blob = base64.b64decode("".join(lines[1:-1]), validate=True)
        if blob[:6] != b"SSHSIG":
            raise ValueError
        public, _ = _ssh_string(blob, 10)
        key_type, _ = _ssh_string(public, 0)
        return key_type.decode("ascii"), base64.b64encode(public).decode("ascii")
    except (ValueError, UnicodeDecodeError, IndexError):
        raise ValueError("not an OpenSSH signature (ssh-keygen -Y sign)") from None


def _ssh_string(blob: bytes, offset: int):
    if len(blob) < offset + 4:
        raise ValueError("truncated")
    length = int.from_bytes(blob[offset:offset + 4], "big")
    end = offset + 4 + length
    if len(blob) < end:
        raise ValueError("truncated")
    return blob[offset + 4:end], end


def read_trusted_keys(layout: Layout):
    """The pinned keys as (type, base64) pairs, or None when the device pins none. A trusted_keys file that
    exists but holds no usable key is refused (fail closed)."""
    path = layout.trusted_keys
    if not os.path.lexists(path):
        return None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise Failure("verify", f"cannot read {path} ({error}); fix or remove it") from None
    keys = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            key = parse_public_key(line)
        except ValueError:
            raise Failure("verify", f"{path} line {number} is not a public key; fix or remove it") from None
        if key not in keys:
            keys.append(key)
    if not keys:
        raise Failure("verify", f"{path} pins no key; remove it to accept unsigned bundles again")
    return keys


def write_trusted_keys(layout: Layout, keys) -> None:
    lines = ["# Keys whose signatures this edgeml deployment accepts (OpenSSH allowed-signers format).",
             "# Changed by `edgeml deploy --trust/--untrust`; while this file exists, unsigned bundles are refused.",
             *(_allowed_signer(key) for key in keys)]
    temporary = layout.root / f".{TRUSTED_KEYS}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, layout.trusted_keys)
    fsync_directory(layout.root)


def _allowed_signer(key) -> str:
    return f'{SIGNER_PRINCIPAL} namespaces="{SIGNATURE_NAMESPACE}" {key[0]} {key[1]} {fingerprint(key[1])}'


def planned_keys(before, add, remove_fingerprints):
    """The pinned keys after --trust-key/--untrust-key (`before` None: none pinned yet)."""
    keys = list(before or [])
    for line in add:
        try:
            key = parse_public_key(line)
        except ValueError as error:
            raise Failure("trust", f"--trust-key: {error}") from None
        if key not in keys:
            keys.append(key)
    for wanted in remove_fingerprints:
        matching = [key for key in keys if fingerprint(key[1]) == wanted]
        if not matching:
            raise Failure("trust", f"--untrust-key {wanted}: no such key is pinned on this device")
        keys = [key for key in keys if key not in matching]
    if before and not keys:
        raise Failure("trust", "refusing to unpin every key (the device would accept unsigned bundles again); "
                               f"to do that on purpose, delete {TRUSTED_KEYS} on the device")
    return keys or None


def authenticate(raw_manifest: bytes, signature, key_sets, work: Path):
    """The signer's fingerprint, or None. With pinned keys (`key_sets`: the keys pinned before and after this
    deploy), the signature must verify against each set. Without, the bundle may be unsigned; a signature
    it carries must still match the manifest (checked against the key it names, when ssh-keygen is here):
    that proves no origin, but a signed bundle changed after signing is refused on every device."""
    signer = signer_key = None
    if signature is not None:
        try:
            signer_key = signature_key(signature)
        except ValueError as error:
            raise Failure("verify", f"{BUNDLE_SIGNATURE}: {error}") from None
        signer = fingerprint(signer_key[1])
    for keys in key_sets:
        pinned = [fingerprint(key[1]) for key in keys]
        if signature is None:
            raise Failure("verify", f"this device accepts only signed bundles (its {TRUSTED_KEYS} pins "
                                    f"{', '.join(pinned)}) and this bundle is not signed; sign it with "
                                    "`edgeml bundle ... --sign KEY`")
        if signer not in pinned:
            raise Failure("verify", f"the bundle is signed by {signer}, a key this deploy does not trust "
                                    f"(pinned: {', '.join(pinned)})")
        if not ssh_keygen_verify(keys, raw_manifest, signature, work):
            raise Failure("verify", f"the signature by {signer} does not match the bundle manifest: the bundle "
                                    "was changed after it was signed")
    if signature is not None and not key_sets:
        if _ssh_keygen() is None:
            return None  # cannot vouch for it: report no signer
        if not ssh_keygen_verify([signer_key], raw_manifest, signature, work):
            raise Failure("verify", f"the signature by {signer} does not match the bundle manifest: the bundle "
                                    "was changed after it was signed")
    return signer


def _ssh_keygen():
    return shutil.which("ssh-keygen") or next((p for p in ("/usr/bin/ssh-keygen", "/bin/ssh-keygen")
                                               if os.access(p, os.X_OK)), None)


def ssh_keygen_verify(keys, data: bytes, signature: bytes, work: Path) -> bool:
    tool = _ssh_keygen()
    if tool is None:
        raise Failure("verify", "ssh-keygen is not installed on the device (apt-get install openssh-client); "
                                "it checks bundle signatures")
    allowed = work / f"allowed_signers-{uuid.uuid4().hex[:8]}"
    allowed.write_text("\n".join(_allowed_signer(key) for key in keys) + "\n")
    signature_file = work / f"{BUNDLE_SIGNATURE}-{uuid.uuid4().hex[:8]}"
    signature_file.write_bytes(signature)
    done = subprocess.run([tool, "-Y", "verify", "-f", str(allowed), "-I", SIGNER_PRINCIPAL, "-n", SIGNATURE_NAMESPACE,
                           "-s", str(signature_file)], input=data, capture_output=True, env=_clean_env(), timeout=60)
    if done.returncode != 0 and b"usage:" in done.stderr.lower():
        raise Failure("verify", "the device's ssh-keygen cannot check signatures (-Y verify needs OpenSSH 8.1 or "
                                "newer)")
    return done.returncode == 0


# ----------------------------------------------------------------------------- bundle checking


def read_manifest(tar: tarfile.TarFile, bundle: Path):
    """(manifest, its raw bytes, top folder, the manifest member, signature bytes or None, signature member)."""
    first = tar.next()
    if first is None or not first.isreg() or PurePosixPath(first.name).name != BUNDLE_MANIFEST:
        raise Failure("verify", f"{bundle.name}: not an edgeml bundle ({BUNDLE_MANIFEST} must come first)")
    top, relative = check_member_name(first.name)
    if relative != BUNDLE_MANIFEST:
        raise Failure("verify", f"{bundle.name}: not an edgeml bundle ({BUNDLE_MANIFEST} must come first)")
    if first.size > MAX_MANIFEST_BYTES:
        raise Failure("verify", f"{BUNDLE_MANIFEST} is {first.size} bytes; refusing more than {MAX_MANIFEST_BYTES}")
    raw = tar.extractfile(first).read()
    try:
        manifest = json.loads(raw)
    except ValueError:
        raise Failure("verify", f"{BUNDLE_MANIFEST} is not JSON: the bundle is damaged") from None
    check_manifest(manifest)
    signature, signature_member = None, tar.next()
    if signature_member is not None and signature_member.name == f"{top}/{BUNDLE_SIGNATURE}":
        if not signature_member.isreg() or signature_member.size > MAX_SIGNATURE_BYTES:
            raise Failure("verify", f"refusing member {json.dumps(signature_member.name)}: not a signature")
        signature = tar.extractfile(signature_member).read()
    else:
        signature_member = None
    return manifest, raw, top, first, signature, signature_member


def extract_verified(bundle: Path, expected_sha256: str, destination: Path, check_signature=None) -> dict:
    """Check the bundle's sha256, its manifest (names, paths) and signature (`check_signature(raw manifest,
    signature bytes or None)`, before anything else is read), then every member against the manifest
    (regular files only, safe names, listed once, right size and sha256) while writing it under
    `destination`. Returns the manifest."""
    actual = sha256_file(bundle)
    if actual != expected_sha256:
        raise Failure("verify", f"bundle sha256 mismatch after upload (expected {str(expected_sha256)[:12]}, "
                                f"got {actual[:12]}): the copy was corrupted in transit")
    with tarfile.open(bundle, "r:gz") as tar:
        manifest, raw, top, manifest_member, signature, signature_member = read_manifest(tar, bundle)
        if check_signature is not None:
            check_signature(raw, signature)
        expected = {entry["path"]: entry for entry in manifest["files"]}
        total = sum(entry["bytes"] for entry in manifest["files"])
        free = shutil.disk_usage(destination.parent).free
        if total > free:
            raise Failure("verify", f"the bundle's files need {total} bytes but {destination.parent} has only "
                                    f"{free} bytes free")
        seen = set()
        destination.mkdir(parents=True)
        for member in tar:
            if member is manifest_member or member is signature_member:  # iteration starts again at the first
                continue
            if not member.isreg():
                raise Failure("verify", f"refusing member {json.dumps(member.name)}: links, devices and directories "
                                        "are not allowed in a bundle")
            member_top, relative = check_member_name(member.name)
            if member_top != top or relative not in expected or relative in seen:
                raise Failure("verify", f"refusing member {json.dumps(member.name)}: not listed in the bundle "
                                        "manifest, or listed once and present twice")
            entry = expected[relative]
            if member.size != entry["bytes"]:
                raise Failure("verify", f"{relative}: {member.size} bytes, manifest says {entry['bytes']}")
            seen.add(relative)
            _write_checked(tar, member, destination, relative, entry)
        missing = sorted(set(expected) - seen)
        if missing:
            raise Failure("verify", f"bundle is missing {len(missing)} listed file(s): {', '.join(missing[:3])}")
    (destination / BUNDLE_MANIFEST).write_bytes(raw)  # the signed bytes, as they came
    if signature is not None:
        (destination / BUNDLE_SIGNATURE).write_bytes(signature)
    return manifest


def _write_checked(tar, member, destination: Path, relative: str, entry: dict) -> None:
    path = destination / relative
    for parent in reversed(path.relative_to(destination).parents):  # create folders without following links
        folder = destination / parent
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise Failure("verify", f"refusing {relative}: {parent} is not a folder")
        folder.mkdir(exist_ok=True)
    digest = hashlib.sha256()
    source = tar.extractfile(member)
    with open(path, "xb") as out:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
            out.write(block)
    if digest.hexdigest() != entry["sha256"]:
        raise Failure("verify", f"sha256 mismatch for {entry['path']}: the bundle is damaged or was tampered with")
    os.chmod(path, 0o755 if entry["path"].endswith(".sh") else 0o644)


def check_compatible(manifest: dict) -> None:
    python = "{}.{}".format(*sys.version_info[:2])
    if manifest.get("offline") and manifest.get("python") != python:
        raise Failure("verify", f"the device's python3 is {python} but the bundle's wheels are for Python "
                                f"{manifest.get('python')}; rebuild with `edgeml bundle ... --python {python}`")
    device = manifest.get("device") or {}
    arch = device.get("arch")
    machine = platform.machine()
    if manifest.get("offline") and arch and machine != arch and not (arch == "armv7l" and machine == "armv6l"):
        raise Failure("verify", f"the device is {machine} but the bundle was built for {arch} "
                                f"(profile {device.get('name')}); rebuild for the right --device")


# ------------------------------------------------------------------------------- install, smoke


def install(release: Path) -> None:
    log = release / "install.log"
    env = _clean_env()
    env["PYTHON"] = sys.executable  # the interpreter whose version was just checked builds the venv
    with open(log, "wb") as out:
        done = run_in_release(["sh", str(release / "install.sh"), str(release / "venv")], release, cwd=release,
                              stdout=out, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0:
        raise Failure("install", f"install.sh failed (exit {done.returncode}): {_tail(log)}")


def release_models(release: Path) -> list:
    """The model paths of an installed release, checked again (the manifest is read from the device's disk)."""
    manifest = json.loads((release / BUNDLE_MANIFEST).read_text())
    return [check_path("model", model.get("path")) for model in manifest.get("models", [])]


def smoke_test(release: Path) -> list:
    models = [str(release / path) for path in release_models(release)]
    done = run_in_release([str(release / "venv" / "bin" / "python"), "-c", SMOKE_TEST, *models], release,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_clean_env())
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        raise Failure("smoke", f"smoke inference failed: {lines[-1]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


UNIT_SCRIPT = (
    "import sys\n"
    "from edgeml_runtime.serve.systemd import deployment_unit\n"
    "sys.stdout.write(deployment_unit(sys.argv[1], ['--http', '127.0.0.1:8080']))\n"
)


def write_service_unit(layout: Layout, release: Path) -> Path:
    """A systemd unit serving this deployment over HTTP (through `current`, so it survives deploys).

    Installing it needs root, which a deploy does not assume: the unit is left in the release for
    `sudo cp .../edgeml-serve.service /etc/systemd/system/ && sudo systemctl enable --now edgeml-serve`.
    """
    done = run_in_release([str(release / "venv" / "bin" / "python"), "-c", UNIT_SCRIPT, str(layout.root)], release,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_clean_env())
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no output"]
        raise Failure("smoke", f"the runtime cannot write its systemd unit: {lines[-1]}")
    unit = release / SERVICE_UNIT
    unit.write_text(done.stdout)
    return unit


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _tail(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return " | ".join(lines[-3:]) if lines else "no output"


def wait_for_commit() -> None:
    emit("ready")
    readable, _, _ = select.select([sys.stdin], [], [], COMMIT_TIMEOUT_S)
    answer = sys.stdin.readline().strip() if readable else ""
    if answer != "commit":
        raise Interrupted("the controller disconnected before activation")


# ------------------------------------------------------------------------------------ commands


def deploy(layout: Layout, bundle: Path, expected_sha256: str, *, receive_bytes=None, trust=(), untrust=()) -> dict:
    workspace = Workspace(layout, bundle)
    try:
        if receive_bytes is not None:
            if bundle.absolute().parent != workspace.path.absolute():
                raise Failure("upload", f"--receive writes the bundle into {layout.staging}/<folder>/, not {bundle}")
            receive(bundle, receive_bytes)
        with Lock(layout):
            clean_staging(layout, keep=workspace.path)
            return _deploy_locked(layout, bundle, expected_sha256, workspace.path, trust, untrust)
    finally:
        workspace.close()


def _deploy_locked(layout: Layout, bundle: Path, expected_sha256: str, work: Path, trust, untrust) -> dict:
    stage("verify", "checking the bundle's names, signature, and the sha256 of the bundle and every file")
    before = read_trusted_keys(layout)
    after = planned_keys(before, trust, untrust)
    key_sets = [keys for keys in (before, after) if keys]
    if len(key_sets) == 2 and key_sets[0] == key_sets[1]:
        key_sets.pop()
    signed_by = []
    manifest = extract_verified(bundle, expected_sha256, work / "extract",
                                lambda raw, signature: signed_by.append(authenticate(raw, signature, key_sets, work)))
    check_compatible(manifest)
    version = manifest["version"]
    trust_changed = (after or None) != (before or None)
    current, previous = layout.target(layout.current), layout.target(layout.previous)
    release = layout.release(version)
    reuse = layout.is_complete(version) and _same_bundle(release, manifest)
    details = {"signed_by": signed_by[0] if signed_by else None,
               "trusted_keys": [fingerprint(key[1]) for key in after or []]}
    if reuse:
        check_installed_files(release, manifest)
    if version == current and reuse:
        if trust_changed:
            write_trusted_keys(layout, after)
        return {"action": "unchanged", "version": version, "previous": previous, **details}
    if not reuse:
        if os.path.lexists(release):
            if version in (current, previous):
                raise Failure("verify", f"release {version} is on the device with different files; "
                                        "build the bundle with a new --version")
            reap(release)
            remove(release)  # an unused or half-installed release of the same version
        layout.releases.mkdir(parents=True, exist_ok=True)
        os.replace(work / "extract", release)
    try:
        if not reuse:
            stage("install", f"creating releases/{version}/venv from the bundle's wheels")
            install(release)
        stage("smoke", "running each model once in the new venv")
        smoke = smoke_test(release)
        unit = write_service_unit(layout, release)
        if not reuse:
            (release / OK_MARKER).write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + "\n")
        wait_for_commit()
    except BaseException:
        if not reuse:
            reap(release)
            remove(release)
        raise
    if trust_changed:
        write_trusted_keys(layout, after)
    stage("activate", f"switching current to releases/{version}")
    layout.point(layout.current, version)
    if current and current != version:
        layout.point(layout.previous, current)
    prune(layout)
    return {"action": "activated", "version": version, "previous": current, "smoke": smoke,
            "service_unit": str(unit), **details}


def _same_bundle(release: Path, manifest: dict) -> bool:
    try:
        return json.loads((release / BUNDLE_MANIFEST).read_text()) == manifest
    except (OSError, ValueError):
        return False


def rollback(layout: Layout) -> dict:
    with Lock(layout):
        current, previous = layout.target(layout.current), layout.target(layout.previous)
        if not layout.is_complete(previous) or previous == current:
            raise Failure("rollback", f"no previous release to roll back to in {layout.root}")
        stage("verify", f"checking releases/{previous} against its manifest and the keys trusted now")
        workspace = Workspace(layout)
        try:
            signed_by = verify_installed(layout, previous, workspace.path)
        finally:
            workspace.close()
        stage("smoke", f"checking releases/{previous} still runs")
        smoke_test(layout.release(previous))
        layout.point(layout.current, previous)
        if current:
            layout.point(layout.previous, current)
        return {"action": "rolled back", "version": previous, "previous": current, "signed_by": signed_by}


def verify_installed(layout: Layout, version: str, work: Path):
    """Check an installed release before it becomes current again: its manifest's signature against the keys
    the device trusts now (a key untrusted since no longer passes; an unsigned release does not pass where
    keys are pinned) and its files as they are on disk now. Returns the signer's fingerprint, or None."""
    release = layout.release(version)
    try:
        raw = _read_limited(release / BUNDLE_MANIFEST, MAX_MANIFEST_BYTES)
        signature_path = release / BUNDLE_SIGNATURE
        signature = _read_limited(signature_path, MAX_SIGNATURE_BYTES) if os.path.lexists(signature_path) else None
        manifest = check_manifest(json.loads(raw))
    except (OSError, ValueError) as error:
        raise Failure("verify", f"releases/{version}: its manifest cannot be read ({error}); deploy its bundle "
                                "again") from None
    trusted = read_trusted_keys(layout)
    signer = authenticate(raw, signature, [trusted] if trusted else [], work)
    check_installed_files(release, manifest)
    return signer


def _read_limited(path: Path, limit: int) -> bytes:
    if path.is_symlink() or not path.is_file() or path.stat().st_size > limit:
        raise ValueError(f"{path.name} is not a regular file of at most {limit} bytes")
    return path.read_bytes()


def check_installed_files(release: Path, manifest: dict) -> None:
    """Every file the manifest lists, as it is on the device's disk now: a regular file with no link on its
    way, of the listed size and sha256. An installed release was verified when it came, but the disk may
    have changed since; it is checked so again before it becomes current (rollback, a redeploy of the same
    bundle)."""
    for entry in manifest["files"]:
        relative = entry["path"]
        path = release / relative
        on_the_way = [release / parent for parent in PurePosixPath(relative).parents if str(parent) != "."]
        if any(folder.is_symlink() for folder in on_the_way) or path.is_symlink() or not path.is_file():
            problem = "is missing or was replaced by a link"
        elif path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
            problem = "changed (sha256 mismatch)"
        else:
            continue
        raise Failure("verify", f"releases/{release.name}/{relative} {problem} on the device since it was "
                                "deployed; deploy its bundle again under a new --version")


def status(layout: Layout) -> dict:
    current, previous = layout.target(layout.current), layout.target(layout.previous)
    releases = []
    if layout.releases.is_dir():
        for path in sorted(layout.releases.iterdir()):
            if path.is_symlink() or name_problem(path.name):
                continue
            info = {"version": path.name, "complete": layout.is_complete(path.name),
                    "active": path.name == current, "signed_by": None}
            try:
                manifest = json.loads((path / BUNDLE_MANIFEST).read_text())
                info.update(name=manifest.get("name"), created=manifest.get("created"),
                            device=(manifest.get("device") or {}).get("name"),
                            models=[m["path"] for m in manifest.get("models", [])])
                if (path / BUNDLE_SIGNATURE).is_file():
                    info["signed_by"] = fingerprint(signature_key((path / BUNDLE_SIGNATURE).read_bytes())[1])
            except (OSError, ValueError, AttributeError, KeyError, TypeError):
                pass
            releases.append(info)
    try:
        trusted = [fingerprint(key[1]) for key in read_trusted_keys(layout) or []]
    except Failure as failure:
        trusted = [f"unreadable: {failure}"]
    active = next((r for r in releases if r["active"]), {})
    return {"action": "status", "dir": str(layout.root), "version": current, "previous": previous,
            "current_ok": layout.is_complete(current), "name": active.get("name"), "models": active.get("models"),
            "releases": releases, "trusted_keys": trusted, "hostname": socket.gethostname(),
            "arch": platform.machine(), "python": platform.python_version()}


def bench(layout: Layout, runs, threads) -> dict:
    current = layout.target(layout.current)
    if not layout.is_complete(current):
        raise Failure("bench", f"nothing deployed in {layout.root}; deploy a bundle first")
    release = layout.release(current)
    results = []
    for model in release_models(release):
        command = [str(release / "venv" / "bin" / "python"), "-m", "edgeml_runtime", "bench",
                   str(release / model), "--json"]
        command += ["--runs", str(runs)] if runs else []
        command += ["--threads", str(threads)] if threads else []
        stage("bench", f"benchmarking {model}")
        done = subprocess.run(command, capture_output=True, text=True, env=_clean_env())
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
            raise Failure("bench", f"{model}: {lines[-1]}")
        try:
            parsed = json.loads(done.stdout)
        except ValueError:
            raise Failure("bench", f"{model}: bench printed no JSON") from None
        results += parsed if isinstance(parsed, list) else [parsed]
    return {"action": "bench", "version": current, "results": results}


def prune(layout: Layout) -> None:
    """Keep current, previous and the KEEP_RELEASES newest installed releases; drop half-installed ones
    (and anything in releases/ that is not a release)."""
    in_use = {layout.target(layout.current), layout.target(layout.previous)}
    complete = sorted((p for p in layout.releases.iterdir() if layout.is_complete(p.name)),
                      key=lambda p: (p / OK_MARKER).stat().st_mtime, reverse=True)
    keep = in_use | {p.name for p in complete[:KEEP_RELEASES]}
    for path in layout.releases.iterdir():
        if path.name not in keep or path.is_symlink():
            if path.is_dir() and not path.is_symlink():
                reap(path)
            remove(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="edgeml-device")
    parser.add_argument("command", choices=["deploy", "status", "rollback", "bench"])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--bundle")
    parser.add_argument("--sha256")
    parser.add_argument("--receive", type=int, metavar="BYTES",
                        help="read the bundle (exactly BYTES) from stdin into --bundle, in DIR/staging/<folder>/")
    parser.add_argument("--trust-key", action="append", default=[], metavar="'TYPE BASE64'",
                        help="pin this public key in DIR/trusted_keys with this deploy (repeatable)")
    parser.add_argument("--untrust-key", action="append", default=[], metavar="SHA256:...",
                        help="unpin the key with this fingerprint with this deploy (repeatable)")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    layout = Layout(args.dir)

    def hang_up(signum, _frame):
        raise Interrupted(f"signal {signum}")

    signal.signal(signal.SIGHUP, hang_up)
    signal.signal(signal.SIGTERM, hang_up)
    try:
        if args.command == "deploy":
            if not args.bundle or not args.sha256:
                raise Failure("verify", "deploy needs --bundle and --sha256")
            if args.receive is not None and args.receive < 0:
                raise Failure("upload", "--receive takes a byte count")
            result = deploy(layout, Path(args.bundle), args.sha256, receive_bytes=args.receive,
                            trust=args.trust_key, untrust=args.untrust_key)
        elif args.command == "rollback":
            result = rollback(layout)
        elif args.command == "bench":
            result = bench(layout, args.runs, args.threads)
        else:
            result = status(layout)
    except Failure as failure:
        emit("error", stage=failure.stage, message=str(failure))
        return 1
    except Interrupted as interrupted:
        emit("error", stage="interrupted", message=f"deploy interrupted ({interrupted}); previous release kept")
        return 1
    except (OSError, ValueError, KeyError, tarfile.TarError, EOFError) as error:
        emit("error", stage="device", message=f"{type(error).__name__}: {error}")
        return 1
    except Exception as error:  # noqa: BLE001 - a hostile bundle must give an error event, never a traceback
        emit("error", stage="device", message=f"unexpected {type(error).__name__}: {error}")
        return 1
    emit("result", **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
