"""`edgeml deploy`: copy a bundle to devices over SSH, verify, install, smoke-test, activate atomically;
or roll back, show status, and benchmark on the devices."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgeml.commands._ssh_options import ssh_options
from edgeml.console import ProgressDisplay, format_ms, stdout_console


@click.command()
@click.argument("bundle", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--host", "hosts", multiple=True, metavar="USER@HOST[:PORT]",
              help="Device to deploy to; repeat for several (handled in parallel). For a fleet: --inventory.")
@ssh_options
@click.option("--dir", "remote_dir", default="~/edgeml", show_default=True, help="Deploy directory on the device.")
@click.option("--remote-python", default="python3", show_default=True,
              help="The device's Python interpreter: a path or a name, one word (quoted for the remote shell).")
@click.option("--trust", "trust_keys", multiple=True, metavar="PUBKEY",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Pin this OpenSSH public key (.pub) in DIR/trusted_keys with this deploy; from then on the device "
                   "accepts only bundles signed by a pinned key. The first pin needs BUNDLE signed by the new key, "
                   "later changes BUNDLE signed by a key already pinned.")
@click.option("--untrust", "untrust_keys", multiple=True, metavar="SHA256:...",
              help="Unpin the key with this fingerprint (see --status) with this deploy; BUNDLE must be signed by a "
                   "key that stays pinned.")
@click.option("--rollback", is_flag=True, help="Switch back to the previous release.")
@click.option("--status", is_flag=True, help="Show what each host runs.")
@click.option("--bench", is_flag=True, help="Benchmark the active model on each host (after deploying BUNDLE).")
@click.option("--runs", type=click.IntRange(1), help="Benchmark runs (with --bench).")
@click.option("--threads", type=click.IntRange(1), help="Benchmark threads (with --bench).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable results on stdout.")
@click.option("--inventory", type=click.Path(exists=True, path_type=Path), metavar="FILE",
              help="Ansible inventory (INI or YAML file, or directory): run the same steps on its hosts with "
                   "ansible-playbook (pip install 'edgeml[fleet]'); hosts may set edgeml_dir and edgeml_python.")
@click.option("--limit", metavar="PATTERN", help="With --inventory: only these hosts or groups (as ansible --limit).")
@click.option("--serial", metavar="N|PCT[,...]",
              help="With --inventory: deploy in batches of N hosts or PCT% of them, e.g. 1,25%,100% (a canary "
                   "host, then quarters).")
@click.option("--max-fail", metavar="PCT",
              help="With --inventory: stop the rollout when more than PCT% of a batch failed (0: at the first "
                   "failure); later hosts are not touched.")
@click.option("--export-ansible", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Write the playbook (DIR/site.yml, its role and the agent) for `ansible-playbook -i INVENTORY "
                   "DIR/site.yml -e bundle=PATH`, and exit.")
def deploy(bundle, hosts, identity, ssh_config, ssh_options, remote_dir, remote_python, trust_keys, untrust_keys,
           rollback, status, bench, runs, threads, as_json, inventory, limit, serial, max_fail, export_ansible):
    """Deploy BUNDLE to every --host, or --rollback / --status / --bench them.

    On each device: upload to DIR/staging, verify every sha256, install into releases/VERSION/venv from
    the bundle's wheels, run each model once, then switch DIR/current to the new release with an atomic
    symlink rename (the previous release is kept for --rollback). Any failure, or an interrupted run,
    leaves the previous release active. Exit code 0 only if every host succeeded.

    For a fleet, --inventory FILE runs the same steps through ansible-playbook (groups, --limit, canary
    batches with --serial/--max-fail); --export-ansible DIR writes that playbook for your own Ansible.
    """
    from edgeml_runtime.errors import CheckFailed

    from edgeml.commands import _fleet
    from edgeml.device.deploy import deploy_to_hosts
    from edgeml.device.ssh import SshOptions

    _fleet.check_options(inventory=inventory, hosts=list(hosts), export_dir=export_ansible, limit=limit,
                         serial=serial, max_fail=max_fail)
    if export_ansible is not None:
        return _fleet.export(export_ansible, bundle=bundle, hosts=hosts or inventory, rollback=rollback,
                             status=status, bench=bench)
    modes = [flag for flag, on in (("BUNDLE", bundle), ("--rollback", rollback), ("--status", status)) if on]
    if len(modes) > 1:
        raise click.UsageError(f"give only one of {', '.join(modes)}")
    if not modes and not bench:
        raise click.UsageError("give a BUNDLE to deploy, or --rollback, --status or --bench")
    options = SshOptions(identity=identity, config=ssh_config, options=tuple(ssh_options))
    if (trust_keys or untrust_keys) and not bundle:
        raise click.UsageError("--trust/--untrust change the pinned keys together with a deploy: give a signed BUNDLE")
    from edgeml.device.signing import read_public_key

    trust = [read_public_key(path) for path in trust_keys]
    if inventory is not None:  # --dir / --remote-python given here override every host's edgeml_dir / edgeml_python
        given = _fleet.explicit(click.get_current_context(), remote_dir=remote_dir, remote_python=remote_python)
        return _fleet.fleet_deploy(inventory, bundle=bundle, limit=limit, serial=serial, max_fail=max_fail,
                                   ssh=options, remote_dir=given["remote_dir"], python=given["remote_python"],
                                   rollback=rollback, status=status, bench=bench, runs=runs, threads=threads,
                                   as_json=as_json, trust=trust, untrust=list(untrust_keys))
    bench_args = [*(["--runs", str(runs)] if runs else []), *(["--threads", str(threads)] if threads else [])]
    action = "rollback" if rollback else "status" if status else None
    with ProgressDisplay("deploying" if bundle else action or "benchmarking") as display:
        results = deploy_to_hosts(list(hosts), options, bundle=bundle, action=action, bench=bench,
                                  bench_args=bench_args, remote_dir=remote_dir, python=remote_python,
                                  progress=display, trust=trust, untrust=list(untrust_keys))
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        _print_results(results)
        if bench:
            _print_bench(results)
    failed = [r for r in results if not r.ok]
    if failed:
        raise CheckFailed(f"{len(failed)} of {len(results)} host(s) failed: "
                          + "; ".join(f"{r.host}: {r.stage}: {r.error}" for r in failed))


def _print_results(results) -> None:
    from rich.table import Table

    table = Table()
    for column in ("host", "result", "version", "previous", "detail"):
        table.add_column(column)
    for r in results:
        if r.ok:
            signed = r.details.get("signed_by")
            detail = _status_detail(r) if r.action == "status" else f"signed by {signed}" if signed else ""
            table.add_row(r.host, f"[green]{r.action}[/]", r.version or "-", r.previous or "-", detail)
        else:
            table.add_row(r.host, f"[red]failed at {r.stage}[/]", "-", "-", r.error or "")
    stdout_console().print(table)


def _status_detail(result) -> str:
    details = result.details
    if not result.version:
        return f"nothing deployed in {details.get('dir')}"
    models = ", ".join(Path(m).name for m in details.get("models") or [])
    kept = [r["version"] for r in details.get("releases", []) if r.get("complete")]
    keys = details.get("trusted_keys") or []
    return (f"{details.get('name')}: {models}; python {details.get('python')} {details.get('arch')}; "
            f"releases: {', '.join(kept)}" + (f"; signed bundles only: {', '.join(keys)}" if keys else ""))


def _print_bench(results) -> None:
    from rich.table import Table

    table = Table(title="Benchmarks on the devices")
    for column in ("host", "model", "backend", "threads", "p50", "p90", "p99", "init", "peak RSS MB", "machine"):
        table.add_column(column, justify="left" if column in ("host", "model", "backend", "machine") else "right")
    for r in results:
        for row in r.bench:
            latency, machine = row.get("latency_ms", {}), row.get("machine", {})
            table.add_row(r.host, Path(str(row.get("model", ""))).name, str(row.get("backend", "")),
                          str(row.get("threads", "")), format_ms(latency.get("p50")),
                          format_ms(latency.get("p90")), format_ms(latency.get("p99")), format_ms(row.get("init_ms")),
                          _megabytes(row.get("peak_rss_mb")), _machine_label(machine))
    if any(row.get("machine", {}).get("emulated") for r in results for row in r.bench):
        table.caption = "EMULATED: latency under an emulator is not the device's latency"
    stdout_console().print(table)


def _machine_label(machine: dict) -> str:
    label = f"{machine.get('arch', '')} {machine.get('cpu', '')}".strip()
    return f"{label} [EMULATED {machine['emulated']}]" if machine.get("emulated") else label


def _megabytes(value) -> str:
    return "-" if value is None else f"{value:.0f}"
