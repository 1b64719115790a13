"""Device profiles: TOML files describing a board (CPU, Python, wheel platforms, backends).

Two kinds: Linux boards (`kind = "linux"`, the default) run edgeml_runtime and get bundles; microcontrollers
(`kind = "mcu"`) run TensorFlow Lite Micro and are described by their core, clock, RAM, flash and the
datasheets those figures come from (`source`). `edgeml inspect MODEL --device NAME` checks a model against
either kind.

Profiles come from three places, later ones overriding earlier ones of the same name: the profiles
shipped in the package (`edgeml.profiles`, the repository's `devices/` folder), the user's
`~/.config/edgeml/devices` (or `$XDG_CONFIG_HOME/edgeml/devices`), and directories given with
`--profiles DIR`.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from edgeml_runtime.errors import EdgeMLError
from edgeml_runtime.formats import BACKENDS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.9/3.10 only
    import tomli as tomllib

__all__ = ["ARCHES", "BACKEND_PACKAGES", "FPUS", "KINDS", "MCU_ARCHES", "DeviceProfile", "McuFacts", "ProfileError",
           "get_profile", "load_profiles", "profile_dirs", "require_linux"]

ARCHES = ("aarch64", "armv7l", "x86_64")
# Runtime backend name -> the pip distribution that provides it.
BACKEND_PACKAGES = {name: backend.distribution for name, backend in BACKENDS.items()}
# An `[emulation]` table makes a profile buildable by `edgeml devices emulate` (Debian userland + qemu-user).
EMULATION_KEYS = {"suite": str, "debian_arch": str, "qemu_cpu": str, "glibc": str}
REQUIRED = {"name": str, "description": str, "arch": str, "cpu": str, "cores": int, "ram_mb": int, "os": str,
            "python": str, "platforms": list, "backends": list, "threads": int}

KINDS = ("linux", "mcu")
# Microcontroller profiles: the instruction set (what optimized kernels and compilers key on), the figures a fit
# verdict needs, and where they come from. No Python, wheels or backends: TFLM is compiled into the firmware.
MCU_ARCHES = ("armv6-m", "armv7-m", "armv7e-m", "armv8-m.base", "armv8-m.main", "armv8.1-m.main",
              "xtensa-lx6", "xtensa-lx7", "rv32imac", "rv32imafc")
FPUS = ("none", "single", "double")
MCU_REQUIRED = {"name": str, "description": str, "kind": str, "cpu": str, "core": str, "arch": str, "clock_mhz": int,
                "ram_kb": int, "flash_kb": int, "source": str}
MCU_OPTIONAL = {"cores": int, "fpu": str, "dsp": bool, "contiguous_ram_kb": int, "external_ram_kb": int,
                "kernels": str, "notes": str, "pins": list}
LINUX_ONLY = ("ram_mb", "os", "python", "platforms", "backends", "threads", "emulation")


class ProfileError(EdgeMLError):
    """A device profile is missing, unknown, or not valid TOML with the expected fields."""


@dataclass(frozen=True)
class McuFacts:
    """What a microcontroller offers a TFLM model, from the vendors' datasheets (`source`)."""

    core: str  # e.g. "Arm Cortex-M4F"
    clock_mhz: int
    ram_kb: int  # on-chip SRAM, all banks
    flash_kb: int  # on-chip flash, or the board's external flash chip for flash-less parts
    source: str  # the datasheets the figures come from
    fpu: str = "none"  # "none", "single" or "double" precision
    dsp: bool = False  # DSP/SIMD instructions that optimized int8 kernels (CMSIS-NN, ESP-NN) use
    contiguous_ram_kb: Optional[int] = None  # the largest block of SRAM, where the tensor arena must fit
    external_ram_kb: int = 0  # PSRAM/SDRAM on the board: larger but slower, not counted in ram_kb
    kernels: str = ""  # the optimized TFLM kernel library for this core

    @property
    def ram_bytes(self) -> int:
        return self.ram_kb * 1024

    @property
    def flash_bytes(self) -> int:
        return self.flash_kb * 1024

    @property
    def arena_limit_bytes(self) -> int:
        """The largest tensor arena the chip can hold: one contiguous block of SRAM."""
        return (self.contiguous_ram_kb or self.ram_kb) * 1024


