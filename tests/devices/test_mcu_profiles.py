"""Microcontroller profiles (`kind = "mcu"`): the shipped boards' datasheet figures, validation, and how
`edgeml devices` lists them apart from the Linux boards."""

from __future__ import annotations

import json

import pytest

from edgeml.device.profiles import ProfileError, get_profile, load_profiles, require_linux
from tests.support.cli import edgeml

MCUS = {  # name: (chip, core words, clock MHz, RAM KB, flash KB, FPU)
    "arduino-nano-33-ble-sense": ("nRF52840", "Cortex-M4F", 64, 256, 1024, "single"),
    "esp32-s3-devkitc": ("ESP32-S3", "Xtensa LX7", 240, 512, 8192, "single"),
    "rpi-pico2": ("RP2350", "Cortex-M33", 150, 520, 4096, "single"),
    "nucleo-h743zi2": ("STM32H743", "Cortex-M7", 480, 1056, 2048, "double"),
    "nucleo-l4r5zi": ("STM32L4R5", "Cortex-M4F", 120, 640, 2048, "single"),
}
VALID = """
name = "lab-mcu"
kind = "mcu"
description = "a test board"
cpu = "Chip X"
core = "Arm Cortex-M4F"
arch = "armv7e-m"
clock_mhz = 80
ram_kb = 128
flash_kb = 512
source = "Chip X datasheet"
"""


def test_shipped_microcontrollers_carry_their_datasheet_figures():
    profiles = load_profiles()
    for name, (chip, core, clock, ram, flash, fpu) in MCUS.items():
        profile = profiles[name]
        assert profile.is_mcu and profile.kind == "mcu", name
        mcu = profile.mcu
        assert chip in profile.cpu and core in mcu.core, name
        assert (mcu.clock_mhz, mcu.ram_kb, mcu.flash_kb, mcu.fpu) == (clock, ram, flash, fpu), name
        assert mcu.dsp and mcu.kernels in ("CMSIS-NN", "ESP-NN"), name
        assert "datasheet" in mcu.source.lower(), name  # where the figures come from
        assert profile.python == "" and profile.platforms == () and profile.backends == (), name
    # The H7's RAM is in banks: the arena must fit in the largest, the 512 KB AXI SRAM.
    assert profiles["nucleo-h743zi2"].mcu.arena_limit_bytes == 512 * 1024
    assert profiles["esp32-s3-devkitc"].mcu.external_ram_kb == 8192
    assert "MLPerf Tiny" in profiles["nucleo-l4r5zi"].mcu.source
    assert all(not p.is_mcu and p.kind == "linux" for n, p in profiles.items() if n not in MCUS)


def test_devices_lists_microcontrollers_in_their_own_table():
    listed = edgeml("devices", check_exit=0).stdout
    linux_part, _, mcu_part = listed.partition("Microcontrollers")
    assert mcu_part, listed
    for name in MCUS:
        assert name in mcu_part and name not in linux_part
    assert "rpi4" in linux_part and "rpi4" not in mcu_part
    assert "480 MHz" in mcu_part and "CMSIS-NN" in mcu_part
    as_json = {p["name"]: p for p in json.loads(edgeml("devices", "--json", check_exit=0).stdout)}
    assert as_json["rpi-pico2"]["kind"] == "mcu" and as_json["rpi-pico2"]["ram_kb"] == 520
    assert "RP2350 Datasheet" in as_json["rpi-pico2"]["figures_source"]
    assert as_json["rpi5"]["kind"] == "linux"
    shown = json.loads(edgeml("devices", "show", "nucleo-l4r5zi", "--json", check_exit=0).stdout)
    assert shown["core"] == "Arm Cortex-M4F" and shown["source"].endswith("nucleo-l4r5zi.toml")


def test_user_mcu_profile_and_its_validation(tmp_path):
    (tmp_path / "lab.toml").write_text(VALID)
    profile = load_profiles([tmp_path])["lab-mcu"]
    assert profile.mcu.ram_bytes == 128 * 1024 and profile.mcu.fpu == "none" and profile.cores == 1
    bad = {
        "missing 'source'": VALID.replace('source = "Chip X datasheet"\n', ""),
        "'arch' must be one of": VALID.replace('"armv7e-m"', '"aarch64"'),
        "'ram_kb' must be a int": VALID.replace("ram_kb = 128", 'ram_kb = "128"'),
        "'python' belong to Linux boards": VALID + 'python = "3.11"\n',
        "'contiguous_ram_kb' cannot exceed 'ram_kb'": VALID + "contiguous_ram_kb = 256\n",
        "'fpu' must be one of": VALID + 'fpu = "quad"\n',
        "'kind' must be one of linux, mcu": VALID.replace('kind = "mcu"', 'kind = "fpga"'),
    }
    for message, text in bad.items():
        (tmp_path / "lab.toml").write_text(text)
        with pytest.raises(ProfileError, match=message):
            load_profiles([tmp_path])


def test_linux_only_commands_refuse_a_microcontroller():
    assert require_linux(get_profile("rpi4"), "a bundle").name == "rpi4"
    with pytest.raises(ProfileError, match=r"microcontroller .* needs a Linux board; .*--to tflm"):
        require_linux(get_profile("rpi-pico2"), "a bundle")
