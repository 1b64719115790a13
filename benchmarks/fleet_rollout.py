"""Wall time to deploy one bundle to N loopback devices: the `--host` fan-out (threads in edgeml, one per
host) vs `--inventory` (ansible-playbook, forks = cores), with N = 1, 4, 16 by default.

Every device is its own OpenSSH server on 127.0.0.1 (its own port, so Ansible gets no shared connection)
with its own deploy directory; the devices are this machine, so N devices share its cores (a real fleet
installs on N boards at once: what grows here with N is mostly the install, not the path). Each round
builds a bundle with a new version (so every deploy really installs a venv) and runs both paths, in
alternating order, onto their own devices; prints median seconds per path and the ratio Ansible / --host.
Needs sshd, ssh-keygen and ansible-core (pip install 'edgeml[fleet]'). Takes a few minutes at N = 16.
Run: python -m benchmarks.fleet_rollout [--devices 1,4,16] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from tests.support import cli
from tests.support.local_servers import SshServer  # the tests' throw-away OpenSSH server
from tests.support.models import TINY


def edgeml(*args, env=None) -> subprocess.CompletedProcess:
    done = cli.edgeml(*args, timeout=None, env=env)
    if done.returncode != 0:
        sys.exit(f"edgeml {' '.join(map(str, args[:2]))} failed ({done.returncode}): {done.stderr.strip()[-1500:]}")
    return done


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


class Devices:
    """N sshd servers; one ssh config (-F) with a Host alias per device and every server's host key."""

    def __init__(self, work: Path, count: int):
        self.servers = []
        for index in range(count):
            (work / f"sshd{index}").mkdir()
            self.servers.append(SshServer(work / f"sshd{index}"))
            self.servers[-1].start()
        # Each device its own $HOME (the --host path has one --dir for every host, "~/..." here).
        homes = [work / f"home{index}" for index in range(count)]
        for home in homes:
            home.mkdir()
        logins = [server.login(environment={"HOME": str(home)}) for server, home in zip(self.servers, homes)]
        # One alias per device (Host devN: its port and key), as a fleet's ssh config would have them.
        self.config = work / "fleet.ssh_config"
        self.config.write_text(
            "".join(f"Host dev{index}\n  HostName 127.0.0.1\n  Port {server.port}\n  IdentityFile {login.identity}\n"
                    for index, (server, login) in enumerate(zip(self.servers, logins)))
            + "Host *\n  IdentitiesOnly yes\n  IdentityAgent none\n"
            + f"  UserKnownHostsFile {' '.join(str(s.known_hosts) for s in self.servers)}\n"
            + "  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  BatchMode yes\n  LogLevel ERROR\n")
        self.login = logins[0]

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def inventory(self, path: Path, remote_dir: str, python: str) -> Path:
        hosts = {f"dev{index}": {"ansible_user": server.user, "edgeml_dir": remote_dir,
                                 "edgeml_python": python}
                 for index, server in enumerate(self.servers)}
        path.write_text(json.dumps({"all": {"hosts": hosts}}))
        return path

    def host_args(self) -> list:
        return [arg for index, server in enumerate(self.servers) for arg in ("--host", f"{server.user}@dev{index}")]


def run_size(count: int, rounds: int, work: Path, python: str, version: str) -> dict:
    devices = Devices(work, count)
    env = {**os.environ, "ANSIBLE_FORKS": str(os.cpu_count() or 1)}
    times = {"--host": [], "--inventory": []}
    try:
        for index in range(rounds):
            bundle = work / f"n{count}-r{index}.tar.gz"
            edgeml("bundle", TINY["onnx"], "--device", "generic-x86_64", "--python", version,
                   "--version", f"n{count}-r{index}", "-o", bundle)
            # One deploy directory per path and round, so both install this round's release from scratch.
            inventory = devices.inventory(work / f"inventory-r{index}.json", f"~/fleet-path-r{index}", python)
            steps = [("--host", partial(edgeml, "deploy", bundle, *devices.host_args(), "-F", devices.config,
                                        "--dir", f"~/host-path-r{index}", "--remote-python", python)),
                     ("--inventory", partial(edgeml, "deploy", bundle, "--inventory", inventory, "-F", devices.config,
                                             env=env))]
            for name, step in steps if index % 2 == 0 else steps[::-1]:  # alternate: drift hits both alike
                times[name].append(timed(step))
    finally:
        devices.stop()
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", default="1,4,16", help="comma-separated fleet sizes")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    sizes = [int(size) for size in args.devices.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgeml-fleet-bench-") as scratch:
        work = Path(scratch)
        (work / "probe").mkdir()
        probe = SshServer(work / "probe")
        probe.start()
        try:
            # The device's Python by its path (a pyenv shim would add its own start-up to every Ansible module).
            python = probe.login().run("python3 -c 'import sys; print(sys.executable)'", check=True).stdout.strip()
            version = probe.login().run("python3 -c 'import sys; print(*sys.version_info[:2], sep=\".\")'",
                                        check=True).stdout.strip()
        finally:
            probe.stop()
        for count in sizes:
            (work / f"n{count}").mkdir()
            times = run_size(count, args.rounds, work / f"n{count}", python, version)
            rows.append((count, times))
            report(rows[-1:])
    print(f"\none bundle (tiny ONNX model + numpy/onnxruntime wheels, installed offline) to N loopback devices; "
          f"{os.cpu_count()} cores, Ansible forks = cores; median seconds of {args.rounds} round(s)")
    report(rows)


def report(rows) -> None:
    print(f"{'N':>4} {'--host':>10} {'--inventory':>12} {'ratio':>7}   rounds (--host | --inventory)")
    for count, times in rows:
        host, fleet = statistics.median(times["--host"]), statistics.median(times["--inventory"])
        each = " | ".join(" ".join(f"{v:.1f}" for v in times[path]) for path in ("--host", "--inventory"))
        print(f"{count:>4} {host:>9.1f}s {fleet:>11.1f}s {fleet / host:>6.2f}x   {each}", flush=True)


if __name__ == "__main__":
    main()
