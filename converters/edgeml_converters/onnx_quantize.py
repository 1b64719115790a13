"""ONNX quantization with onnxruntime.quantization: dynamic (weights only) and static int8 (QDQ).

Static int8 is calibrated once per calibration method (the ranges kept in onnxruntime's calibration cache), so
variants of the same calibration cost a fraction of a second: nodes left in float (`exclude_nodes`, what
`--explain` measures and the repair's last rung ships) or tensors with 16-bit activations (`int16_tensors`,
onnxruntime's TensorQuantOverrides).
"""

from __future__ import annotations

import contextlib
import io
import logging
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from edgeml_runtime.errors import first_line as _first_line
from edgeml_runtime.progress import ProgressCallback, report

from edgeml_converters.calibration import Dataset
from edgeml_converters.errors import ConversionError

__all__ = ["CALIBRATION_METHODS", "StaticQuantizer", "WeightRange", "prepare", "quantize_dynamic_int8",
           "quantize_static_int8", "target_weight_range", "weight_range_for"]

# How activation ranges are taken from the calibration data: min/max (the default), or a histogram's 99.999th
# percentile / minimum-KL threshold, which ignore rare outliers (the repair's "better calibration").
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
PERCENTILE = 99.999


@dataclass(frozen=True)
class WeightRange:
    """Whether ONNX int8 weights use 7 bits (`reduce_range`) for the CPU that runs them, and why."""

    reduce_range: bool
    reason: str
    cpu: str

    def to_dict(self) -> dict:
        return {"weight_bits": 7 if self.reduce_range else 8, "reduce_range": self.reduce_range, "cpu": self.cpu,
                "reason": self.reason}


def weight_range_for(machine: Optional[str] = None, flags: Optional[Sequence[str]] = None) -> WeightRange:
    """7-bit weights only where ONNX Runtime's int8 kernels saturate: x86 without VNNI multiplies u8 x s8 pairs with
    VPMADDUBSW (AVX2) / PMADDUBSW (SSSE3), whose int16 sums saturate with full-range weights (onnxruntime's
    quantization docs); VNNI (AVX512-VNNI, AVX-VNNI) accumulates in int32, and ARM's dot-product kernels do not
    saturate, so there 8 bits keep more of the weights (e.g. cosine 0.995 vs 0.985 on a CIFAR ResNet). `machine`
    and `flags` describe the target; by default this host (platform.machine(), /proc/cpuinfo)."""
    machine = (machine or platform.machine() or "").lower()
    flags = set(flags if flags is not None else _cpu_flags())
    if machine in ("x86_64", "amd64", "i386", "i686", "x86"):
        if {"avx512_vnni", "avx_vnni", "avxvnni"} & flags:
            return WeightRange(False, "x86 with VNNI: int8 dot products accumulate in int32, 8-bit weights do not "
                                      "saturate", machine)
        simd = "AVX2" if "avx2" in flags else "SSSE3/SSE4" if flags else "unknown SIMD"
        return WeightRange(True, f"x86 with {simd} but no VNNI: ONNX Runtime's int8 kernels add u8 x s8 pairs in "
                                 "saturating int16, so weights are quantized to 7 bits", machine)
    if machine.startswith(("aarch64", "arm64", "armv8", "armv7", "arm")):
        return WeightRange(False, "ARM: ONNX Runtime's int8 kernels accumulate in int32, 8-bit weights do not "
                                  "saturate", machine)
    return WeightRange(True, f"{machine or 'unknown CPU'}: saturation not ruled out, 7-bit weights to be safe",
                       machine)


def target_weight_range(machine: Optional[str]) -> WeightRange:
    """The weight range for a named target (a device profile's arch), else for this host. A named device's CPU
    flags are not known here: an x86 device keeps 7-bit weights unless it is this very host."""
    if machine is None or machine == platform.machine():
        return weight_range_for()
    return weight_range_for(machine, [])


