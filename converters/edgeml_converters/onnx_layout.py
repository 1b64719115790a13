"""The TFLite side of an ONNX source: the same data and reference, seen in the converted model's layout.

PyTorch graphs are NCHW; the SavedModel `onnx2tf_route` makes (and every .tflite made from it) takes NHWC unless
--keep-layout. A `LayoutView` maps between the two: calibration, validation and evaluation arrays are transposed
into the TFLite layout (and renamed to the SavedModel's signature keys), the ONNX reference outputs likewise, and
`source()` is the ONNX model wrapped to take and give TFLite-layout tensors. So the TFLite exporter, the int8
judge, --explain and the repair ladder run unchanged on the view, against the ONNX Runtime fp32 reference.

A perm p means tflite_array = onnx_array.transpose(p); None means the same layout.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgeml_converters.calibration import Dataset
from edgeml_converters.loading import SourceModel, TensorInfo

__all__ = ["LayoutView", "layout_entry", "make_view"]

Perm = Optional[Tuple[int, ...]]


@dataclass
class _Tensor:
    onnx: TensorInfo  # the ONNX model's tensor
    name: str  # the converted model's name for it (the SavedModel's signature key)
    perm: Perm

    @property
    def shape(self) -> Tuple[Optional[int], ...]:
        return tuple(self.onnx.shape[axis] for axis in self.perm) if self.perm else self.onnx.shape

    def forward(self, array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.transpose(array, self.perm)) if self.perm else array

    def back(self, array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.transpose(array, np.argsort(self.perm))) if self.perm else array


class LayoutView:
    """ONNX-layout data and outputs <-> the converted model's layout and names."""

    def __init__(self, inputs: List[_Tensor], outputs: List[_Tensor]):
        self.inputs, self.outputs = inputs, outputs

    def arrays(self, arrays: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """ONNX inputs by ONNX name -> converted-layout inputs by converted name."""
        return {tensor.name: tensor.forward(arrays[tensor.onnx.name]) for tensor in self.inputs}

    def results(self, outputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """ONNX outputs by ONNX name -> converted-layout outputs by converted name."""
        return {tensor.name: tensor.forward(outputs[tensor.onnx.name]) for tensor in self.outputs}

    def dataset(self, data: Optional[Dataset]) -> Optional[Dataset]:
        return None if data is None else Dataset(self.arrays(data.arrays), data.source)

    def plan(self, plan):
        """The DataPlan with every data set in the converted layout (ranges and preprocessing stay the ONNX
        names': they only go to the manifest, which describes the source's inputs)."""
        if plan is None:
            return None
        evaluation = plan.evaluation
        if evaluation is not None:
            evaluation = dataclasses.replace(evaluation, data=self.dataset(evaluation.data))
        return dataclasses.replace(plan, calibration=self.dataset(plan.calibration),
                                   validation=self.dataset(plan.validation), spare=self.dataset(plan.spare),
                                   evaluation=evaluation)

    def source(self, onnx_source: SourceModel, saved_model_dir, signature_key: str, keep_alive=None) -> SourceModel:
        """The ONNX model (ONNX Runtime, fp32) taking and giving converted-layout tensors, with the converted
        SavedModel to export TFLite from. Its `cleanup` leaves the ONNX source alone."""
        by_name = {tensor.name: tensor for tensor in self.inputs}

        def predict(feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
            onnx_feeds = {by_name[name].onnx.name: by_name[name].back(np.asarray(value))
                          for name, value in feeds.items()}
            return self.results(onnx_source.predict(onnx_feeds))

        inputs = [TensorInfo(t.name, t.shape, t.onnx.dtype) for t in self.inputs]
        outputs = [TensorInfo(t.name, t.shape, t.onnx.dtype) for t in self.outputs]
        return SourceModel(onnx_source.path, onnx_source.kind, onnx_source.loader, inputs, outputs, saved_model_dir,
                           predict, [], signature_key=signature_key, keep_alive=keep_alive)

    def layouts(self) -> dict:
        """The manifest's `layout` of an artifact in the converted layout: its image-like inputs (and outputs)
        by its own names, and the ONNX source's layout they were transposed from."""
        from edgeml_converters.onnx_source import TORCH_LAYOUTS

        entry: dict = {}
        for key, tensors in (("inputs", self.inputs), ("outputs", self.outputs)):
            converted = {t.name: _spelled(t) for t in tensors if len(t.onnx.shape) in TORCH_LAYOUTS}
            if converted and (key == "inputs" or any(t.perm for t in tensors)):
                entry[key] = converted
        if entry:
            entry["source"] = {t.onnx.name: TORCH_LAYOUTS[len(t.onnx.shape)] for t in self.inputs
                               if len(t.onnx.shape) in TORCH_LAYOUTS}
        return entry

    def transposed_inputs(self) -> str:
        """"'image' as NHWC (ONNX: NCHW)", for each input the converted model takes transposed; '' for none."""
        from edgeml_converters.onnx_source import TORCH_LAYOUTS

        return ", ".join(f"'{t.name}' as {_spelled(t)} (ONNX: {TORCH_LAYOUTS[len(t.onnx.shape)]})"
                         for t in self.inputs if t.perm and len(t.onnx.shape) in TORCH_LAYOUTS)


def layout_entry(inputs: Sequence[TensorInfo]) -> dict:
    """The `layout` of an artifact that keeps the ONNX source's layout (the ONNX artifacts): {} without
    image-like inputs."""
    from edgeml_converters.onnx_source import input_layouts

    layouts = input_layouts(inputs)
    return {"inputs": layouts} if layouts else {}


def _spelled(tensor: _Tensor) -> str:
    from edgeml_converters.onnx_source import TORCH_LAYOUTS

    letters = TORCH_LAYOUTS[len(tensor.onnx.shape)]
    return "".join(letters[axis] for axis in tensor.perm) if tensor.perm else letters


def make_view(onnx_source: SourceModel, converted_inputs: Sequence[TensorInfo],
              converted_outputs: Sequence[TensorInfo], input_perms: Dict[str, Perm], output_perms: Dict[str, Perm],
              input_names: Optional[Dict[str, str]] = None, output_names: Optional[Dict[str, str]] = None
              ) -> LayoutView:
    """Pair each ONNX input/output with the converted model's (its signature's): by the route's name map (ONNX
    name -> signature key) where given, else by name spelled alike ('input.1' ~ 'input_1'), else by shape once
    transposed, else by order."""
    inputs = _pair(onnx_source.inputs, converted_inputs, input_perms, input_names or {}, "input")
    outputs = _pair(onnx_source.outputs, converted_outputs, output_perms, output_names or {}, "output")
    return LayoutView(inputs, outputs)


def _pair(onnx_tensors: Sequence[TensorInfo], converted: Sequence[TensorInfo], perms: Dict[str, Perm],
          names: Dict[str, str], what: str) -> List[_Tensor]:
    from edgeml_converters.errors import ConversionError

    if len(onnx_tensors) != len(converted):
        raise ConversionError(f"the converted TensorFlow model has {len(converted)} {what}(s), the ONNX model "
                              f"{len(onnx_tensors)}; the ONNX -> TFLite conversion lost or added tensors")
    left = list(converted)
    paired = []
    for info in onnx_tensors:
        perm = perms.get(info.name)
        perm = tuple(int(axis) for axis in perm) if perm is not None else None
        want = tuple(info.shape[axis] for axis in perm) if perm else info.shape
        match = (next((c for c in left if c.name == names.get(info.name)), None)
                 or next((c for c in left if _spelling(c.name) == _spelling(info.name)), None)
                 or next((c for c in left if _fits(c.shape, want)), None) or left[0])
        left.remove(match)
        paired.append(_Tensor(info, match.name, perm))
    return paired


def _spelling(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def _fits(shape: Sequence[Optional[int]], want: Sequence[Optional[int]]) -> bool:
    return len(shape) == len(want) and all(a is None or b is None or a == b for a, b in zip(shape, want))
