"""`edgeml bundle`: an offline-installable .tar.gz for one device profile."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgeml.console import format_size


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--device", "-d", required=True, help="Device profile name (edgeml devices) or a .toml file.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Bundle file to write [default: NAME-VERSION-DEVICE.tar.gz].")
@click.option("--name", help="Bundle name [default: the model's file or folder name].")
@click.option("--version", "version", help="Release version [default: first 12 hex digits of the model sha256].")
@click.option("--python", "python", help="The device's Python X.Y, if it differs from the profile's.")
@click.option("--no-wheels", is_flag=True, help="Leave out dependency wheels: the device installs them from its index.")
@click.option("--sign", "sign_key", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="KEY",
              help="Sign the bundle's manifest with this OpenSSH private key (ssh-keygen -Y sign; or the .pub of a "
                   "key in ssh-agent). Devices that pin keys (edgeml deploy --trust) accept only signed bundles.")
@click.option("--profiles", "profile_dirs", multiple=True, type=click.Path(file_okay=False),
              help="Extra folder of device profiles.")
@click.option("--json", "as_json", is_flag=True, help="Print the bundle manifest as JSON.")
def bundle(model, device, output, name, version, python, no_wheels, sign_key, profile_dirs, as_json):
    """Bundle MODEL (a .tflite/.onnx file, or a conversion manifest.json or its folder) for a device.

    The bundle holds the model(s), the edgeml_runtime wheel, numpy and the backend as wheels for the
    device's platform and Python (so it installs offline), install.sh and a manifest of every file's
    size and sha256. The same inputs give a byte-identical bundle (set SOURCE_DATE_EPOCH to pin
    `created`; by default it is the model file's modification time). With --sign, the member after the
    manifest is its signature (edgeml-bundle.json.sig), which covers every file through their sha256.
    """
    from edgeml.device.bundle import build_bundle
    from edgeml.device.profiles import get_profile, require_linux

    profile = require_linux(get_profile(device, profile_dirs), "a bundle")  # MCUs take `convert --to tflm` sources
    click.echo(f"bundling {model} for {profile.name} (Python {python or profile.python})"
               + ("" if no_wheels else ", fetching wheels"), err=True)
    result = build_bundle(model, profile, output, name=name, version=version, python=python, wheels=not no_wheels,
                          sign=sign_key)
    for skipped in result.skipped:
        click.echo(f"skipped {skipped}: no backend for it on {profile.name}", err=True)
    if as_json:
        click.echo(json.dumps({"path": str(result.path), "sha256": result.sha256, "signed_by": result.signed_by,
                               "manifest": result.manifest}, indent=2))
        return
    wheels = [f["path"] for f in result.manifest["files"] if f["path"].startswith("wheels/")]
    size = format_size(result.path.stat().st_size)
    click.echo(f"{result.path}  {size}  {result.name} {result.version}  sha256 {result.sha256}")
    click.echo(f"  models: {', '.join(m['path'] for m in result.manifest['models'])}")
    click.echo(f"  wheels: {len(wheels)} ({'offline' if result.manifest['offline'] else 'runtime only'})")
    if result.signed_by:
        click.echo(f"  signed by {result.signed_by}")
    click.echo(f"deploy:   edgeml deploy {result.path} --host USER@HOST")
