"""`edgeml deploy --inventory` and `--export-ansible`: the fleet path of `edgeml deploy` (options checked and
results printed here; the work is edgeml.device.fleet's)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Sequence

import click

from edgeml.console import ProgressDisplay, stdout_console

FLEET_ONLY = ("--limit", "--serial", "--max-fail")


def export(directory: Path, *, bundle, hosts, rollback, status, bench) -> None:
    """--export-ansible DIR: write the playbook and say how to run it."""
    from edgeml.device.fleet import export_playbook

    if bundle or hosts or rollback or status or bench:
        raise click.UsageError("--export-ansible only writes the playbook; run it with "
                               "`ansible-playbook -i INVENTORY DIR/site.yml -e bundle=PATH`")
    written = export_playbook(directory)
    click.echo(f"wrote {written}/site.yml (role roles/edgeml, agent roles/edgeml/files/agent.py; see README.md)",
               err=True)
    click.echo(f"ansible-playbook -i INVENTORY {written}/site.yml -e bundle=PATH")


def fleet_deploy(inventory: Path, *, bundle: Optional[Path], limit: Optional[str], serial: Optional[str],
                 max_fail: Optional[str], ssh, remote_dir: Optional[str], python: Optional[str], rollback: bool,
                 status: bool, bench: bool, runs: Optional[int], threads: Optional[int], as_json: bool,
                 trust: Sequence[str] = (), untrust: Sequence[str] = ()) -> None:
    """--inventory FILE: run the rollout (or --rollback / --status / --bench) through ansible-playbook."""
    from edgeml_runtime.errors import CheckFailed

    from edgeml.device.fleet import parse_max_fail, parse_serial, run_fleet

    action = "deploy" if bundle else "rollback" if rollback else "status" if status else "bench"
    title = {"deploy": "deploying", "rollback": "rolling back", "status": "status", "bench": "benchmarking"}[action]
    with ProgressDisplay(f"{title} (ansible-playbook)") as display:
        results = run_fleet(inventory, action=action, bundle=bundle, limit=limit, serial=parse_serial(serial),
                            max_fail=parse_max_fail(max_fail), bench=bench and action == "deploy",
                            bench_runs=runs, bench_threads=threads, ssh=ssh, remote_dir=remote_dir, python=python,
                            trust=trust, untrust=untrust, progress=display)
    if as_json:
        click.echo(json.dumps([result.to_dict() for result in results], indent=2))
    else:
        _print_table(results, action)
        if bench:
            from edgeml.commands.deploy import _print_bench

            _print_bench(results)
    failed = [result for result in results if not result.ok]
    if failed:
        stopped = sum(result.outcome in ("stopped", "not started") for result in failed)
        broken = [result for result in failed if result.outcome not in ("stopped", "not started")]
        summary = "; ".join(f"{r.host}: {r.stage}: {r.error}" for r in broken[:5])
        more = f"; the rollout stopped: {stopped} host(s) left on their release" if stopped else ""
        raise CheckFailed(f"{len(broken)} of {len(results)} host(s) failed: {summary}{more}")


def _print_table(results, action: str) -> None:
    from rich.table import Table

    table = Table()
    for column in ("host", "version", "result", "failed step", "detail"):
        table.add_column(column)
    for r in results:
        if action == "status":
            version = r.version or "-"
        elif r.ok:
            version = f"{r.before or '-'} → {r.version or '-'}"
        else:
            version = f"{r.version or '-'} (kept)" if r.outcome in ("failed", "stopped", "not started") else "-"
        if r.ok:
            result = f"[green]{r.outcome}[/]"
            detail = _status_detail(r) if action == "status" else (f"previous {r.previous}" if r.previous else "")
            table.add_row(r.host, version, result, "", detail)
        else:
            colour = "red" if r.outcome in ("failed", "unreachable") else "yellow"
            step = r.stage if r.outcome in ("failed", "unreachable") else ""
            table.add_row(r.host, version, f"[{colour}]{r.outcome}[/]", step or "", r.error or "")
    stdout_console().print(table)


def _status_detail(result) -> str:
    from edgeml.commands.deploy import _status_detail as detail

    return detail(result)


def check_options(*, inventory, hosts: List[str], export_dir, limit, serial, max_fail) -> None:
    """Usage errors of the fleet options (exit 2)."""
    given = [name for name, value in zip(FLEET_ONLY, (limit, serial, max_fail)) if value is not None]
    if given and inventory is None:
        raise click.UsageError(f"{', '.join(given)} work with --inventory")
    if inventory is not None and hosts:
        raise click.UsageError("give either --host (a few devices over SSH) or --inventory (Ansible), not both")
    if inventory is None and export_dir is None and not hosts:
        raise click.UsageError("give --host USER@HOST (repeatable) or --inventory FILE")


def explicit(ctx: click.Context, **values) -> dict:
    """Each value if it was given on the command line (not the option's default), else None."""
    from click.core import ParameterSource

    return {name: value if ctx.get_parameter_source(name) is not ParameterSource.DEFAULT else None
            for name, value in values.items()}
