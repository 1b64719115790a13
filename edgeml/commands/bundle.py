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
@click.option("--artifact", metavar="PATH|NAME",
              help="Which artifact of a conversion manifest to ship: its path, file name, quantization or format "
                   "[default: the manifest's measured recommendation (edgeml select)].")
@click.option("--all", "everything", is_flag=True,
              help="Ship every artifact of the conversion manifest the device runs, and every backend they need.")
@click.option("--json", "as_json", is_flag=True, help="Print the bundle manifest as JSON.")
def bundle(model, device, output, name, version, python, no_wheels, sign_key, profile_dirs, artifact, everything,
           as_json):
    """Bundle MODEL (a .tflite/.onnx file, or a conversion manifest.json or its folder) for a device.

    The bundle holds the model, the edgeml_runtime wheel, numpy and the model's backend as wheels for
    the device's platform and Python (so it installs offline), install.sh and a manifest of every file's
    size and sha256. From a conversion manifest it takes ONE artifact: --artifact, else the manifest's
    measured recommendation when the device has a backend for it (measure on the device with `edgeml
    select DIR --host USER@HOST`), else the first passing one the device runs; the manifest goes along
    restricted to it, with labels.json. --all takes every artifact instead. The same inputs give a
    byte-identical bundle (set SOURCE_DATE_EPOCH to pin `created`; by default it is the model file's
    modification time). With --sign, the member after the manifest is its signature
    (edgeml-bundle.json.sig), which covers every file through their sha256.
    """
    from edgeml.device.bundle import build_bundle
    from edgeml.device.profiles import get_profile, require_linux

    if artifact and everything:
        raise click.UsageError("give --artifact (one model) or --all (every model), not both")
    profile = require_linux(get_profile(device, profile_dirs), "a bundle")  # MCUs take `convert --to tflm` sources
    click.echo(f"bundling {model} for {profile.name} (Python {python or profile.python})"
               + ("" if no_wheels else ", fetching wheels"), err=True)
    result = build_bundle(model, profile, output, name=name, version=version, python=python, wheels=not no_wheels,
                          sign=sign_key, artifact=artifact, everything=everything)
    for skipped in result.skipped:
        click.echo(f"skipped {skipped}: no backend for it on {profile.name}", err=True)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    if as_json:
        click.echo(json.dumps({"path": str(result.path), "sha256": result.sha256, "signed_by": result.signed_by,
                               "bytes": result.path.stat().st_size, "chosen": result.chosen, "notes": result.notes,
                               "manifest": result.manifest}, indent=2))
        return
    _print_contents(result)
    if result.signed_by:
        click.echo(f"  signed by {result.signed_by}")
    click.echo(f"deploy:   edgeml deploy {result.path} --host USER@HOST")


def _print_contents(result) -> None:
    """The bundle's size and what it holds: the model(s), the files going with them, the wheels."""
    files = result.manifest["files"]
    models = [m["path"] for m in result.manifest["models"]]
    wheels = [f for f in files if f["path"].startswith("wheels/")]
    others = [f["path"] for f in files if f["path"].startswith("models/") and f["path"] not in models]
    click.echo(f"{result.path}  {format_size(result.path.stat().st_size)}  {result.name} {result.version}  "
               f"sha256 {result.sha256}")
    if result.chosen is not None:
        click.echo(f"  model:  {models[0]}  ({_describe_chosen(result.chosen)})")
    else:
        click.echo(f"  models: {', '.join(models)}")
    if others:
        restricted = " (restricted to that model)" if result.chosen is not None else ""
        click.echo(f"  with:   {', '.join(others)}{restricted}")
    backends = ", ".join(result.manifest["backends"]) or "no backend"
    kind = (f"offline, for {backends}" if result.manifest["offline"]
            else f"runtime only: the device installs {backends} from its index")
    click.echo(f"  wheels: {len(wheels)} ({kind}), {format_size(sum(f['bytes'] for f in wheels))}")


def _describe_chosen(chosen: dict) -> str:
    from edgeml.console import format_ms

    facts = f"{chosen['format']} {chosen['quantization'] or 'fp32'}, {format_size(chosen['bytes'])}"
    if not chosen["recommended"]:
        return facts
    measured_on = chosen.get("measured_on") or {}
    where = measured_on.get("host") or measured_on.get("kind") or "unknown machine"
    p50 = f" p50 {format_ms(chosen['p50_ms'])}" if chosen.get("p50_ms") is not None else ""
    return f"{facts}; recommended:{p50} on {where}"
