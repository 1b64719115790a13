"""Throw-away servers on 127.0.0.1 for the tests (fixtures in conftest.py files) and the benchmarks:
an OpenSSH server, a Mosquitto broker and `python -m edgeml_runtime serve`, each with its own port and
files; the machine's ~/.ssh and system services are never used. No pytest here: fixtures turn ToolMissing
into a skip (a failure in CI, see tests.support.marks.unavailable).

    server = SshServer(workdir); server.start()
    login = server.login()                  # a fresh key, with its own `ssh -F` config
    login.run("uname -m"); server.stop()

    broker = Broker(workdir); broker.start(); ... broker.port ...; broker.restart(); broker.stop()
    serve = ServeProcess([model, "--http", "127.0.0.1:0"], workdir); serve.http_url(); serve.stop()

Raises ToolMissing when sshd, ssh-keygen or mosquitto is not installed, ServerFailed when sshd does not
start, TimeoutError when nothing listens on a port in time.
"""

from __future__ import annotations

import getpass
import os
import shlex
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .cli import command

SFTP_SERVER = "/usr/lib/openssh/sftp-server"


class ToolMissing(RuntimeError):
    """sshd, ssh-keygen or mosquitto is not installed."""


class ServerFailed(RuntimeError):
    """sshd did not start."""


def require_tool(path_or_name: str) -> str:
    found = shutil.which(path_or_name)
    if found is None:
        raise ToolMissing(f"{path_or_name} is not installed (apt-get install openssh-server openssh-client)")
    return found


@dataclass
class SshLogin:
    """One authorized key on the test server and the client-side files to use it."""

    user: str
    host: str
    port: int
    identity: Path
    config: Path

    @property
    def target(self) -> str:
        """user@127.0.0.1:PORT, as `edgeml deploy --host` takes it."""
        return f"{self.user}@{self.host}:{self.port}"

    def ssh_args(self) -> List[str]:
        """ssh arguments up to (excluding) the remote command."""
        return ["ssh", "-F", str(self.config), "-p", str(self.port), f"{self.user}@{self.host}"]

    def deploy_args(self) -> List[str]:
        """`edgeml deploy` options that reach this login."""
        return ["--host", self.target, "-F", str(self.config)]

    def run(self, command: str, *, check: bool = False, timeout: float = 120, **kwargs):
        return subprocess.run([*self.ssh_args(), command], capture_output=True, text=True, check=check,
                              timeout=timeout, **kwargs)


