"""ONNX → SavedModel with onnx2tf, run in its own tool environment (`edgeml setup onnx2tf`) as a subprocess.

onnx2tf (TensorFlow 2.19 in its environment) turns the graph into a SavedModel; edgeml's own TFLite converter
(`tflite_export`, this environment's TensorFlow) then makes every quantization mode from it with the user's
calibration data, so gates, --explain and repairs apply as for a Keras model. PyTorch graphs are NCHW; the
SavedModel takes NHWC (onnx2tf's layout) unless `keep_layout`; `OnnxSavedModel.input_perms`/`output_perms` say
how each tensor was permuted, so calibration data (ONNX layout) can be fed to it.

The ONNX file is untrusted: onnx2tf gets a self-contained copy in a private work directory (onnxsim rewrites
its input in place), paths go as argv without a shell, and the subprocess has a time limit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple

from edgeml_runtime.progress import ProgressCallback, report

from edgeml_converters import onnx2tf_env
from edgeml_converters.errors import ConversionError, OnnxConversionError

__all__ = ["OnnxSavedModel", "onnx_to_saved_model", "tool_env_problem"]

DRIVER = Path(__file__).with_name("onnx2tf_driver.py")
TIMEOUT_S = 1800  # large graphs take minutes; a hung conversion must not hang edgeml
WORK_PREFIX = "onnx2tf-"
MAX_INLINE_BYTES = 2 * 1024 ** 3 - 1  # one protobuf (the self-contained copy) holds at most 2 GB
# The driver runs the SavedModel and ONNX Runtime on one random sample: float32 rounding stays far below this
# (relative to the outputs' size, at least 1); beyond it the layouts or onnx2tf are wrong.
MAX_RELATIVE_DIFF = 1e-3

Perm = Optional[Tuple[int, ...]]


@dataclass
class OnnxSavedModel:
    """A SavedModel made from an ONNX graph. The perms are keyed by ONNX tensor names, in ONNX order; a perm p
    means tflite_array = onnx_array.transpose(p) (e.g. (0, 2, 3, 1) for NCHW -> NHWC); None: same layout.
    `signature_inputs`/`signature_outputs` map ONNX names to the signature's (the same unless the ONNX name is
    not allowed in a SavedModel signature, as in "input:0")."""

    saved_model_dir: Path
    signature_key: str
    input_perms: Dict[str, Perm]
    output_perms: Dict[str, Perm]
    signature_inputs: Dict[str, str] = field(default_factory=dict)
    signature_outputs: Dict[str, str] = field(default_factory=dict)
    max_abs_diff: Optional[float] = None  # the SavedModel against ONNX Runtime on one random sample
    tool_versions: Dict[str, str] = field(default_factory=dict)


def tool_env_problem() -> Optional[str]:
    """None when the onnx2tf environment is ready, else one line naming `edgeml setup onnx2tf`."""
    return onnx2tf_env.problem()


def onnx_to_saved_model(onnx_path: Path, work_dir: Path, keep_layout: bool = False,
                        progress: ProgressCallback = None) -> OnnxSavedModel:
    """Convert `onnx_path` into work_dir/onnx2tf-XXXX/saved_model. Raises ConversionError when the tool environment
    is missing, OnnxConversionError naming the operator onnx2tf could not convert."""
    problem = tool_env_problem()
    if problem:
        raise ConversionError(problem)
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=work_dir))  # 0700, a new one per call
    model_copy = private / "model.onnx"
    _self_contained_copy(Path(onnx_path), model_copy)
    request = {"onnx": str(model_copy), "saved_model": str(private / "saved_model"), "keep_layout": bool(keep_layout),
               "result": str(private / "result.json")}
    (private / "request.json").write_text(json.dumps(request))
    layout = "keeping the ONNX layout" if keep_layout else "channel-first inputs become channel-last: NCHW -> NHWC"
    report(progress, "onnx2tf", f"ONNX → SavedModel with onnx2tf {onnx2tf_env.ONNX2TF_VERSION} ({layout})")
    log = _run_driver(private)
    result = _read_result(private, log)
    if "error" in result:
        raise _conversion_error(result["error"], log)
    return _saved_model(private / "saved_model", result)


def _self_contained_copy(source: Path, destination: Path) -> None:
    """The graph with any external weights inlined, written where only onnx2tf's work happens. External data
    must lie inside the model's folder (a crafted location could read any file)."""
    import onnx
    from onnx import external_data_helper

    try:
        model = onnx.load(str(source), load_external_data=False)
    except Exception as error:  # DecodeError and friends: not an ONNX protobuf
        raise OnnxConversionError(f"{source.name} is not a readable ONNX model: {type(error).__name__}") from None
    base = source.resolve().parent
    external = [tensor for tensor in external_data_helper._get_all_tensors(model)  # noqa: SLF001 - onnx's walk
                if external_data_helper.uses_external_data(tensor)]
    for tensor in external:
        location = external_data_helper.ExternalDataInfo(tensor).location
        if os.path.isabs(location) or base not in (base / location).resolve().parents:
            raise OnnxConversionError(f"{source.name}: external weights at '{location}' lie outside the model's "
                                      "folder; refused")
    if external:
        external_data_helper.load_external_data_for_model(model, str(base))
    if model.ByteSize() > MAX_INLINE_BYTES:
        raise OnnxConversionError(f"{source.name}: over 2 GB of weights; the TFLite route takes models up to 2 GB "
                                  "(TFLite's own limit too); use --to onnx")
    destination.write_bytes(model.SerializeToString())


