"""`edgeml setup TOOL`: build (or reuse) a tool environment in the edgeml cache, once, explicitly.

Tools with pinned dependencies that edgeml's own environment cannot share get a virtual environment of their
own under ~/.cache/edgeml/tools (or $EDGEML_CACHE/tools); commands that need one say which `edgeml setup` to run.
"""

from __future__ import annotations

import json

import click

# name -> (module with build()/status(), what it is for)
TOOLS = {
    "onnx2tf": ("edgeml_converters.onnx2tf_env", "ONNX → TFLite conversion (edgeml convert model.onnx)"),
}


@click.command()
@click.argument("tool", required=False)
@click.option("--force", is_flag=True, help="Delete the tool's environment and build it again.")
@click.option("--json", "as_json", is_flag=True, help="Print the environment's path and versions as JSON.")
def setup(tool, force, as_json):
    """Build (or reuse) the environment of TOOL in the edgeml cache; without TOOL, list what can be set up.

    \b
    edgeml setup onnx2tf           about 2.6 GB and a few minutes, once; a rerun reuses it (about a second)
    edgeml setup onnx2tf --force   rebuild it from nothing
    """
    if tool is None:
        _list_tools(as_json)
        return
    module = _tool_module(tool)
    from edgeml.console import ProgressDisplay

    with ProgressDisplay(f"setting up {tool}") as display:
        result = module.build(force=force, progress=display)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    verb = "reused" if result["reused"] else "built"
    versions = ", ".join(f"{name} {version}" for name, version in (result["versions"] or {}).items())
    click.echo(f"{tool} environment {verb}: {result['path']} ({versions})")


def _tool_module(tool: str):
    import importlib

    if tool not in TOOLS:
        raise click.UsageError(f"unknown tool '{tool}'; what can be set up: {', '.join(sorted(TOOLS))}")
    module_name = TOOLS[tool][0]
    try:
        return importlib.import_module(module_name)
    except ImportError:
        from edgeml_runtime import EdgeMLError

        raise EdgeMLError(f"`edgeml setup {tool}` needs the converters: pip install 'edgeml[converters]'") from None


def _list_tools(as_json: bool) -> None:
    rows = []
    for name, (_, purpose) in sorted(TOOLS.items()):
        state = _tool_module(name).status()
        rows.append({"tool": name, "for": purpose, "ready": state["ready"], "path": state["path"]})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['tool']:10} {'ready' if row['ready'] else 'not set up':11} {row['for']}  ({row['path']})")
    click.echo("set one up: edgeml setup NAME")
