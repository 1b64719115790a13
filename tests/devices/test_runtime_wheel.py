"""The runtime wheel that `edgeml bundle` packs from the installed `edgeml_runtime`, whatever kind of install
that is: a `.dist-info` (pip, editable or not) has METADATA, an `.egg-info` (`setup.py develop`, old editable
installs, a source tree with `egg_info` run in it) has PKG-INFO and requires.txt instead."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.support.cli import edgeml
from tests.support.models import MLP_ONNX, ROOT


@pytest.fixture(scope="module")
def egg_info_dir(tmp_path_factory) -> Path:
    """A directory holding a real edgeml_runtime.egg-info, made by setuptools from runtime/pyproject.toml."""
    base = tmp_path_factory.mktemp("egg")
    done = subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q", "egg_info",
                           "--egg-base", str(base)], cwd=ROOT / "runtime", capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert (base / "edgeml_runtime.egg-info" / "PKG-INFO").is_file()
    return base


def test_bundle_from_an_egg_info_install_packs_a_runtime_wheel_that_pip_can_resolve(egg_info_dir, tmp_path):
    # The egg-info first on sys.path: importlib.metadata finds it before the venv's .dist-info, as for a
    # `setup.py develop` install. Its METADATA read returns None: what used to crash `edgeml bundle`.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(egg_info_dir), os.environ.get("PYTHONPATH", "")])}
    probe = subprocess.run([sys.executable, "-c", "from importlib import metadata; d = metadata.distribution("
                            "'edgeml-runtime'); print(d.read_text('METADATA'), d._path)"],
                           capture_output=True, text=True, env=env, check=True)
    assert probe.stdout.startswith("None ") and "egg-info" in probe.stdout

    out = tmp_path / "b.tar.gz"
    done = edgeml("bundle", MLP_ONNX, "--device", "generic-x86_64", "--no-wheels", "-o", out, "--json", env=env,
                  check_exit=0)
    manifest = json.loads(done.stdout)["manifest"]
    wheel_entry = next(f for f in manifest["files"] if f["path"].startswith("wheels/edgeml_runtime-"))
    with tarfile.open(out) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(wheel_entry["path"]))
        wheel_path = tmp_path / Path(wheel_entry["path"]).name
        wheel_path.write_bytes(tar.extractfile(member).read())
    with zipfile.ZipFile(wheel_path) as wheel:
        metadata_name = next(name for name in wheel.namelist() if name.endswith(".dist-info/METADATA"))
        text = wheel.read(metadata_name).decode()
        assert "edgeml_runtime/model.py" in wheel.namelist()
    assert "Name: edgeml-runtime" in text and "Version: " in text
    # requires.txt became Requires-Dist lines: pip installs numpy with the runtime on the device.
    assert "Requires-Dist: numpy>=" in text
    assert 'Requires-Dist: onnxruntime>=1.16; extra == "onnx"' in text


def test_wheel_metadata_of_each_kind_of_install(tmp_path):
    from importlib import metadata

    from edgeml.device.runtime_wheel import wheel_metadata

    installed = metadata.distribution("edgeml-runtime")
    # a .dist-info: kept byte for byte
    assert wheel_metadata(installed, installed.version) == installed.read_text("METADATA")

    bare = tmp_path / "edgeml_runtime-9.9.dist-info"
    bare.mkdir()
    (bare / "METADATA").write_text("")
    (bare / "PKG-INFO").write_text("")
    text = wheel_metadata(metadata.PathDistribution(bare), "9.9")
    assert text == "Metadata-Version: 2.1\nName: edgeml-runtime\nVersion: 9.9\n"