def _run_driver(private: Path) -> str:
    env = onnx2tf_env.tool_env()
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    # onnx2tf starts `onnxsim` by name: the tool environment's comes first on PATH.
    environment["PATH"] = os.pathsep.join([str(env.bin_dir), environment.get("PATH", "")])
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    environment["CUDA_VISIBLE_DEVICES"] = "-1"  # CPU conversion; no GPU probing noise
    # The driver runs from the private folder: a script's own folder goes first on sys.path (Python < 3.11 even
    # with -I), and edgeml_converters' module names must not shadow the tool environment's packages.
    driver = private / DRIVER.name
    shutil.copyfile(DRIVER, driver)
    command = [str(env.python), "-I", str(driver), str(private / "request.json")]
    try:
        completed = subprocess.run(command, cwd=private, env=environment, capture_output=True, text=True,
                                   timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ConversionError(f"onnx2tf did not finish within {TIMEOUT_S} s") from None
    except OSError as error:
        raise ConversionError(f"cannot start the onnx2tf environment's Python ({error}); rebuild it: "
                              "edgeml setup onnx2tf --force") from None
    log = (completed.stdout or "") + (completed.stderr or "")
    (private / "onnx2tf.log").write_text(log)
    if completed.returncode != 0 and not (private / "result.json").is_file():
        raise ConversionError(f"onnx2tf exited with {completed.returncode}: {_last_error_line(log)}")
    return log


def _read_result(private: Path, log: str) -> dict:
    try:
        return json.loads((private / "result.json").read_text())
    except (OSError, ValueError):
        raise ConversionError(f"onnx2tf gave no result: {_last_error_line(log)}") from None


def _conversion_error(error: dict, log: str) -> OnnxConversionError:
    op, node = error.get("op"), error.get("node")
    reason = error.get("message") or _last_error_line(log)
    if op:
        where = f"operator {op}" + (f" (node '{node}')" if node else "")
        return OnnxConversionError(f"no TFLite files: {where} cannot be converted: {reason}", op=op, node=node)
    return OnnxConversionError(f"no TFLite files: onnx2tf could not convert the model: {reason}")


def _saved_model(directory: Path, result: dict) -> OnnxSavedModel:
    check = result.get("check") or {}
    diff = check.get("max_abs_diff")
    if diff is not None and diff > MAX_RELATIVE_DIFF * max(1.0, check.get("max_abs_reference") or 0.0):
        raise ConversionError(f"onnx2tf's SavedModel differs from ONNX Runtime by {diff:.3g} on a random sample: "
                              "the conversion is wrong (onnx2tf's layout handling, say); try --keep-layout")

    def perm(spec) -> Perm:
        return tuple(spec["perm"]) if spec.get("perm") else None

    return OnnxSavedModel(
        saved_model_dir=directory,
        signature_key=result["signature_key"],
        input_perms={spec["name"]: perm(spec) for spec in result["inputs"]},
        output_perms={spec["name"]: perm(spec) for spec in result["outputs"]},
        signature_inputs={spec["name"]: spec["signature"] for spec in result["inputs"]},
        signature_outputs={spec["name"]: spec["signature"] for spec in result["outputs"]},
        max_abs_diff=diff,
        tool_versions=dict(result.get("versions") or {}),
    )


def _last_error_line(log: str) -> str:
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "ERROR" in line]
    return ((errors or lines or ["no output"])[-1])[:300]