class SshServer:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.host = "127.0.0.1"
        self.user = getpass.getuser()
        self.port = free_port()
        self.authorized_keys = workdir / "authorized_keys"
        self.known_hosts = workdir / "known_hosts"
        self.log = workdir / "sshd.log"
        self.process: Optional[subprocess.Popen] = None
        self._logins = 0

    def start(self) -> None:
        sshd = require_tool("/usr/sbin/sshd") if Path("/usr/sbin/sshd").exists() else require_tool("sshd")
        require_tool("ssh-keygen")
        host_key = self.workdir / "host_ed25519"
        _keygen(host_key)
        self.authorized_keys.write_text("")
        self.authorized_keys.chmod(0o600)
        self.known_hosts.write_text(f"[{self.host}]:{self.port} {(host_key.with_suffix('.pub')).read_text()}")
        config = self.workdir / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress {self.host}\nHostKey {host_key}\nPidFile {self.workdir / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.authorized_keys}\nAllowUsers {self.user}\n"
            "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\nUsePAM no\n"
            "StrictModes no\n"  # the key files live under /tmp, which is world-writable
            # an external sftp-server, so that scp/sftp also work through a login's forced command
            f"Subsystem sftp {SFTP_SERVER if Path(SFTP_SERVER).exists() else 'internal-sftp'}\nLogLevel VERBOSE\n"
        )
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
        self.process = subprocess.Popen([sshd, "-D", "-e", "-f", str(config), "-E", str(self.log)])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerFailed(f"sshd exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise ServerFailed("sshd did not start listening within 15 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def login(self, *, path_prefix: Sequence[os.PathLike] = (), environment: Optional[Dict[str, str]] = None,
              force_command: Optional[str] = None) -> SshLogin:
        """A new key authorized for this server, with optional per-login session set-up."""
        self._logins += 1
        name = f"login{self._logins}"
        key = self.workdir / name
        _keygen(key)
        prefix = ""
        if path_prefix or environment or force_command:
            session = self._session_script(name, path_prefix, environment or {}, force_command)
            prefix = f'command="{session}" '
        with open(self.authorized_keys, "a") as handle:
            handle.write(prefix + key.with_suffix(".pub").read_text())
        config = self.workdir / f"{name}.ssh_config"
        config.write_text(
            "Host *\n"
            f"  IdentityFile {key}\n  IdentitiesOnly yes\n  IdentityAgent none\n"
            f"  UserKnownHostsFile {self.known_hosts}\n  GlobalKnownHostsFile /dev/null\n"
            "  StrictHostKeyChecking yes\n  BatchMode yes\n  LogLevel ERROR\n"
        )
        return SshLogin(self.user, self.host, self.port, key, config)

    def _session_script(self, name, path_prefix, environment, force_command) -> Path:
        """The key's forced command: set PATH/environment, then run what the client asked for (or
        force_command). A script rather than authorized_keys environment=, because the login shell's
        rc files (e.g. pyenv in ~/.bashrc) run after environment= and would put their python3 first."""
        lines = ["#!/bin/sh", "# per-login session set-up written by tests/support/local_servers.py"]
        if path_prefix:
            lines.append(f"PATH={shlex.quote(':'.join(str(p) for p in path_prefix))}:\"$PATH\"; export PATH")
        lines += [f"{key}={shlex.quote(value)}; export {key}" for key, value in environment.items()]
        if force_command:
            lines.append(f"exec /bin/sh -c {shlex.quote(force_command)}")
        else:
            lines.append('[ -n "${SSH_ORIGINAL_COMMAND:-}" ] || exec /bin/sh -l')
            lines.append('exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"')
        script = self.workdir / f"{name}.session"
        script.write_text("\n".join(lines) + "\n")
        script.chmod(0o755)
        return script


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgeml-test", "-f", str(path)],
                   check=True, capture_output=True)  # writes PATH and PATH.pub


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


def mosquitto_binary() -> Optional[str]:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/bin/mosquitto") if os.path.exists(p)), None)


class Broker:
    """A real Mosquitto on 127.0.0.1, anonymous, no persistence; restartable on the same port.
    `no_delay` sets `set_tcp_nodelay true` (Nagle's algorithm off on the broker's client sockets)."""

    def __init__(self, workdir: Path, *, no_delay: bool = False):
        self.binary = mosquitto_binary()
        if self.binary is None:
            raise ToolMissing("mosquitto is not installed (apt-get install -y mosquitto)")
        self.port = free_port()
        self.config = Path(workdir) / f"mosquitto-{self.port}.conf"
        self.config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                               f"set_tcp_nodelay {'true' if no_delay else 'false'}\n")
        self.log = Path(workdir) / f"mosquitto-{self.port}.log"
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=log, stderr=log)
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        time.sleep(0.3)
        self.start()


class ServeProcess:
    """`python -m edgeml_runtime serve ...` in a subprocess, stderr captured to a file."""

    def __init__(self, args, workdir: Path):
        self.stderr_path = Path(workdir) / "serve.stderr"
        with open(self.stderr_path, "wb") as stderr:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(command("edgeml_runtime", "serve", *args), stdout=subprocess.DEVNULL,
                                            stderr=stderr, cwd=workdir)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.stderr
            if text in log:
                return log
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}:\n{log}")
            time.sleep(0.05)
        raise TimeoutError(f"'{text}' not in serve's stderr after {timeout} s:\n{self.stderr}")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def http_url(self) -> str:
        log = self.wait_for("http listening on ")
        return log.split("http listening on ", 1)[1].split()[0]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode
