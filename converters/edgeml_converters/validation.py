"""Checking each converted artifact against the original model, and the gates that decide pass/fail.

The artifact runs through `edgeml_runtime` (what the device will run), the original through Keras/TF.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from edgeml_converters.calibration import Dataset
from edgeml_converters.modes import Mode

__all__ = [
    "DEFAULT_GATES", "Gate", "check_outputs", "compare_outputs", "gates_with_overrides",
    "not_runnable", "run_artifact", "run_batches", "validate",
]


@dataclass(frozen=True)
class Gate:
    """Thresholds one artifact must meet. None means "not checked"."""

    max_relative_diff: Optional[float] = None  # max |artifact - original| / range of the original's output
    min_cosine: Optional[float] = None
    min_agreement: Optional[float] = None  # top-1 agreement, classifier outputs only

    def describe(self) -> str:
        parts = []
        if self.max_relative_diff is not None:
            parts.append(f"max diff <= {self.max_relative_diff:g} x output range")
        if self.min_cosine is not None:
            parts.append(f"cosine >= {self.min_cosine:g}")
        if self.min_agreement is not None:
            parts.append(f"decisive top-1 agreement >= {self.min_agreement:g}")
        return ", ".join(parts)


# Default gates per mode. fp32 must reproduce the original up to float rounding: differences in
# accumulation order stay around 1e-6 of the output range, so 1e-4 only fails on a real conversion bug.
# The quantized modes lose precision by design, so they are judged by what users care about: the
# direction of the output vector (cosine) and whether the predicted class stays the same (top-1).
# fp16 keeps ~3 significant digits (cosine ~0.99999 in practice); dynamic-range int8 quantizes weights
# only; full int8 also quantizes activations, where 1-3% of top-1 flips on held-out data are typical.
# int16x8 keeps 16-bit activations, so it is held to the dynamic-range bar.
DEFAULT_GATES: Dict[Mode, Gate] = {
    Mode.FP32: Gate(max_relative_diff=1e-4),
    Mode.FP16: Gate(min_cosine=0.999, min_agreement=0.99),
    Mode.DYNAMIC: Gate(min_cosine=0.99, min_agreement=0.97),
    Mode.INT8: Gate(min_cosine=0.98, min_agreement=0.95),
    Mode.INT16X8: Gate(min_cosine=0.99, min_agreement=0.97),
}


def gates_with_overrides(fp32_tolerance=None, min_cosine=None, min_agreement=None) -> Dict[Mode, Gate]:
    """The default gates, with the user's thresholds (--fp32-tolerance, --min-cosine, --min-agreement)."""
    gates = {}
    for mode, gate in DEFAULT_GATES.items():
        if mode is Mode.FP32:
            gates[mode] = Gate(max_relative_diff=gate.max_relative_diff if fp32_tolerance is None else fp32_tolerance)
        else:
            gates[mode] = Gate(
                min_cosine=gate.min_cosine if min_cosine is None else min_cosine,
                min_agreement=gate.min_agreement if min_agreement is None else min_agreement,
            )
    return gates


def validate(path: Path, reference: Dict[str, np.ndarray], data: Dataset, gate: Gate, *,
             synthetic: bool) -> dict:
    """The manifest's `validation` entry for the artifact at `path`."""
    outputs, runner = run_artifact(path, data)
    return check_outputs(reference, outputs, data, gate, synthetic=synthetic, runner=runner)


def check_outputs(reference: Dict[str, np.ndarray], outputs: Dict[str, np.ndarray], data: Dataset, gate: Gate, *,
                  synthetic: bool, runner: str) -> dict:
    """The manifest's `validation` entry for the `outputs` an artifact gave on `data`, however it was run
    (`runner` says how): compared with the original's `reference` outputs and judged by `gate`."""
    metrics = compare_outputs(reference, outputs)
    # Random inputs sit near decision boundaries, where a tiny change flips the top class, so on
    # synthetic data top-1 agreement is reported but does not gate.
    agreement_gated = gate.min_agreement is not None and not synthetic
    checks = [
        gate.max_relative_diff is None or metrics["relative_max_abs_diff"] <= gate.max_relative_diff,
        gate.min_cosine is None or metrics["cosine"] >= gate.min_cosine,
        # Gated on the decisive agreement (near-ties within the noise left out, see TIE_FACTOR).
        not agreement_gated or metrics["gated_agreement"] is None or metrics["gated_agreement"] >= gate.min_agreement,
    ]
    return {
        "samples": data.samples,
        "max_abs_diff": metrics["max_abs_diff"],
        "cosine": metrics["cosine"],
        "top1_agreement": metrics["top1_agreement"],  # raw, over every sample (DESIGN.md)
        "decisive_top1_agreement": metrics["decisive_top1_agreement"],
        "decisive_samples": metrics["decisive_samples"],
        "tie_margin": metrics["tie_margin"],
        "passed": bool(all(checks)),
        "relative_max_abs_diff": metrics["relative_max_abs_diff"],
        "gate": (gate if agreement_gated else Gate(gate.max_relative_diff, gate.min_cosine)).describe(),
        "data": data.source,
        "runner": runner,
    }


def run_artifact(path: Path, data: Dataset):
    """Outputs of the artifact on every sample, through edgeml_runtime (what the device runs)."""
    import edgeml_runtime

    model = edgeml_runtime.load(path)
    return run_batches(model.run, model.inputs[0].shape[0], data), f"edgeml_runtime/{model.backend}"


