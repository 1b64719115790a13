"""Which test suites this machine can run, and the one command that enables the others.

    python -m tests.support.system_deps packages     # the Debian packages the tests talk to (make system-deps)
    python -m tests.support.system_deps summary      # end of `make test`: a loud note naming skipped suites

The tests themselves skip (or fail under CI) when a tool is missing (tests.support.marks.unavailable); this
module says the same thing once, at the end of `make test`, so that a green run on a fresh machine does not
hide that whole suites did not run. Standard library only.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Callable, List, NamedTuple

# What `make system-deps` installs (Debian/Ubuntu package names).
PACKAGES = ("openssh-server", "openssh-client", "mosquitto", "debootstrap", "rsync", "ca-certificates", "systemd",
            "chromium")
ENABLE = "sudo make system-deps"


class Suite(NamedTuple):
    name: str
    needs: str
    present: Callable[[], bool]
    enable: str = ENABLE


def _tool(*candidates: str) -> Callable[[], bool]:
    return lambda: any(shutil.which(name) or Path(name).is_file() for name in candidates)


def _emulated_pi() -> bool:
    """The emulated Pi is built by root (debootstrap) or already in the cache."""
    root = os.environ.get("EDGEML_CACHE") or str(Path.home() / ".cache" / "edgeml")
    built = (Path(root) / "emulated").is_dir() and any((Path(root) / "emulated").iterdir())
    return built or (hasattr(os, "geteuid") and os.geteuid() == 0 and _tool("debootstrap", "/usr/sbin/debootstrap")())


def _onnx2tf_env() -> bool:
    """`edgeml setup onnx2tf` (make onnx2tf-env) finished: its stamp file is written last."""
    root = os.environ.get("EDGEML_CACHE") or str(Path.home() / ".cache" / "edgeml")
    return (Path(root) / "tools" / "onnx2tf" / "edgeml-tool.json").is_file()


SUITES = (
    Suite("deploy over SSH (tests/devices, tests/emulated: edgeml deploy to a local sshd)", "openssh-server",
          _tool("/usr/sbin/sshd", "sshd")),
    Suite("MQTT serving (tests/serving, marked mqtt: a local Mosquitto)", "mosquitto",
          _tool("mosquitto", "/usr/sbin/mosquitto")),
    Suite("the emulated Raspberry Pi (tests/emulated)", "root and debootstrap", _emulated_pi),
    Suite("HTML reports in a real browser (tests/cli/test_reports.py, tests/trainer/test_quickstart.py)",
          "chromium", _tool("chromium", "chromium-browser", "/usr/bin/chromium")),
    Suite("systemd unit checks (systemd-analyze verify)", "systemd", _tool("systemd-analyze")),
    Suite("ONNX -> TFLite (tests/converters/test_onnx2tf_route.py, test_onnx_source.py)",
          "the onnx2tf tool environment (no root needed)", _onnx2tf_env, "make onnx2tf-env"),
)


def missing() -> List[Suite]:
    return [suite for suite in SUITES if not suite.present()]


def summary() -> str:
    skipped = missing()
    if not skipped:
        return ("all test suites ran: sshd, Mosquitto, the emulated Pi, Chromium, systemd and the onnx2tf environment "
                "are here")
    bar = "=" * 100
    lines = [bar, f"NOTE: {len(skipped)} test suite(s) were SKIPPED: this machine lacks what they talk to", ""]
    lines += [f"  - {suite.name}: needs {suite.needs}" for suite in skipped]
    enable = "  and  ".join(dict.fromkeys(suite.enable for suite in skipped))
    lines += ["", f"Enable them with:  {enable}   (then run make test again; the emulated Pi needs make test as root,",
              "as CI runs it)", bar]
    return "\n".join(lines)


def main(argv: List[str]) -> int:
    command = argv[0] if argv else "summary"
    if command == "packages":
        print(" ".join(PACKAGES))
    elif command == "summary":
        print(summary(), file=sys.stderr)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
