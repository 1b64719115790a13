"""Bundle signatures through OpenSSH's `ssh-keygen -Y sign` / `-Y verify` (no new dependency: devices that
are reached over SSH have it).

A signed bundle's second member, right after the manifest, is `edgeml-bundle.json.sig`: an armored SSHSIG
signature (namespace "edgeml-bundle") of the manifest's exact bytes. The manifest lists every other
file's size and sha256, so the signature covers the whole bundle, and the device checks it before it
reads anything else. Devices pin keys in DIR/trusted_keys (`edgeml deploy --trust`); the parsing and
fingerprint helpers are the agent's own (edgeml/device/agent.py), so both ends read keys the same way.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable

from edgeml_runtime import formats
from edgeml_runtime.errors import EdgeMLError

from edgeml.device import agent

__all__ = ["SigningError", "fingerprint", "read_public_key", "sign", "signer", "verify"]


class SigningError(EdgeMLError):
    """A key cannot be read or used, or ssh-keygen is missing."""


def sign(data: bytes, key: Path) -> bytes:
    """An SSHSIG signature of `data` by `key` (a private key file, or a .pub whose private key is in
    ssh-agent). ssh-keygen may ask for the key's passphrase on the terminal."""
    key = Path(key)
    if not key.is_file():
        raise SigningError(f"signing key not found: {key}")
    with tempfile.TemporaryDirectory(prefix="edgeml-sign-") as tmp:
        message = Path(tmp) / "manifest"
        message.write_bytes(data)
        # A file argument, not stdin: ssh-keygen may read a passphrase from stdin when there is no terminal.
        done = subprocess.run([_ssh_keygen(), "-Y", "sign", "-f", str(key), "-n", formats.SIGNATURE_NAMESPACE,
                               str(message)], capture_output=True, text=True)
        signature = message.with_name("manifest.sig")
        if done.returncode != 0 or not signature.is_file():
            lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("Signing")]
            raise SigningError(f"ssh-keygen could not sign with {key}: {lines[-1] if lines else 'no output'}")
        return signature.read_bytes()


def signer(signature: bytes) -> str:
    """The fingerprint (SHA256:...) of the key a signature claims to be from (not a verification)."""
    try:
        return agent.fingerprint(agent.signature_key(signature)[1])
    except ValueError as error:
        raise SigningError(str(error)) from None


def read_public_key(path: Path) -> str:
    """'TYPE BASE64' of the one OpenSSH public key in `path` (a .pub file)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SigningError(f"cannot read public key {path}: {error}") from None
    if "PRIVATE KEY" in text:
        raise SigningError(f"{path} is a private key: pass its public half (the .pub file)")
    keys = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if len(keys) != 1:
        raise SigningError(f"{path} must hold exactly one public key line, not {len(keys)}")
    try:
        key_type, encoded = agent.parse_public_key(keys[0])
    except ValueError as error:
        raise SigningError(f"{path}: {error}") from None
    return f"{key_type} {encoded}"


def fingerprint(public_key: str) -> str:
    """SHA256:... of a 'TYPE BASE64' key, as `ssh-keygen -l` prints it."""
    return agent.fingerprint(agent.parse_public_key(public_key)[1])


def verify(data: bytes, signature: bytes, public_keys: Iterable[str]) -> bool:
    """Whether `signature` is a valid signature of `data` by one of `public_keys` ('TYPE BASE64')."""
    keys = [agent.parse_public_key(key) for key in public_keys]
    with tempfile.TemporaryDirectory(prefix="edgeml-verify-") as tmp:
        try:
            return agent.ssh_keygen_verify(keys, data, signature, Path(tmp))
        except agent.Failure as failure:
            raise SigningError(str(failure)) from None


def _ssh_keygen() -> str:
    tool = shutil.which("ssh-keygen")
    if tool is None:
        raise SigningError("ssh-keygen (OpenSSH) is not installed: apt-get install openssh-client")
    return tool
