"""`edgeml select`: measure a conversion's passing artifacts where the model will run (this machine, the
emulated Pi, or devices over SSH) and record the fastest as the manifest's `recommended`, which serve,
Predictor and `edgeml bundle` default to."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import click

from edgeml.commands._ssh_options import ssh_options
from edgeml.commands.bench import parse_int_list
from edgeml.console import ProgressDisplay, format_ms, format_size, stdout_console


@dataclass
class Measurement:
    """One place's table: `measured_on` (machine facts, `kind`: this machine / emulated TARGET / device)."""

    where: str
    measured_on: dict
    rows: List[dict]
    chosen: Optional[dict] = field(default=None)


@click.command("select")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--emulated", "target", metavar="TARGET",
              help="Measure inside the emulated device (rpi4, rpi5; built by `edgeml devices emulate TARGET`). "
                   "Marked emulated: it never replaces a real device's recommendation.")
@click.option("--host", "hosts", multiple=True, metavar="USER@HOST[:PORT]",
              help="Measure on this device over SSH; repeat for several (the slowest device decides).")
@ssh_options
@click.option("--remote-python", default="python3", show_default=True,
              help="The device's Python; without edgeml_runtime, DIR/current/venv/bin/python (a deploy's) is used.")
@click.option("--dir", "remote_dir", default="~/edgeml", show_default=True,
              help="Deploy directory on the device (for its release's Python).")
@click.option("--threads", callback=parse_int_list, help="Thread counts to try, e.g. 1,2,4 (default: 1 to the cores).")
@click.option("--budget-seconds", type=click.FloatRange(min=0.0, min_open=True), default=2.0, show_default=True,
              help="Time for the timed rounds, all artifacts together, per place.")
@click.option("--no-write", is_flag=True, help="Measure and show; leave the manifest as it is.")
@click.option("--json", "as_json", is_flag=True, help="Tables and the recommendation as JSON on stdout.")
def select(source, target, hosts, identity, ssh_config, ssh_options, remote_python, remote_dir, threads,
           budget_seconds, no_write, as_json):
    """Measure SOURCE's artifacts (an `edgeml convert` directory or its manifest.json) where they will run, and
    rewrite the manifest's `recommended` with the fastest (atomically).

    \b
    edgeml select out/                          on this machine
    edgeml select out/ --emulated rpi4          inside the emulated Pi (figures marked emulated)
    edgeml select out/ --host pi@192.168.1.20   on the device, over SSH (as edgeml deploy)

    Every passing artifact is loaded at each thread count and timed in interleaved rounds; the fastest p50
    wins, and within 5% of it the smaller file. With several --host, each device gets its table and the
    recommendation is the one chosen on the slowest device (the highest best p50): what meets the latency
    there meets it everywhere. A recommendation measured on a real device is never replaced by an emulated
    one (the table is shown, the manifest keeps the device's).
    """
    from edgeml_runtime import recommend
    from edgeml_runtime.select_cli import kept_instead, read_manifest, without_recommendation, write_recommended

    if target and hosts:
        raise click.UsageError("give --emulated or --host, not both")
    manifest_path, data, stale = read_manifest(source)
    if stale:
        click.echo(f"note: {stale}", err=True)
    found = recommend.candidates(manifest_path.parent, without_recommendation(data))
    if not found:
        from edgeml_runtime import EdgeMLError

        raise EdgeMLError(f"{manifest_path}: no artifact passed its conversion check and runs in edgeml_runtime; fix "
                          "the conversion first (edgeml convert)")
    args = _select_args(threads, budget_seconds)
    with ProgressDisplay("measuring") as display:
        if hosts:
            measurements = _on_hosts(hosts, manifest_path, found, args, identity, ssh_config, ssh_options,
                                     remote_python, remote_dir, budget_seconds, display)
        elif target:
            measurements = [_emulated(target, manifest_path, args, budget_seconds, len(found), display)]
        else:
            measurements = [_here(found, threads, budget_seconds, display)]
    for measurement in measurements:
        measurement.chosen = recommend.choose(measurement.rows)
    deciding = _deciding(measurements)
    recommended = recommend.recommendation(deciding.rows, deciding.measured_on)
    if len(measurements) > 1:  # the record of why this device's choice: every device's own fastest
        recommended["devices"] = [{"host": m.where, "path": m.chosen["path"], "threads": m.chosen["threads"],
                                   "p50_ms": m.chosen["p50_ms"]} for m in measurements]
    kept = None if stale else kept_instead(data.get("recommended"), deciding.measured_on)
    written = not kept and not no_write
    if written:
        write_recommended(manifest_path, data, recommended)
    _show(measurements, deciding, recommended, manifest_path, kept, written, as_json)


def _select_args(threads: Optional[List[int]], budget_seconds: float) -> List[str]:
    """The options `python -m edgeml_runtime select` takes for the same measurement."""
    args = ["--budget-seconds", repr(float(budget_seconds))]
    return args + (["--threads", ",".join(map(str, threads))] if threads else [])


def _here(found, threads, budget_seconds, display) -> Measurement:
    from edgeml_runtime import recommend
    from edgeml_runtime.select_cli import measured_here

    rows = recommend.measure(found, threads=threads, budget_s=budget_seconds, progress=display)
    return Measurement("this machine", measured_here(), rows)


