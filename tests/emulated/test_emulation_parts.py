"""The build's parts that need no emulator: finding the mirror, wheel tags, launchers, cache layout."""

from __future__ import annotations

import os
import shutil

import pytest

from edgeml.emulation import EmulationError, Layout, get_target
from edgeml.emulation.launcher import launcher_script
from edgeml.emulation.mirror import debian_mirror
from edgeml.emulation.wheels import pip_platform_args
from tests.support.cli import edgeml

DEB822 = """\
Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://sources.example/debian
Suites: bookworm

Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Enabled: no

Types: deb
# the archive
URIs: http://archive.example/debian/
Suites: bookworm bookworm-updates
Components: main
"""


@pytest.fixture
def apt_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGEML_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    return tmp_path


def test_mirror_from_deb822_skips_security_sources_and_disabled(apt_dir):
    (apt_dir / "sources.list.d" / "debian.sources").write_text(DEB822)
    assert debian_mirror(str(apt_dir)) == "http://archive.example/debian"


def test_mirror_from_one_line_sources_list(apt_dir):
    (apt_dir / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main\n"
    )
    assert debian_mirror(str(apt_dir)) == "http://one.example/debian"


def test_mirror_missing_names_the_step_and_the_fix(apt_dir):
    (apt_dir / "sources.list.d" / "other.sources").write_text("Types: deb\nURIs: http://x.example/node\n"
                                                              "Suites: nodistro\n")
    with pytest.raises(EmulationError, match="find the Debian mirror.*EDGEML_DEBIAN_MIRROR") as caught:
        debian_mirror(str(apt_dir))
    assert caught.value.step == "find the Debian mirror in apt's sources"


def test_mirror_override(apt_dir, monkeypatch):
    monkeypatch.setenv("EDGEML_DEBIAN_MIRROR", "http://override.example/debian/")
    assert debian_mirror(str(apt_dir)) == "http://override.example/debian"


def test_wheel_tags_cover_what_projects_publish_up_to_bookworms_glibc():
    args = pip_platform_args(get_target("rpi4"))
    tags = [args[i + 1] for i, arg in enumerate(args) if arg == "--platform"]
    # numpy/onnxruntime: manylinux_2_28, ai-edge-litert: manylinux_2_27, protobuf: manylinux2014
    for tag in ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux2014_aarch64", "manylinux_2_36_aarch64"):
        assert tag in tags
    assert "manylinux_2_37_aarch64" not in tags  # needs a newer glibc than the Pi's Debian 12
    assert args[args.index("--python-version") + 1] == "3.11"
    assert "--only-binary=:all:" in args


def test_layout_follows_edgeml_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEML_CACHE", str(tmp_path))
    layout = Layout.for_target(get_target("rpi5"))
    assert layout.root == tmp_path / "emulated"
    assert layout.launcher.is_relative_to(layout.rootfs / "usr")  # Python finds its stdlib from there


def test_launcher_passes_its_own_path_and_the_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEML_CACHE", str(tmp_path / "with space"))
    layout = Layout.for_target(get_target("rpi5"))
    script = launcher_script(layout, "10.0.13")
    assert script.startswith("#!/bin/sh\n")
    assert "export QEMU_CPU=cortex-a76\n" in script
    assert "export EDGEML_EMULATED='qemu-user 10.0.13'\n" in script
    assert f"-L '{layout.rootfs}' -0 \"$0\" '{layout.python}' \"$@\"" in script


def test_unknown_target_lists_the_known_ones():
    with pytest.raises(EmulationError, match="unknown emulated device 'pi9'; choose one of: rpi4, rpi5"):
        get_target("pi9")


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs Debian's apt-get")
def test_unreachable_mirror_fails_naming_the_step(tmp_path):
    """Nothing listens on 127.0.0.1:9: the first download fails, with the step and apt's reason."""
    env = {**os.environ, "EDGEML_CACHE": str(tmp_path), "EDGEML_DEBIAN_MIRROR": "http://127.0.0.1:9/debian"}
    done = edgeml("devices", "emulate", "rpi4", env=env, timeout=120)
    assert done.returncode == 2
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("error: emulated device: step 'download qemu-user from Debian trixie' failed:")
    assert "127.0.0.1:9" in error and "Traceback" not in done.stderr
    assert not (tmp_path / "emulated" / "qemu-trixie").exists()  # nothing half-built left looking finished


def test_build_steps_report_progress_events_and_print_nothing(tmp_path, monkeypatch, capsys):
    """Copying this checkout's runtime (no emulator needed): one event when it changed, none when cached."""
    from edgeml.emulation.wheels import install_runtime_source

    monkeypatch.setenv("EDGEML_CACHE", str(tmp_path))
    layout = Layout.for_target(get_target("rpi4"))
    events = []
    assert install_runtime_source(layout, events.append)
    assert [(event.stage, event.level) for event in events] == [("runtime", "info")]
    assert events[0].message.startswith("edgeml_runtime copied from ")
    assert (layout.runtime / "edgeml_runtime" / "progress.py").is_file()
    assert not install_runtime_source(layout, events.append) and len(events) == 1  # cached: nothing to say
    assert capsys.readouterr() == ("", "")