def not_runnable(data: Dataset, reason: str) -> dict:
    """The validation entry of an artifact the runtime cannot run (a Flex model, allowed by the user)."""
    return {"samples": 0, "max_abs_diff": None, "cosine": None, "top1_agreement": None,
            "decisive_top1_agreement": None, "passed": False, "error": reason, "data": data.source}


def run_batches(run, batch: Optional[int], data: Dataset, chunk: int = 256) -> Dict[str, np.ndarray]:
    """`run` over every sample, in chunks: a fixed batch size as the model wants, else `chunk` at once."""
    step = batch or chunk
    parts = [run({name: array[start:start + step] for name, array in data.arrays.items()})
             for start in range(0, data.samples, step)]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


# Top-1 agreement and near-ties. A lightly trained classifier's outputs are often near-ties (top-1 and
# top-2 within a hair), and then quantization noise far too small to matter elsewhere (cosine 0.99999)
# flips the predicted class on many samples: raw agreement says 93% although nothing was lost. A flip
# needs the original's top-1 vs top-2 margin to be overcome, i.e. an error of at least margin/2 on one of
# the two, so a flip on a sample whose margin is within the artifact's typical error is a coin toss, not
# a lost decision. "Decisive" agreement therefore counts only the samples whose original margin exceeds
# TIE_FACTOR x the artifact's median per-sample max abs error: 2 for the flip bound, x2 for the spread of
# per-sample error around its median. The median (not the max) sets the band, so a minority of badly
# converted samples cannot widen it and excuse themselves. The overall error within the band is
# still gated, by cosine. When fewer than MIN_DECISIVE_FRACTION of the samples are decisive, the noise
# is as large as most margins and ties cannot be told from damage, so the raw agreement gates instead.
TIE_FACTOR = 4.0
MIN_DECISIVE_FRACTION = 0.5


def compare_outputs(reference: Dict[str, np.ndarray], candidate: Dict[str, np.ndarray]) -> dict:
    """Worst case over the outputs: max abs diff (absolute and relative to the output's range), mean
    cosine similarity per sample, and over classifier-like outputs (N, classes>=2) top-1 agreement, raw
    and decisive (near-ties within the noise left out, see TIE_FACTOR), with the margin and count used."""
    max_abs, relative, cosines, agreements, decisive = 0.0, 0.0, [], [], []
    for name, expected in reference.items():
        expected = np.asarray(expected, dtype=np.float64)
        actual = np.asarray(candidate[name], dtype=np.float64).reshape(expected.shape)
        if not expected.size:
            continue  # an empty output (a detector that found nothing): equal, and nothing to measure
        difference = float(np.max(np.abs(expected - actual)))
        spread = float(expected.max() - expected.min())
        scale = spread if spread > 0 else max(float(np.max(np.abs(expected))), 1e-12)
        max_abs, relative = max(max_abs, difference), max(relative, difference / scale)
        cosines.append(_mean_cosine(expected, actual))
        if expected.ndim == 2 and expected.shape[1] >= 2 and len(expected):
            agreements.append(float(np.mean(expected.argmax(axis=1) == actual.argmax(axis=1))))
            decisive.append(decisive_agreement(expected, actual))
    worst = min(decisive, key=lambda item: item["gated"]) if decisive else {}
    return {
        "max_abs_diff": max_abs,
        "relative_max_abs_diff": relative,
        "cosine": min(cosines) if cosines else 1.0,
        "top1_agreement": min(agreements) if agreements else None,
        "decisive_top1_agreement": worst.get("agreement"),
        "decisive_samples": worst.get("samples"),
        "tie_margin": worst.get("margin"),
        "gated_agreement": worst.get("gated"),  # what the agreement gate compares
    }


def decisive_agreement(expected: np.ndarray, actual: np.ndarray) -> dict:
    """Top-1 agreement over the samples whose original top-1 vs top-2 margin is beyond what the
    artifact's typical error could flip (TIE_FACTOR x the median per-sample max abs error), and the
    agreement to gate on: this one, or the raw one when too few samples are decisive."""
    noise = float(np.median(np.max(np.abs(expected - actual), axis=1)))
    top_two = np.sort(expected, axis=1)[:, -2:]
    decisive = (top_two[:, 1] - top_two[:, 0]) > TIE_FACTOR * noise
    same = expected.argmax(axis=1) == actual.argmax(axis=1)
    count = int(np.sum(decisive))
    agreement = float(np.mean(same[decisive])) if count else None
    enough = count >= MIN_DECISIVE_FRACTION * len(expected)
    return {"agreement": agreement, "samples": count, "margin": TIE_FACTOR * noise,
            "gated": agreement if enough else float(np.mean(same))}


def _mean_cosine(expected: np.ndarray, actual: np.ndarray) -> float:
    """Per-sample cosine, averaged. Outputs with one value per sample (regression) are compared as one
    vector over the batch instead: the cosine of two scalars only says whether their signs agree."""
    rows = len(expected)
    a, b = expected.reshape(rows, -1), actual.reshape(rows, -1)
    if a.shape[1] < 2:
        a, b = a.reshape(1, -1), b.reshape(1, -1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = np.sum(a * b, axis=1)
    both_zero = (np.linalg.norm(a, axis=1) == 0) & (np.linalg.norm(b, axis=1) == 0)
    cosine = np.where(both_zero, 1.0, dots / np.where(norms == 0, 1.0, norms))
    return float(np.mean(cosine))
