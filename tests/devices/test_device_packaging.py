"""The device profiles and the install script ship inside a regular (non-editable) install of edgeml."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_non_editable_install_ships_profiles(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, source / name)
    for folder in ("edgeml", "devices"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", source], check=True)
    from edgeml.device.runtime_wheel import build_runtime_wheel

    runtime = build_runtime_wheel(tmp_path / "dist")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    python = venv / "bin" / "python"
    (edgeml_wheel,) = (tmp_path / "dist").glob("edgeml-*.whl")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", edgeml_wheel, runtime], check=True)
    # The CLI's own dependencies, without edgeml's optional ones.
    subprocess.run([python, "-m", "pip", "install", "-q", "click", "rich", "numpy"], check=True)

    probe = subprocess.run(
        [python, "-c", "import json, edgeml, importlib.resources as r; "
         "print(json.dumps([edgeml.__file__, sorted(p.name for p in r.files('edgeml.profiles').iterdir() "
         "if p.name.endswith('.toml')), r.files('edgeml').joinpath('templates/install.sh').is_file()]))"],
        capture_output=True, text=True, check=True, cwd=tmp_path)
    location, profiles, has_install_script = json.loads(probe.stdout)
    assert location.startswith(str(venv))  # really the installed copy, not the checkout
    assert profiles == sorted(p.name for p in (REPO / "devices").glob("*.toml"))
    assert has_install_script
    listed = subprocess.run([venv / "bin" / "edgeml", "devices", "--json"], capture_output=True, text=True,
                            check=True, cwd=tmp_path)
    assert {"rpi5", "rpi-zero2w"} <= {p["name"] for p in json.loads(listed.stdout)}