def _cpu_flags() -> Sequence[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith(("flags", "Features")):
                    return line.partition(":")[2].split()
    except OSError:
        pass
    return []


def quantize_dynamic_int8(source: Path, destination: Path) -> None:
    """int8 weights; activations are quantized on the fly at run time (no calibration data)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        # MatMul/Gemm only: ConvInteger (what Conv becomes) has no int8-weight kernel in ONNX Runtime's CPU
        # provider, so quantizing Conv would give a model that does not load. reduce_range (7-bit weights): see
        # weight_range_for; kept on every CPU here, where the file's target is not known.
        with _quiet_root_logger():
            quantize_dynamic(str(source), str(destination), weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul", "Gemm"], reduce_range=True)
    except Exception as error:
        raise ConversionError(f"ONNX dynamic quantization failed: {_first_line(error)}") from None


def quantize_static_int8(source: Path, destination: Path, calibration: Dataset, *,
                         progress: ProgressCallback = None, weights: Optional[WeightRange] = None) -> None:
    """Static int8 in QDQ format with per-channel weights (7-bit where the target's kernels need it, see
    `weight_range_for`). Reports stage "calibrate" events counting samples (done/total), and a "quantize" note when
    pre-processing had to be skipped."""
    with tempfile.TemporaryDirectory(prefix="edgeml-onnx-") as scratch:
        prepared = prepare(source, Path(scratch) / "prepared.onnx", progress=progress)
        StaticQuantizer(prepared, calibration, Path(scratch), weights=weights, progress=progress).build(destination)


def prepare(source: Path, prepared: Path, *, progress: ProgressCallback = None) -> Path:
    """Shape inference + graph optimisation (e.g. folding BatchNorm into Conv, MatMul+Add into Gemm) before
    quantizing, as onnxruntime recommends: fewer, better-calibrated quantized tensors. Returns the model to quantize
    (`source` itself when pre-processing fails on the graph)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        # skip_symbolic_shape: ONNX's own shape inference covers these graphs, and symbolic inference
        # needs sympy, which onnxruntime does not install.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        return prepared
    except Exception as error:  # symbolic shape inference fails on some graphs: quantize as is
        report(progress, "quantize", f"ONNX int8: pre-processing skipped ({_first_line(error)})", level="note")
        return source


class StaticQuantizer:
    """QDQ int8 of one prepared model and calibration set; calibrated on the first `build`, the ranges then reused
    from a calibration cache in `scratch` (one per method)."""

    def __init__(self, prepared: Path, calibration: Dataset, scratch: Path, *, method: str = "minmax",
                 weights: Optional[WeightRange] = None, progress: ProgressCallback = None, tag: str = ""):
        if method not in CALIBRATION_METHODS:
            raise ValueError(f"unknown calibration method {method!r}")
        self.prepared, self.calibration, self.method = prepared, calibration, method
        self.weights = weights or weight_range_for()
        self.progress = progress
        self.cache = scratch / f"calibration-{method}{'-' + tag if tag else ''}.json"

    def build(self, destination: Path, *, exclude_nodes: Sequence[str] = (), int16_tensors: Sequence[str] = ()
              ) -> None:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                  "entropy": CalibrationMethod.Entropy}[self.method]
        extra = {"CalibPercentile": PERCENTILE} if self.method == "percentile" else {}
        if int16_tensors:
            # 16-bit activations on these tensors only; onnxruntime's own QuantizeLinear/DequantizeLinear (the
            # com.microsoft domain) run int16 before opset 21.
            extra["TensorQuantOverrides"] = {name: [{"quant_type": QuantType.QInt16}] for name in int16_tensors}
            extra["UseQDQContribOps"] = True
        label = "" if self.method == "minmax" else f" ({self.method})"  # the default needs no label
        reader = None if self.cache.is_file() else _reader(self.calibration, self.progress,
                                                             f"calibrating ONNX int8{label}")
        try:
            # The histogram calibrators print their progress: keep it off our stdout (--json).
            with _quiet_root_logger(), contextlib.redirect_stdout(io.StringIO()):
                quantize_static(
                    str(self.prepared), str(destination), reader,
                    quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=self.weights.reduce_range,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    nodes_to_exclude=list(exclude_nodes), calibrate_method=method, extra_options=extra,
                    calibration_cache_path=str(self.cache),
                )
        except Exception as error:
            raise ConversionError(f"ONNX static int8 quantization failed: {_first_line(error)}") from None


def _reader(calibration: Dataset, progress: ProgressCallback, label: str = "calibrating ONNX int8"):
    """A CalibrationDataReader that feeds one sample at a time and reports progress."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._samples = calibration.one_by_one()
            self._done = 0

        def get_next(self):
            sample = next(self._samples, None)
            if sample is not None:
                self._done += 1
                if self._done == calibration.samples or self._done % 25 == 0:
                    report(progress, "calibrate", label, done=self._done,
                           total=calibration.samples)
            return sample

    return Reader()


@contextlib.contextmanager
def _quiet_root_logger():
    """onnxruntime.quantization logs advice ("consider pre-processing") on the root logger; we already
    pre-process, so keep those lines out of the user's terminal."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
