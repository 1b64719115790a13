"""Device profiles: TOML files describing a board (CPU, Python, wheel platforms, backends).

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

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.9/3.10 only
    import tomli as tomllib

__all__ = ["ARCHES", "BACKEND_PACKAGES", "DeviceProfile", "ProfileError", "get_profile", "load_profiles",
           "profile_dirs"]

ARCHES = ("aarch64", "armv7l", "x86_64")
# Runtime backend name -> the pip distribution that provides it.
BACKEND_PACKAGES = {"litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime", "onnxruntime": "onnxruntime"}
REQUIRED = {"name": str, "description": str, "arch": str, "cpu": str, "cores": int, "ram_mb": int, "os": str,
            "python": str, "platforms": list, "backends": list, "threads": int}


class ProfileError(EdgeMLError):
    """A device profile is missing, unknown, or not valid TOML with the expected fields."""


@dataclass(frozen=True)
class DeviceProfile:
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
    extra: Dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = {
            "name": self.name, "description": self.description, "arch": self.arch, "cpu": self.cpu,
            "cores": self.cores, "ram_mb": self.ram_mb, "os": self.os, "python": self.python,
            "platforms": list(self.platforms), "backends": list(self.backends), "threads": self.threads,
            "pins": list(self.pins), "notes": self.notes,
        }
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


def profile_from_dict(data: dict, source: str) -> DeviceProfile:
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
    known = set(REQUIRED) | {"notes", "pins"}
    return DeviceProfile(
        name=data["name"], description=data["description"], arch=data["arch"], cpu=data["cpu"],
        cores=data["cores"], ram_mb=data["ram_mb"], os=data["os"], python=data["python"],
        platforms=tuple(data["platforms"]), backends=tuple(data["backends"]), threads=data["threads"],
        notes=str(data.get("notes", "")).strip(), pins=tuple(data.get("pins", ())), source=source,
        extra={k: v for k, v in data.items() if k not in known},
    )


def _check_values(data: dict) -> List[str]:
    problems = []
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", data["name"]):
        problems.append("'name' may only hold letters, digits, '.', '_' and '-'")
    if data["arch"] not in ARCHES:
        problems.append(f"'arch' must be one of {', '.join(ARCHES)}")
    if not re.fullmatch(r"3\.\d+", data["python"]):
        problems.append("'python' must be a version like \"3.11\"")
    if not data["platforms"] or not all(isinstance(p, str) and p for p in data["platforms"]):
        problems.append("'platforms' must list pip platform tags such as \"manylinux_2_36_aarch64\"")
    unknown = [b for b in data["backends"] if b not in BACKEND_PACKAGES]
    if not data["backends"] or unknown:
        problems.append(f"'backends' must list some of {', '.join(BACKEND_PACKAGES)}")
    if data["cores"] < 1 or data["threads"] < 1 or data["ram_mb"] < 1:
        problems.append("'cores', 'threads' and 'ram_mb' must be positive")
    return problems


def closest_match(name: str, profiles: Dict[str, DeviceProfile]) -> Optional[str]:
    import difflib

    matches = difflib.get_close_matches(name, list(profiles), n=1)
    return matches[0] if matches else None
