"""Facts about the machine a benchmark ran on, read from what Linux exposes (absent elsewhere)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

__all__ = ["machine_info"]

# ARM "CPU part" codes in /proc/cpuinfo for the cores found on common boards.
ARM_CORES = {
    "0xd03": "Cortex-A53",
    "0xd04": "Cortex-A35",
    "0xd05": "Cortex-A55",
    "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72",
    "0xd09": "Cortex-A73",
    "0xd0b": "Cortex-A76",
    "0xd41": "Cortex-A78",
    "0xd42": "Cortex-A78AE",
    "0xc07": "Cortex-A7",
    "0xc0f": "Cortex-A15",
}


def machine_info() -> dict:
    """arch, cpu, cores, python, os, plus board, governor, frequency and temperature where known.

    `emulated` is set when the run happens under an emulator (the edgeml emulated Pi sets
    EDGEML_EMULATED), because emulated latency says nothing about the real device's latency.
    """
    info = {
        "arch": os.uname().machine if hasattr(os, "uname") else sys.platform,
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 1,
        "python": "{}.{}.{}".format(*sys.version_info[:3]),
        "os": operating_system(),
        "board": _read_text("/proc/device-tree/model"),
        "governor": _read_text("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "cpu_max_mhz": _khz_to_mhz(_read_text("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")),
        "temperature_c": cpu_temperature(),
        "emulated": os.environ.get("EDGEML_EMULATED") or None,
    }
    return info


def operating_system() -> str:
    """e.g. 'Debian GNU/Linux 12 (bookworm), Linux 6.6.51+rpt-rpi-v8'."""
    pretty = None
    for line in (_read_text("/etc/os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            pretty = line.split("=", 1)[1].strip('"')
    uname = os.uname() if hasattr(os, "uname") else None  # platform module avoided: slow to import
    kernel = f"{uname.sysname} {uname.release}" if uname else sys.platform
    return f"{pretty}, {kernel}" if pretty else kernel


def cpu_model() -> str:
    cpuinfo = _read_text("/proc/cpuinfo") or ""
    fields = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    part = fields.get("CPU part")
    if part:
        # ARM: the part code names the core (Cortex-A72 on a Pi 4); "model name", when present at all,
        # only says "ARMv8 Processor rev 3 (v8l)" (qemu prints that too).
        return ARM_CORES.get(part.lower(), fields.get("model name") or f"ARM part {part}")
    if fields.get("model name"):
        return fields["model name"]
    return fields.get("Hardware") or (os.uname().machine if hasattr(os, "uname") else "unknown")


def cpu_temperature() -> Optional[float]:
    raw = _read_text("/sys/class/thermal/thermal_zone0/temp")
    try:
        return round(int(raw) / 1000.0, 1) if raw else None
    except ValueError:
        return None


def _khz_to_mhz(raw: Optional[str]) -> Optional[float]:
    try:
        return round(int(raw) / 1000.0, 1) if raw else None
    except ValueError:
        return None


def _read_text(path: str) -> Optional[str]:
    try:
        return Path(path).read_text(errors="replace").strip().strip("\x00") or None
    except OSError:
        return None
