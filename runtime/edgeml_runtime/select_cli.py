"""`python -m edgeml_runtime select DIR|manifest.json`: measure a conversion's passing artifacts on this machine
(`edgeml_runtime.recommend`) and print the table and the fastest; `--json` for `edgeml select`, which runs this
on a device over SSH or inside the emulated Pi; `--write` to record the result as the manifest's `recommended`
(which serve, Predictor and `edgeml bundle` default to).

Also the one writer of `recommended` for `edgeml select`, with its precedence rule: a recommendation measured
on a real device is never replaced by one measured under an emulator.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import List, Optional, Tuple

from edgeml_runtime import formats
from edgeml_runtime.errors import EdgeMLError

__all__ = ["DEVICE_KIND", "add_parser", "cmd_select", "describe_measured_on", "format_rows", "kept_instead",
           "measured_here", "parse_threads", "read_manifest", "without_recommendation", "write_recommended"]

SCHEMA = "edgeml.select/1"
DEVICE_KIND = "device"  # measured_on["kind"] of a measurement made on a device over SSH (edgeml select --host)


def add_parser(commands) -> None:
    parser = commands.add_parser("select", help="measure a conversion's artifacts here and name the fastest",
                                 description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="an `edgeml convert` output directory or its manifest.json")
    parser.add_argument("--threads", help="thread counts to try, e.g. 1,2,4 (default: 1 to the core count)")
    parser.add_argument("--budget-seconds", type=float,
                        help="time for the timed rounds, all artifacts together (default 2)")
    parser.add_argument("--write", action="store_true",
                        help="record the fastest as the manifest's `recommended` (rewritten atomically)")
    parser.add_argument("--json", action="store_true", help="rows and machine facts as JSON on stdout")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    parser.set_defaults(handler=cmd_select)


def cmd_select(args) -> int:
    from edgeml_runtime import recommend

    threads = parse_threads(args.threads)
    budget = recommend.DEFAULT_BUDGET_S if args.budget_seconds is None else args.budget_seconds
    if not budget > 0:
        raise EdgeMLError("--budget-seconds must be above 0")
    manifest_path, data, stale = read_manifest(args.source)
    if stale:
        print(f"select: note: {stale}", file=sys.stderr)
    found = recommend.candidates(manifest_path.parent, without_recommendation(data))
    if not found:
        raise EdgeMLError(f"{manifest_path}: no passing artifact the runtime can run; fix the conversion first "
                          "(edgeml convert)")
    rows = recommend.measure(found, threads=threads, budget_s=budget, progress=_stderr_progress)
    facts = measured_here()
    chosen = recommend.recommendation(rows, facts)
    if args.write and chosen is not None:
        reason = None if stale else kept_instead(data.get(formats.RECOMMENDED_KEY), facts)
        if reason:
            print(f"select: note: {reason}", file=sys.stderr)
        else:
            write_recommended(manifest_path, data, chosen)
            print(f"select: wrote {chosen['path']} as {manifest_path}'s recommendation", file=sys.stderr)
    if args.json:
        from edgeml_runtime._version import __version__

        print(json.dumps({"schema": SCHEMA, "manifest": str(manifest_path), "rows": rows, "machine": facts,
                          "edgeml_runtime": __version__}, indent=2))
        return 0
    print(f"measured on {describe_measured_on(facts)}")
    print(format_rows(rows, chosen["path"] if chosen else None, chosen["threads"] if chosen else None))
    if chosen is None:
        raise EdgeMLError("none of the artifacts could run here (see the table); install their backend")
    return 0


def parse_threads(text: Optional[str]) -> Optional[List[int]]:
    """'1,2,4' -> [1, 2, 4]; None stays None (the default thread counts)."""
    from edgeml_runtime.recommend import parse_thread_counts

    if text is None:
        return None
    try:
        return parse_thread_counts(text)
    except ValueError as error:
        raise EdgeMLError(f"--threads: {error}") from None


def read_manifest(source) -> Tuple[Path, dict, Optional[str]]:
    """(manifest.json's path, its content, a note when its recommendation is stale) for a conversion directory or
    manifest, checked by the manifest reader. A recommendation naming an artifact that is not listed or failed its
    check is stale: select replaces it. One pointing outside the folder is refused, like anything else wrong."""
    from edgeml_runtime.documents import DocumentError, conversion_manifest_from_dict, inside_path, read_json_object

    path = Path(source)
    if path.is_dir():
        path = path / formats.MANIFEST_FILE
    if not path.is_file():
        raise EdgeMLError(f"no conversion manifest at {path}; pass an `edgeml convert` output directory or its "
                          f"{formats.MANIFEST_FILE}")
    data = read_json_object(path, "conversion manifest")
    try:
        conversion_manifest_from_dict(data, path)
        return path, data, None
    except DocumentError as error:
        recommended = data.get(formats.RECOMMENDED_KEY)
        if not isinstance(recommended, dict):
            raise
        inside_path(recommended.get("path"), path, formats.RECOMMENDED_KEY)  # outside the folder: refused
        conversion_manifest_from_dict(without_recommendation(data), path)  # anything else wrong: refused
        return path, data, f"its recommendation is stale and will be replaced ({error})"


def without_recommendation(data: dict) -> dict:
    """The manifest without `recommended`: what the candidates are read from (measuring does not depend on it)."""
    return {key: value for key, value in data.items() if key != formats.RECOMMENDED_KEY}


def measured_here() -> dict:
    """This machine's facts, with `emulated` true (and the emulator named) when it runs under one."""
    from edgeml_runtime.recommend import machine_facts

    facts = machine_facts()
    if facts.get("emulated"):  # machine_info gives the emulator's name (EDGEML_EMULATED)
        facts.update(kind="emulated", emulated=True, emulator=str(facts["emulated"]))
    return facts


def kept_instead(existing: Optional[dict], measured_on: dict) -> Optional[str]:
    """Why the manifest's `existing` recommendation stays instead of one measured on `measured_on`, or None to
    replace it. The rule: a real device's measurement is never replaced by an emulated one (latency under an
    emulator says nothing about the device); anything else replaces what is there."""
    if not isinstance(existing, dict):
        return None
    before = existing.get("measured_on") or {}
    if before.get("kind") == DEVICE_KIND and not before.get("emulated") and measured_on.get("emulated"):
        return (f"kept the recommendation measured on the device {describe_measured_on(before)} "
                f"({existing.get('path')}): an emulated measurement never replaces a real device's")
    return None


def write_recommended(manifest_path: Path, data: dict, recommended: dict) -> None:
    """Set `recommended` in the manifest `data` (as read before measuring; refused when the file changed since):
    written to a temporary file beside it, then renamed over it, so a reader sees the old or the new manifest,
    never half of one."""
    import tempfile

    from edgeml_runtime.documents import conversion_manifest_from_dict, read_json_object

    if read_json_object(manifest_path, "conversion manifest") != data:  # re-converted while we were measuring
        raise EdgeMLError(f"{manifest_path} changed while its artifacts were measured; run select again")
    updated = {**data, formats.RECOMMENDED_KEY: recommended}
    conversion_manifest_from_dict(updated, manifest_path)  # what is written must read back (paths inside, listed)
    handle, temporary = tempfile.mkstemp(dir=manifest_path.parent, prefix=f".{manifest_path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(json.dumps(updated, indent=2) + "\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, os.stat(manifest_path).st_mode & 0o777)
        os.replace(temporary, manifest_path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def describe_measured_on(facts: dict) -> str:
    """'pi@192.168.1.20 (aarch64, Cortex-A72, 4 cores)', 'this machine (x86_64, ...)', with EMULATED when it was."""
    where = facts.get("host") or facts.get("kind") or "unknown machine"
    details = ", ".join(str(facts[key]) + (" cores" if key == "cores" else "")
                        for key in ("arch", "cpu", "cores") if facts.get(key))
    emulated = f", EMULATED by {facts.get('emulator') or 'an emulator'}" if facts.get("emulated") else ""
    return f"{where} ({details}{emulated})" if details or emulated else str(where)


def format_rows(rows: List[dict], chosen_path: Optional[str], chosen_threads: Optional[int]) -> str:
    """A plain-text table of measured rows (the device side has no rich); the chosen row starts with '*'."""
    lines = [f"  {'artifact':32} {'format':7} {'quant':8} {'bytes':>9} {'threads':>7} {'p50 ms':>10}  note"]
    for row in rows:
        mark = "*" if row["path"] == chosen_path and row.get("threads") == chosen_threads else " "
        p50 = "-" if row.get("p50_ms") is None else f"{row['p50_ms']:.4f}"
        lines.append(f"{mark} {row['path']:32} {row['format']:7} {row['quantization'] or 'fp32':8} "
                     f"{row['bytes']:>9} {row.get('threads') or '-':>7} {p50:>10}  {row.get('skipped') or ''}")
    return "\n".join(lines)


def _stderr_progress(event) -> None:
    line = event.message if event.total is None else f"{event.message} [{event.done}/{event.total}]"
    print(f"select: {line}", file=sys.stderr, flush=True)
