"""The `edgeml` command line.

Sub-commands live in `edgeml/commands/<name>.py` and are imported only when used, so that
`edgeml --help` stays fast and never imports TensorFlow.
"""

from __future__ import annotations

import importlib
import sys

import click

# name -> (module, attribute, one-line help shown by `edgeml --help` without importing the module)
COMMANDS = {
    "train": ("edgeml.commands.train", "train", "Train a compact Keras model from a CSV, image folder or .npz."),
    "explore": ("edgeml.commands.explore", "explore", "Summarise a dataset and plot its columns."),
    "convert": ("edgeml.commands.convert", "convert", "Convert a Keras/TF model to TFLite and ONNX, and check it."),
    "bench": ("edgeml.commands.bench", "bench", "Benchmark models side by side (latency, memory)."),
    "inspect": ("edgeml.commands.inspect", "inspect", "Show a model's inputs, outputs and quantization."),
    "devices": ("edgeml.commands.devices", "devices", "List device profiles, or build an emulated device."),
    "bundle": ("edgeml.commands.bundle", "bundle", "Build an offline-installable bundle for a device."),
    "select": ("edgeml.commands.select", "select", "Measure artifacts where they run; record the fastest."),
    "deploy": ("edgeml.commands.deploy", "deploy", "Deploy a bundle over SSH, verify it, activate or roll back."),
    "doctor": ("edgeml.commands.doctor", "doctor", "Check what is installed and what works on this machine."),
    "quickstart": ("edgeml.commands.quickstart", "quickstart", "Train, convert and benchmark on built-in data."),
    "setup": ("edgeml.commands.setup", "setup", "Build (or reuse) a tool environment, e.g. onnx2tf."),
}


class LazyGroup(click.Group):
    """A click group that imports a sub-command's module only when that command runs."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module_name, attribute, _ = COMMANDS[name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:  # the command is not built yet
                return None
            raise
        return getattr(module, attribute)

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except click.ClickException:
            raise
        except Exception as error:  # noqa: BLE001 - user errors become one line, others too unless --debug
            from edgeml.error_reporting import report_and_exit

            report_and_exit(error, debug=ctx.obj.get("debug", False) if ctx.obj else False)


def _version_report() -> str:
    from edgeml.versions import installed_versions

    lines = [f"{name} {version}" for name, version in installed_versions().items()]
    return "\n".join(lines)


def _print_version(ctx, _param, value):
    if value and not ctx.resilient_parsing:
        click.echo(_version_report())
        ctx.exit(0)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show edgeml, runtime and backend versions.",
)
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors, and native libraries' logs.")
@click.pass_context
def cli(ctx, debug):
    """edgeml: from training to running on small devices."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    from edgeml.quiet import configure

    configure(debug)  # native libraries' start-up lines: silenced, unless --debug


def main(argv=None):
    cli.main(args=argv, prog_name="edgeml", standalone_mode=True)


if __name__ == "__main__":
    sys.exit(main())
