"""Device profiles: the shipped facts, user profiles, validation errors, and the `edgeml devices` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeml.device.profiles import ProfileError, get_profile, load_profiles
from edgeml.device.wheels import expand_platforms
from tests.support.cli import edgeml

SHIPPED = {"rpi5", "rpi4", "rpi3", "rpi-zero2w", "rpi-32bit", "jetson-orin-nano", "generic-aarch64", "generic-x86_64"}


def test_shipped_profiles_state_the_real_boards():
    profiles = load_profiles()
    assert set(profiles) >= SHIPPED
    facts = {  # name: (SoC/CPU words, cores, arch, python)
        "rpi5": (("BCM2712", "Cortex-A76", "2.4 GHz"), 4, "aarch64", "3.11"),
        "rpi4": (("BCM2711", "Cortex-A72", "1.5 GHz", "1.8 GHz"), 4, "aarch64", "3.11"),
        "rpi3": (("BCM2837", "Cortex-A53", "1.2 GHz", "1.4 GHz"), 4, "aarch64", "3.11"),
        "rpi-zero2w": (("RP3A0", "Cortex-A53", "1 GHz"), 4, "aarch64", "3.11"),
        "jetson-orin-nano": (("Cortex-A78AE",), 6, "aarch64", "3.10"),
        "rpi-32bit": ((), 4, "armv7l", "3.11"),
    }
    for name, (words, cores, arch, python) in facts.items():
        profile = profiles[name]
        assert all(word in profile.cpu for word in words), (name, profile.cpu)
        assert (profile.cores, profile.arch, profile.python) == (cores, arch, python), name
        assert all(tag.endswith(arch) for tag in profile.platforms), name
    assert profiles["rpi-zero2w"].ram_mb == 512
    assert "22.04" in profiles["jetson-orin-nano"].os
    # No armv7l wheels of ai-edge-litert or onnxruntime exist: the 32-bit profile must not promise them.
    assert set(profiles["rpi-32bit"].backends) == {"tflite_runtime"}
    assert "no armv7l wheels" in profiles["rpi-32bit"].notes


def test_expand_platforms_lists_every_older_manylinux_tag():
    tags = expand_platforms(["manylinux_2_36_aarch64"])
    assert tags[0] == "manylinux_2_36_aarch64" and "manylinux_2_27_aarch64" in tags
    assert tags[-2:] == ["manylinux_2_17_aarch64", "manylinux2014_aarch64"]
    assert expand_platforms(["linux_armv7l"]) == ["linux_armv7l"]


def test_user_profiles_add_and_override(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    user_dir = tmp_path / "config" / "edgeml" / "devices"
    user_dir.mkdir(parents=True)
    text = Path(get_profile("rpi5").source).read_text()
    (user_dir / "rpi5.toml").write_text(text.replace('ram_mb = 4096', 'ram_mb = 8192'))
    extra = tmp_path / "mine"
    extra.mkdir()
    (extra / "lab.toml").write_text(text.replace('name = "rpi5"', 'name = "lab-pi"'))
    profiles = load_profiles([extra])
    assert profiles["rpi5"].ram_mb == 8192 and profiles["rpi5"].source.startswith(str(user_dir))
    assert profiles["lab-pi"].cpu == profiles["rpi5"].cpu
    shown = edgeml("devices", "--profiles", extra, "show", "lab-pi", "--json", check_exit=0)
    assert json.loads(shown.stdout)["name"] == "lab-pi"


def test_invalid_profile_names_the_problem(tmp_path):
    (tmp_path / "bad.toml").write_text('name = "bad"\narch = "mips"\n')
    with pytest.raises(ProfileError, match=r"bad.toml: invalid device profile: missing 'description'"):
        load_profiles([tmp_path])
    (tmp_path / "bad.toml").write_text("name = [")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profiles([tmp_path])


def test_devices_cli_lists_and_shows():
    listed = json.loads(edgeml("devices", "--json", check_exit=0).stdout)
    assert {p["name"] for p in listed} >= SHIPPED
    table = edgeml("devices", check_exit=0).stdout
    assert "rpi-zero2w" in table and "jetson-orin-nano" in table
    shown = edgeml("devices", "show", "rpi4", check_exit=0).stdout
    assert "BCM2711" in shown and "manylinux_2_36_aarch64" in shown
    unknown = edgeml("devices", "show", "rpi6", check_exit=2)
    assert "unknown device 'rpi6'" in unknown.stderr and "did you mean" in unknown.stderr
    assert "Traceback" not in unknown.stderr