@dataclass(frozen=True)
class DeviceProfile:
    """A board. Linux boards fill every field; microcontrollers (`kind == "mcu"`) carry their figures in
    `mcu` and leave the Linux-only ones empty (`ram_mb` 0, no python, platforms or backends).

    `source` is the file the profile was read from; a microcontroller's datasheet reference (its TOML key
    `source`) is `mcu.source`, shown as `figures_source` by `to_dict()`."""

    name: str
    description: str
    arch: str
    cpu: str
    cores: int
    ram_mb: int
    os: str
    python: str
    platforms: Tuple[str, ...]
    backends: Tuple[str, ...]
    threads: int
    notes: str = ""
    pins: Tuple[str, ...] = ()
    source: str = ""
    emulation: Dict[str, str] = field(default_factory=dict)
    extra: Dict[str, object] = field(default_factory=dict)
    kind: str = "linux"
    mcu: Optional[McuFacts] = None

    @property
    def is_mcu(self) -> bool:
        return self.kind == "mcu"

    def to_dict(self) -> dict:
        if self.mcu is not None:
            return self._mcu_dict()
        data = {
            "name": self.name, "kind": self.kind, "description": self.description, "arch": self.arch, "cpu": self.cpu,
            "cores": self.cores, "ram_mb": self.ram_mb, "os": self.os, "python": self.python,
            "platforms": list(self.platforms), "backends": list(self.backends), "threads": self.threads,
            "pins": list(self.pins), "notes": self.notes,
        }
        if self.emulation:
            data["emulation"] = dict(self.emulation)
        data.update(self.extra)
        return data

    def _mcu_dict(self) -> dict:
        mcu = self.mcu
        data = {
            "name": self.name, "kind": self.kind, "description": self.description, "cpu": self.cpu,
            "core": mcu.core, "arch": self.arch, "cores": self.cores, "clock_mhz": mcu.clock_mhz,
            "ram_kb": mcu.ram_kb, "flash_kb": mcu.flash_kb, "fpu": mcu.fpu, "dsp": mcu.dsp,
        }
        if mcu.contiguous_ram_kb is not None:
            data["contiguous_ram_kb"] = mcu.contiguous_ram_kb
        if mcu.external_ram_kb:
            data["external_ram_kb"] = mcu.external_ram_kb
        data.update({"kernels": mcu.kernels, "pins": list(self.pins), "notes": self.notes,
                     "figures_source": mcu.source})
        data.update(self.extra)
        return data


def user_profile_dir() -> Path:
    config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(config_home) / "edgeml" / "devices"


def profile_dirs(extra_dirs: Iterable[os.PathLike] = ()) -> List[Path]:
    """Where profiles are read from, lowest priority first."""
    builtin = Path(str(resources.files("edgeml.profiles")))
    return [builtin, user_profile_dir(), *(Path(d).expanduser() for d in extra_dirs)]


def load_profiles(extra_dirs: Iterable[os.PathLike] = ()) -> Dict[str, DeviceProfile]:
    """Every profile by name; a user's profile replaces a shipped one of the same name."""
    extra_dirs = list(extra_dirs)
    for directory in extra_dirs:
        if not Path(directory).expanduser().is_dir():
            raise ProfileError(f"profile directory not found: {directory}; pass an existing folder of .toml files")
    profiles = {}
    for directory in profile_dirs(extra_dirs):
        if directory.is_dir():
            for path in sorted(directory.glob("*.toml")):
                profile = read_profile(path)
                profiles[profile.name] = profile
    return profiles


def get_profile(name_or_path: str, extra_dirs: Iterable[os.PathLike] = ()) -> DeviceProfile:
    """A profile by name, or read from a .toml file path."""
    if name_or_path.endswith(".toml"):
        return read_profile(Path(name_or_path))
    profiles = load_profiles(extra_dirs)
    if name_or_path not in profiles:
        known = ", ".join(sorted(profiles))
        guess = closest_match(name_or_path, profiles)
        hint = f"did you mean '{guess}'? " if guess else ""
        raise ProfileError(f"unknown device '{name_or_path}'; {hint}known devices: {known}")
    return profiles[name_or_path]


def read_profile(path: Path) -> DeviceProfile:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"device profile not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ProfileError(f"{path}: not valid TOML ({error}); fix the file") from None
    return profile_from_dict(data, str(path))


def require_linux(profile: DeviceProfile, purpose: str) -> DeviceProfile:
    """`profile`, or a ProfileError saying that `purpose` (e.g. "a bundle") needs a Linux board."""
    if profile.is_mcu:
        raise ProfileError(
            f"'{profile.name}' is a microcontroller ({profile.mcu.core}) and {purpose} needs a Linux board; "
            f"for a microcontroller, `edgeml convert MODEL --int8 --to tflm` writes TFLM sources and "
            f"`edgeml inspect MODEL.tflite --device {profile.name}` says whether the model fits")
    return profile


def profile_from_dict(data: dict, source: str) -> DeviceProfile:
    kind = data.get("kind", "linux")
    if kind not in KINDS:
        raise ProfileError(f"{source}: invalid device profile: 'kind' must be one of {', '.join(KINDS)}")
    if kind == "mcu":
        return _mcu_profile(data, source)
    problems = []
    for key, kind in REQUIRED.items():
        if key not in data:
            problems.append(f"missing '{key}'")
        elif not isinstance(data[key], kind) or isinstance(data[key], bool):
            problems.append(f"'{key}' must be a {kind.__name__}")
    if not problems:
        problems += _check_values(data)
    if problems:
        raise ProfileError(f"{source}: invalid device profile: {'; '.join(problems)}")
    known = set(REQUIRED) | {"notes", "pins", "emulation", "kind"}
    return DeviceProfile(
        name=data["name"], description=data["description"], arch=data["arch"], cpu=data["cpu"],
        cores=data["cores"], ram_mb=data["ram_mb"], os=data["os"], python=data["python"],
        platforms=tuple(data["platforms"]), backends=tuple(data["backends"]), threads=data["threads"],
        notes=str(data.get("notes", "")).strip(), pins=tuple(data.get("pins", ())), source=source,
        emulation=dict(data.get("emulation") or {}),
        extra={k: v for k, v in data.items() if k not in known},
    )


