"""`python -m edgeml_runtime` / `edgeml-runtime`: info, run and bench on the device.

Standard library only (argparse, json), so that it starts fast with numpy and one backend installed.
Exit codes: 0 ok, 1 a check failed, 2 usage or bad input, 70 an internal error (EX_SOFTWARE: a bug, to be
reported). No traceback unless --debug.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from edgeml_runtime._version import __version__
from edgeml_runtime.errors import CheckFailed, EdgeMLError

__all__ = ["EXIT_INTERNAL_ERROR", "main"]

EXIT_INTERNAL_ERROR = 70  # EX_SOFTWARE (sysexits.h): not 2, which means bad input

# Extra sub-commands living in their own modules: name -> module exposing add_parser(subparsers).
PLUGIN_COMMANDS = {"serve": "edgeml_runtime.serve.cli", "select": "edgeml_runtime.select_cli"}


BUILTIN_COMMANDS = ("info", "run", "bench")


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_of(argv)
    parser = build_parser(only=command if command in BUILTIN_COMMANDS else None)
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except CheckFailed as error:
        print(f"check failed: {error}", file=sys.stderr)
        return 1
    except EdgeMLError as error:
        _print_error(str(error), args.debug)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        _print_error("not enough memory for this model and input (MemoryError); use a smaller input or batch, "
                     "or a machine with more memory", args.debug)
        return 2
    except Exception as error:  # noqa: BLE001 - a bug still gets one line; --debug shows where
        _print_error(f"internal error: {type(error).__name__}: {error}\nthis is a bug in edgeml_runtime, please "
                     "report it with the output of `python -m edgeml_runtime --version` and of the same command "
                     "run with --debug", args.debug)
        return EXIT_INTERNAL_ERROR


def _command_of(argv: List[str]) -> Optional[str]:
    """The sub-command named in `argv` (its first word that is not an option), or None."""
    return next((word for word in argv if not word.startswith("-")), None)


def _print_error(message: str, debug: bool) -> None:
    if debug:
        import traceback

        traceback.print_exc()
    print(f"error: {message}", file=sys.stderr)


def build_parser(*, only: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser with every sub-command, or with the one built-in command `only` (what main does when the
    command line names one: the others' parsers and PLUGIN_COMMANDS' modules are then not built or imported,
    since `bench` is timed from process start, benchmarks/process_cost.py)."""
    parser = argparse.ArgumentParser(prog="edgeml_runtime", description="Run and benchmark edgeml models.",
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action=VersionAction, nargs=0, help="show versions and exit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="{info,run,bench,...}", required=True)
    builtins = {"info": _add_info, "run": _add_run, "bench": _add_bench}
    for name, add in builtins.items():
        if only is None or name == only:
            add(commands)
    for module_name in PLUGIN_COMMANDS.values() if only is None else ():
        _add_plugin(commands, module_name)
    return parser


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, the terminal's width looked up once: argparse makes a formatter for every
    add_argument, each asking shutil (an import of its own) for the width: milliseconds of every start."""

    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
        super().__init__(prog, indent_increment, max_help_position, width or _help_width())


def _help_width() -> int:
    if not _WIDTH:
        try:
            columns = int(os.environ.get("COLUMNS", "0")) or os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, OSError, ValueError):
            columns = 80
        _WIDTH.append(max(columns - 2, 20))  # as argparse: the width less 2
    return _WIDTH[0]


_WIDTH: List[int] = []


def _add_plugin(commands, module_name: str) -> None:
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            return  # that part is not installed in this build of the runtime
        raise
    module.add_parser(commands)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help=".tflite, .onnx or .ort file")
    parser.add_argument("--backend", help="litert, tflite_runtime or onnxruntime (default: first installed)")
    parser.add_argument("--threads", type=int, help="intra-op threads (default: all cores)")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")


def _add_info(commands) -> None:
    parser = commands.add_parser("info", formatter_class=HelpFormatter,
                                 help="show a model's inputs, outputs and backend")
    _common(parser)
    parser.set_defaults(handler=cmd_info)


def _add_run(commands) -> None:
    parser = commands.add_parser("run", formatter_class=HelpFormatter,
                                 help="run a model on inputs from a .npy/.npz file")
    _common(parser)
    parser.add_argument("-i", "--input", help=".npy (one input) or .npz (by input name); default: random")
    parser.add_argument("-o", "--output", help="write outputs to .npy (one output) or .npz")
    parser.add_argument("--raw", action="store_true", help="feed and return integer tensors of quantized models")
    parser.set_defaults(handler=cmd_run)


def _add_bench(commands) -> None:
    parser = commands.add_parser("bench", formatter_class=HelpFormatter,
                                 help="measure init, first-run and steady-state latency")
    _common(parser)
    parser.add_argument("--runs", type=int, default=50, help="minimum timed runs (default 50)")
    parser.add_argument("--warmup", type=int, default=1, help="minimum warm-up runs (default 1)")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="minimum timed seconds (default 1)")
    parser.add_argument("--warmup-seconds", type=float, default=0.5, help="minimum warm-up seconds (default 0.5)")
    parser.add_argument("--max-seconds", type=float, default=150.0, help="stop timing after this long")
    parser.add_argument("--batch", type=int, default=1, help="batch size for dynamic batch dimensions")
    parser.add_argument("-i", "--input", help=".npy/.npz inputs instead of random data")
    parser.add_argument("--per-op", action="store_true",
                        help="also time each operator (ONNX Runtime's profiler; .onnx/.ort models only)")
    parser.set_defaults(handler=cmd_bench)


def cmd_info(args) -> int:
    from edgeml_runtime.model import load

    model = load(args.model, backend=args.backend, threads=args.threads)
    info = {
        "model": str(model.path),
        "model_bytes": model.model_bytes,
        "format": model.format,
        "quantization": model.quantization,
        "backend": model.backend,
        "backend_version": model.backend_version,
        "inputs": [spec.to_dict() for spec in model.inputs],
        "outputs": [spec.to_dict() for spec in model.outputs],
    }
    if args.json:
        print(json_text(info, indent=2))
        return 0
    print(f"{model.path.name}: {model.format}, {model.model_bytes} bytes, {model.backend} {model.backend_version}")
    for title, specs in (("inputs", model.inputs), ("outputs", model.outputs)):
        print(f"{title}:")
        for spec in specs:
            print(f"  {spec.name}: {spec.describe()}")
    return 0


def cmd_run(args) -> int:
    from edgeml_runtime.bench import load_inputs_file, synthetic_inputs
    from edgeml_runtime.model import load

    model = load(args.model, backend=args.backend, threads=args.threads)
    feeds = load_inputs_file(args.input, model.inputs) if args.input else synthetic_inputs(model.inputs)
    outputs = model.run(feeds, raw=args.raw)
    if args.output:
        write_outputs(Path(args.output), outputs)
    if args.json:
        print(json_text({name: json_values(name, value) for name, value in outputs.items()}))
    elif not args.output:
        for name, value in outputs.items():
            print(f"{name}: shape {tuple(value.shape)} {value.dtype}\n{value}")
    return 0


def json_values(name: str, value: np.ndarray):
    """An output as nested lists for JSON, NaN and infinities as null (JSON has no such numbers; a bare
    NaN makes the whole document unreadable for strict parsers), with a warning on stderr."""
    if value.dtype.kind in "fc":
        finite = np.isfinite(value)
        if not finite.all():
            print(f"warning: output '{name}' has {int(value.size - finite.sum())} NaN/infinite value(s), written "
                  "as null", file=sys.stderr)
            return np.where(finite, value, None).tolist()
    return value.tolist()


def json_text(payload, **options) -> str:
    """JSON that strict parsers read: a stray non-finite float becomes null instead of a bare NaN."""
    import json  # here: only output in JSON needs it

    try:
        return json.dumps(payload, allow_nan=False, **options)
    except ValueError:
        return json.dumps(_finite(payload), allow_nan=False, **options)


def _finite(value):
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def write_outputs(path: Path, outputs: Dict[str, np.ndarray]) -> None:
    """Write to a temporary file next to `path`, then rename: an interrupted run leaves no half file."""
    if path.suffix not in (".npy", ".npz"):
        raise EdgeMLError(f"output file must end in .npy or .npz, got '{path.name}'")
    if path.suffix == ".npy" and len(outputs) != 1:
        raise EdgeMLError(f"the model has {len(outputs)} outputs {list(outputs)}; write them to a .npz file")
    if not path.parent.exists():
        raise EdgeMLError(f"output directory does not exist: {path.parent}")
    import tempfile  # only when writing: it pulls in random/hashlib, costly at start-up on small boards

    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    try:
        with os.fdopen(handle, "wb") as stream:
            if path.suffix == ".npy":
                np.save(stream, next(iter(outputs.values())))
            else:
                np.savez(stream, **outputs)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def cmd_bench(args) -> int:
    from edgeml_runtime.bench import benchmark

    result = benchmark(
        args.model,
        runs=args.runs,
        warmup=args.warmup,
        min_seconds=args.min_seconds,
        warmup_seconds=args.warmup_seconds,
        max_seconds=args.max_seconds,
        threads=args.threads,
        backend=args.backend,
        inputs=args.input,
        batch=args.batch,
    ).to_dict()
    if args.per_op:
        _add_per_op(result, args)
    if args.json:
        print(json_text(result, indent=2))
    else:
        print(format_bench(result))
        if args.per_op:
            _print_per_op(result)
    return 0


def _add_per_op(result: dict, args) -> None:
    from edgeml_runtime.profiling import add_per_op

    add_per_op(result, inputs=args.input, batch=args.batch, warmup=args.warmup)


def _print_per_op(result: dict) -> None:
    from edgeml_runtime.profiling import format_per_op

    print("\n".join(format_per_op(result)))


def format_bench(result: dict) -> str:
    latency, machine = result["latency_ms"], result["machine"]
    emulated = f"  [EMULATED: {machine['emulated']} - not device latency]" if machine.get("emulated") else ""
    return "\n".join(
        [
            f"model       {Path(result['model']).name}  {result['model_bytes']} bytes  {result['format']}"
            f"  quantization {result['quantization'] or 'none'}",
            f"backend     {result['backend']} {result['backend_version']}  threads {result['threads']}",
            f"init        {result['init_ms']:.2f} ms   first run {result['first_ms']:.3f} ms",
            f"latency ms  p50 {latency['p50']:.4f}  p90 {latency['p90']:.4f}  p95 {latency['p95']:.4f}"
            f"  p99 {latency['p99']:.4f}  mean {latency['mean']:.4f} ± {latency['std']:.4f}"
            f"  min {latency['min']:.4f}  max {latency['max']:.4f}",
            f"runs        {result['runs']} timed after {result['warmup_runs']} warm-up",
            f"throughput  {result['throughput_ips']:.1f} inferences/s   peak RSS {result['peak_rss_mb']:.1f} MB",
            f"machine     {machine['arch']}  {machine['cpu']}  {machine['cores']} cores  Python {machine['python']}"
            + emulated,
        ]
    )


class VersionAction(argparse.Action):
    """Prints versions only when asked: reading package metadata costs tens of milliseconds."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(_versions())
        parser.exit(0)


def _versions() -> str:
    from edgeml_runtime.formats import BACKENDS, backend_versions

    parts = [f"edgeml-runtime {__version__}", f"numpy {np.__version__}"]
    for name, version in backend_versions().items():
        parts.append(f"{BACKENDS[name].distribution} {version or 'not installed'}")
    return "\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())
