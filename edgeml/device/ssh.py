"""SSH transport through the system OpenSSH client (`ssh`), so the user's ~/.ssh/config, agent and
known_hosts work as usual. BatchMode is on: a missing key fails fast instead of prompting. Files travel on
the stdin of the session that uses them (see edgeml.device.deploy), not through a separate scp."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from edgeml_runtime.errors import EdgeMLError

__all__ = ["SshError", "SshOptions", "SshTarget", "Ssh", "remote_path"]

TARGET = re.compile(
    r"^(?:(?P<user>[^@\s]+)@)?(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:@\s\[\]]+))(?::(?P<port>\d+))?$"
)


class SshError(EdgeMLError):
    """ssh failed: no connection, refused key, or the remote command could not start."""


@dataclass(frozen=True)
class SshTarget:
    spec: str
    host: str
    user: Optional[str] = None
    port: Optional[int] = None

    @classmethod
    def parse(cls, spec: str) -> SshTarget:
        match = TARGET.match(spec.strip())
        if not match or (match.group("port") and not 0 < int(match.group("port")) < 65536):
            raise EdgeMLError(f"--host '{spec}' is not user@host[:port] (IPv6: user@[::1]:22)")
        # ssh would read a destination starting with '-' as an option (e.g. -oProxyCommand=...).
        if any(part and part.startswith("-") for part in (match.group("user"), match.group("host"))):
            raise EdgeMLError(f"--host '{spec}': a user or host name cannot start with '-'")
        port = int(match.group("port")) if match.group("port") else None
        return cls(spec, match.group("ipv6") or match.group("host"), match.group("user"), port)

    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host


@dataclass(frozen=True)
class SshOptions:
    identity: Optional[str] = None
    config: Optional[str] = None
    options: Tuple[str, ...] = field(default_factory=tuple)
    connect_timeout: int = 15

    def common(self) -> List[str]:
        args = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout}"]
        if self.config:
            args += ["-F", self.config]
        if self.identity:
            args += ["-i", self.identity]
        for option in self.options:
            args += ["-o", option]
        return args


def remote_path(path: str) -> str:
    """Quote a remote path (or a program's path or name) for the remote shell as one word, keeping a
    leading ~ as the login's $HOME; one starting with '-' becomes ./-... so no command takes it for an option."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    if path.startswith("-"):
        path = "./" + path
    return shlex.quote(path)


class Ssh:
    def __init__(self, target: SshTarget, options: SshOptions):
        self.target = target
        self.options = options

    def ssh_argv(self, command: str) -> List[str]:
        port = ["-p", str(self.target.port)] if self.target.port else []
        return [_tool("ssh"), *self.options.common(), *port, "--", self.target.destination(), command]

    def run(self, command: str, *, input: Optional[str] = None, timeout: Optional[float] = None,
            stage: str = "connect") -> subprocess.CompletedProcess:
        """Run a remote command; an ssh failure (exit 255) becomes SshError with ssh's own message."""
        try:
            done = subprocess.run(self.ssh_argv(command), input=input, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SshError(f"{stage}: no answer from {self.target.spec} within {timeout:.0f} s") from None
        if done.returncode == 255:
            raise SshError(f"{stage}: {last_line(done.stderr) or 'ssh failed'}")
        return done

    def popen(self, command: str) -> subprocess.Popen:
        return subprocess.Popen(self.ssh_argv(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, bufsize=1)


def last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SshError(f"the OpenSSH client ({name}) is not installed: apt-get install openssh-client")
    return path