def _emulated(target: str, manifest_path: Path, args: List[str], budget_seconds: float, count: int,
              display) -> Measurement:
    """`python -m edgeml_runtime select` run by the emulated device's Python on the folder (qemu-user reads the
    host's files), its facts marked emulated."""
    from edgeml_runtime.progress import report

    from edgeml.emulation import EmulationError, build

    device = build(target, progress=display)
    report(display, "bench", f"measuring {count} artifact(s) inside the emulated {target} (slow: qemu)")
    command = ["python3", "-m", "edgeml_runtime", "select", str(manifest_path.parent.resolve()), "--json", *args]
    done = device.run(command, capture_output=True, text=True, timeout=_timeout(budget_seconds, count, slow=True))
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise EmulationError("measure on the emulated device", lines[-1] if lines else f"exit {done.returncode}")
    try:
        document = json.loads(done.stdout)
        facts = {**document["machine"], "kind": f"emulated {target}", "emulated": True, "emulator": device.emulated}
    except (ValueError, KeyError, TypeError):
        raise EmulationError("measure on the emulated device", "its select printed no result; rebuild it with "
                             f"edgeml devices emulate {target} --rebuild") from None
    return Measurement(f"emulated {target}", facts, document["rows"])


def _on_hosts(hosts, manifest_path, found, args, identity, ssh_config, ssh_options, remote_python, remote_dir,
              budget_seconds, display) -> List[Measurement]:
    """Each device in turn (one at a time: two --host may be the same board, and measurements must not overlap)."""
    from edgeml_runtime.progress import report
    from edgeml_runtime.select_cli import DEVICE_KIND

    from edgeml.device.remote_select import measure_on_host, upload_list
    from edgeml.device.ssh import SshOptions

    options = SshOptions(identity=identity, config=ssh_config, options=tuple(ssh_options))
    files = upload_list(manifest_path, found)
    measurements = []
    for index, host in enumerate(hosts):
        report(display, "bench", f"{host}: uploading {len(found)} artifact(s) and measuring", done=index,
               total=len(hosts))
        document = measure_on_host(host, options, manifest_path, files, python=remote_python, remote_dir=remote_dir,
                                   args=args, timeout=_timeout(budget_seconds, len(found)))
        facts = {**document.get("machine", {}), "kind": DEVICE_KIND, "host": host}
        if document.get("machine", {}).get("emulated"):  # an emulated board behind ssh is not a real device
            facts.update(kind=f"emulated, over ssh at {host}", emulated=True,
                         emulator=str(document["machine"]["emulated"]))
        measurements.append(Measurement(host, facts, document["rows"]))
    report(display, "bench", f"measured on {len(hosts)} device(s)", done=len(hosts), total=len(hosts))
    return measurements


def _timeout(budget_seconds: float, count: int, slow: bool = False) -> float:
    """Loading, warming up and the timed rounds, with room for a slow board (or an emulator, 10x slower)."""
    return (120.0 + 30.0 * count + 5.0 * budget_seconds) * (10 if slow else 1)


def _deciding(measurements: List[Measurement]) -> Measurement:
    """The measurement whose choice becomes the recommendation: the only one, or the slowest device's (the
    highest best p50). Nothing measured anywhere is an error naming why."""
    from edgeml_runtime import EdgeMLError

    for measurement in measurements:
        if measurement.chosen is None:
            reasons = "; ".join(f"{row['path']}: {row.get('skipped')}" for row in measurement.rows) or "no rows"
            raise EdgeMLError(f"no artifact could run on {measurement.where} ({reasons}); install its backend there")
    return max(measurements, key=lambda m: m.chosen["p50_ms"])


def _show(measurements, deciding, recommended, manifest_path, kept, written, as_json) -> None:
    from edgeml_runtime.select_cli import describe_measured_on

    if as_json:
        click.echo(json.dumps({
            "manifest": str(manifest_path),
            "measurements": [{"where": m.where, "measured_on": m.measured_on, "rows": m.rows, "chosen": m.chosen}
                             for m in measurements],
            "recommended": recommended, "decided_by": deciding.where, "written": written, "kept": kept}, indent=2))
        if kept:
            click.echo(f"note: {kept}", err=True)
        return
    for measurement in measurements:
        stdout_console().print(rows_table(measurement))
    where = describe_measured_on(deciding.measured_on)
    line = (f"fastest: {recommended['path']} with {recommended['threads']} thread(s), p50 "
            f"{format_ms(recommended['p50_ms'])} on {where}")
    if len(measurements) > 1:
        line += f" (the slowest of the {len(measurements)} devices decides)"
    click.echo(line)
    if kept:
        click.echo(f"note: {kept}")
    elif written:
        click.echo(f"wrote it as the recommendation in {manifest_path}")
    else:
        click.echo(f"--no-write: {manifest_path} is unchanged")


def rows_table(measurement: Measurement):
    """The measured rows like bench's table; the chosen row marked."""
    from edgeml_runtime.select_cli import describe_measured_on
    from rich.markup import escape
    from rich.table import Table

    emulated = measurement.measured_on.get("emulated")
    title = f"edgeml select — {measurement.where}" + (" — EMULATED: not device latency" if emulated else "")
    table = Table(title=title, caption=describe_measured_on(measurement.measured_on))
    for column in ("artifact", "format", "quant", "size", "backend", "threads", "p50 ms", "runs", "note"):
        table.add_column(column, justify="right" if column in ("size", "threads", "p50 ms", "runs") else "left")
    chosen = measurement.chosen or {}
    for row in measurement.rows:
        is_chosen = row["path"] == chosen.get("path") and row.get("threads") == chosen.get("threads")
        p50 = "-" if row.get("p50_ms") is None else f"{row['p50_ms']:.4f}"
        table.add_row(escape(row["path"]) + (" ★" if is_chosen else ""), row["format"], row["quantization"] or "fp32",
                      format_size(row["bytes"]), str(row.get("backend") or "-"), str(row.get("threads") or "-"),
                      f"[bold green]{p50}[/]" if is_chosen else p50, str(row.get("runs") or "-"),
                      "fastest" if is_chosen else escape(str(row.get("skipped") or "")))
    return table