def _mcu_profile(data: dict, source: str) -> DeviceProfile:
    problems = []
    for key, kind in {**MCU_REQUIRED, **MCU_OPTIONAL}.items():
        if key not in data:
            if key in MCU_REQUIRED:
                problems.append(f"missing '{key}'")
        elif not isinstance(data[key], kind) or (kind is int and isinstance(data[key], bool)):
            problems.append(f"'{key}' must be a {kind.__name__}")
    if not problems:
        problems += _check_mcu_values(data)
    if problems:
        raise ProfileError(f"{source}: invalid microcontroller profile: {'; '.join(problems)}")
    known = set(MCU_REQUIRED) | set(MCU_OPTIONAL)
    mcu = McuFacts(
        core=data["core"], clock_mhz=data["clock_mhz"], ram_kb=data["ram_kb"], flash_kb=data["flash_kb"],
        source=data["source"].strip(), fpu=data.get("fpu", "none"), dsp=data.get("dsp", False),
        contiguous_ram_kb=data.get("contiguous_ram_kb"), external_ram_kb=data.get("external_ram_kb", 0),
        kernels=data.get("kernels", ""),
    )
    cores = data.get("cores", 1)
    return DeviceProfile(
        name=data["name"], description=data["description"], arch=data["arch"], cpu=data["cpu"], cores=cores,
        ram_mb=0, os="", python="", platforms=(), backends=(), threads=cores,
        notes=str(data.get("notes", "")).strip(), pins=tuple(data.get("pins", ())), source=source,
        extra={k: v for k, v in data.items() if k not in known}, kind="mcu", mcu=mcu,
    )


def _name_and_arch_problems(data: dict, arches) -> List[str]:
    problems = []
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", data["name"]):
        problems.append("'name' may only hold letters, digits, '.', '_' and '-'")
    if data["arch"] not in arches:
        problems.append(f"'arch' must be one of {', '.join(arches)}")
    return problems


def _check_mcu_values(data: dict) -> List[str]:
    problems = _name_and_arch_problems(data, MCU_ARCHES)
    if data.get("fpu", "none") not in FPUS:
        problems.append(f"'fpu' must be one of {', '.join(FPUS)}")
    sizes = ("clock_mhz", "ram_kb", "flash_kb", "cores", "contiguous_ram_kb")
    if any(key in data and data[key] < 1 for key in sizes) or data.get("external_ram_kb", 0) < 0:
        problems.append("'clock_mhz', 'ram_kb', 'flash_kb', 'cores' and 'contiguous_ram_kb' must be positive")
    elif data.get("contiguous_ram_kb", 0) > data["ram_kb"]:
        problems.append("'contiguous_ram_kb' cannot exceed 'ram_kb'")
    if not data["source"].strip():
        problems.append("'source' must name the datasheets the figures come from")
    linux = [key for key in LINUX_ONLY if key in data]
    if linux:
        problems.append(f"{', '.join(repr(key) for key in linux)} belong to Linux boards, not microcontrollers "
                        "(TFLM is compiled into the firmware)")
    return problems


def _check_values(data: dict) -> List[str]:
    problems = _name_and_arch_problems(data, ARCHES)
    if not re.fullmatch(r"3\.\d+", data["python"]):
        problems.append("'python' must be a version like \"3.11\"")
    if not data["platforms"] or not all(isinstance(p, str) and p for p in data["platforms"]):
        problems.append("'platforms' must list pip platform tags such as \"manylinux_2_36_aarch64\"")
    unknown = [b for b in data["backends"] if b not in BACKEND_PACKAGES]
    if not data["backends"] or unknown:
        problems.append(f"'backends' must list some of {', '.join(BACKEND_PACKAGES)}")
    if data["cores"] < 1 or data["threads"] < 1 or data["ram_mb"] < 1:
        problems.append("'cores', 'threads' and 'ram_mb' must be positive")
    return problems + _emulation_problems(data.get("emulation"))


def _emulation_problems(emulation) -> List[str]:
    if emulation is None:
        return []
    if not isinstance(emulation, dict):
        return ["'emulation' must be a table"]
    wrong = [key for key, kind in EMULATION_KEYS.items() if not isinstance(emulation.get(key), kind)]
    if wrong or not re.fullmatch(r"\d+\.\d+", str(emulation.get("glibc", ""))):
        return [f"[emulation] needs {', '.join(EMULATION_KEYS)} as text (glibc like \"2.36\")"]
    return []


def closest_match(name: str, profiles: Dict[str, DeviceProfile]) -> Optional[str]:
    import difflib

    matches = difflib.get_close_matches(name, list(profiles), n=1)
    return matches[0] if matches else None
