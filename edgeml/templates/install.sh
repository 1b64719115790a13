#!/bin/sh
# Install edgeml_runtime and its backend into a virtual environment, from this bundle's wheels/ only.
#   sh install.sh [VENV_DIR]      (default: ./venv next to this script; PYTHON=python3.11 to pick Python)
# Offline bundles carry pip itself as a wheel, so the device needs neither internet nor python3-venv's
# ensurepip; bundles built with --no-wheels install from the device's configured package index instead.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=${1:-"$here/venv"}
python=${PYTHON:-python3}

pip_wheel=
for candidate in "$here"/wheels/pip-*.whl; do
    [ -f "$candidate" ] && pip_wheel=$candidate
done

if [ -n "$pip_wheel" ]; then
    "$python" -m venv --without-pip "$venv"
    # Ignore the device's pip configuration: everything comes from wheels/, and only as wheels (pip never
    # runs a package's build code on the device).
    PIP_CONFIG_FILE=/dev/null "$venv/bin/python" "$pip_wheel/pip" install --no-index --find-links "$here/wheels" \
        --only-binary=:all: --no-cache-dir --disable-pip-version-check --quiet -r "$here/requirements.txt"
else
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --find-links "$here/wheels" --disable-pip-version-check --quiet \
        -r "$here/requirements.txt"
fi
"$venv/bin/python" -c "import edgeml_runtime; print('edgeml_runtime', edgeml_runtime.__version__, 'installed')"
