"""`edgeml deploy` vs a hand-written deploy, over a real OpenSSH server on 127.0.0.1, in one run.

By hand: scp the bundle, then over ssh untar it and run its install.sh (a deploy script without checks).
`edgeml deploy` adds the sha256 of every file, a smoke run of each model, the atomic switch of `current`
and keeps the previous release. Each round runs both, in alternating order, into fresh releases of the
same bundle contents; prints median seconds and the ratio, then `--rollback` and `--status` times.
Needs sshd and ssh-keygen (apt-get install openssh-server openssh-client); the "device" is this machine.
Run: python -m benchmarks.deploy_time [--rounds 3]
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from benchmarks.common import median_ratio, print_header
from tests.support import cli
from tests.support.local_servers import SshLogin, SshServer  # the tests' throw-away OpenSSH server
from tests.support.models import TINY


def edgeml(*args) -> subprocess.CompletedProcess:
    done = cli.edgeml(*args, timeout=None)
    if done.returncode != 0:
        sys.exit(f"edgeml {args[0]} failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    return done


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def by_hand(login: SshLogin, bundle: Path, target: Path) -> None:
    """What a hand-written script does: copy, unpack, install. No checks, no switch, no rollback."""
    scp = ["scp", "-q", "-F", str(login.config), "-P", str(login.port)]
    subprocess.run([*scp, str(bundle), f"{login.user}@{login.host}:{target}.tar.gz"], check=True)
    unpack = (f"mkdir -p {shlex.quote(str(target))} && tar xzf {shlex.quote(str(target))}.tar.gz "
              f"-C {shlex.quote(str(target))} && sh {shlex.quote(str(target))}/*/install.sh")
    done = login.run(unpack, timeout=600)
    if done.returncode != 0:
        sys.exit(f"the hand-written deploy failed: {done.stderr.strip()[-800:]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print_header("edgeml deploy vs a hand-written deploy (scp, untar, install.sh) over ssh to 127.0.0.1")
    with tempfile.TemporaryDirectory(prefix="edgeml-deploy-bench-") as scratch:
        work = Path(scratch)
        (work / "sshd").mkdir()
        server = SshServer(work / "sshd")
        server.start()
        try:
            run_rounds(server.login(), work, args.rounds)
        finally:
            server.stop()


def run_rounds(login: SshLogin, work: Path, rounds: int) -> None:
    python = ".".join(login.run("python3 -c 'import sys; print(*sys.version_info[:2])'", check=True).stdout.split())
    device, hand_dir = work / "device" / "edgeml", work / "device" / "by-hand"
    hand_dir.mkdir(parents=True)
    reach = [*login.deploy_args(), "--dir", str(device)]
    times = {"bundle": [], "by hand": [], "edgeml deploy": [], "rollback": [], "status": []}
    for index in range(rounds):
        bundle = work / f"r{index}.tar.gz"
        build = partial(edgeml, "bundle", TINY["onnx"], "--device", "generic-x86_64", "--python", python,
                        "--version", f"r{index}", "-o", bundle)
        times["bundle"].append(timed(build))
        steps = [("by hand", partial(by_hand, login, bundle, hand_dir / f"r{index}")),
                 ("edgeml deploy", partial(edgeml, "deploy", bundle, *reach))]
        for name, step in steps if index % 2 == 0 else steps[::-1]:  # alternate: drift hits both alike
            times[name].append(timed(step))
        if index > 0:
            times["rollback"].append(timed(partial(edgeml, "deploy", "--rollback", *reach)))
            edgeml("deploy", "--rollback", *reach)  # back to this round's release
        times["status"].append(timed(partial(edgeml, "deploy", "--status", *reach)))
    size_mb = (work / "r0.tar.gz").stat().st_size / 1e6
    print(f"tiny ONNX model, {size_mb:.1f} MB offline bundle (numpy + onnxruntime wheels), Python {python}, "
          f"ssh to 127.0.0.1; median seconds of {rounds} rounds")
    for name, values in times.items():
        if values:
            each = ", ".join(f"{value:.2f}" for value in values)
            print(f"  {name:<14} {statistics.median(values):6.2f} s   (rounds: {each})")
    ratio = median_ratio(times["by hand"], times["edgeml deploy"])
    print(f"edgeml deploy / by hand: {ratio:.2f}x (per-round ratio, median) for verification, smoke test, "
          "atomic switch and a kept previous release")


if __name__ == "__main__":
    main()
