"""`Predictor`: a model plus what the trainer recorded, so apps get labels and scores from raw samples.

    predictor = Predictor.from_bundle("/opt/app/model")       # or from_manifest / from_model
    result = predictor.predict([5.1, 3.5, 1.4, 0.2])           # one sample -> Prediction
    result.label, result.score, result.top_k, result.version
    predictor.predict(batch)                                    # (N, ...) -> list of Prediction

Without labels.json the task is guessed from the outputs (`edgeml_runtime.metadata.guess_task`): class
scores only when they look like probabilities, one value per sample as a value, anything else (an
autoencoder, several outputs) as arrays by output name. `task=` and `output=` override the guess.

Numpy and one backend only. Safe to call from several threads (Model.run is).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

from edgeml_runtime.errors import InputError, ModelLoadError
from edgeml_runtime.locate import ModelSource, locate
from edgeml_runtime.metadata import (
    ARRAYS,
    CLASSIFICATION,
    ModelMetadata,
    encode_records,
    guess_task,
    metadata_for_task,
    read_labels,
)
from edgeml_runtime.model import Model, load
from edgeml_runtime.specs import TensorSpec

__all__ = ["Prediction", "Predictor"]

PathLike = Union[str, "os.PathLike[str]"]


@dataclass  # not frozen: frozen dataclasses cost ~1 µs more to build, per sample
class Prediction:
    """One sample's result. Classifiers fill label/index/score/top_k; regression fills value; the "arrays"
    task fills `outputs` (every output of the model, or the one chosen, by name)."""

    version: str
    output: np.ndarray  # the model's (dequantized) output for this sample
    label: Optional[str] = None
    index: Optional[int] = None
    score: Optional[float] = None
    top_k: List[Tuple[str, float]] = field(default_factory=list)
    outputs: Optional[Dict[str, np.ndarray]] = None

    @property
    def value(self) -> np.ndarray:
        """Regression: the raw output array (for a single-value model, `value[0]` is the number)."""
        return self.output

    def to_dict(self) -> dict:
        if self.outputs is not None:
            return {"outputs": {name: value.tolist() for name, value in self.outputs.items()},
                    "version": self.version}
        if self.label is None:
            return {"value": self.output.tolist(), "version": self.version}
        return {
            "label": self.label,
            "index": self.index,
            "score": self.score,
            "top_k": [{"label": label, "score": score} for label, score in self.top_k],
            "version": self.version,
        }


class Predictor:
    """Raw sample in, Prediction out. Build it with from_bundle, from_manifest or from_model."""

    def __init__(self, model: Model, metadata: ModelMetadata, *, version: str, top_k: int = 3,
                 source: Optional[ModelSource] = None):
        self.model = model
        self.metadata = metadata
        self.version = version
        self.source = source
        self._input = model.inputs[0]
        self._sample_shape = _fixed_sample_shape(model.inputs)
        self._output = _chosen_output(model.outputs, metadata.output_name)
        # The arrays task without a chosen output returns every output; the others read one.
        self._output_names = ([spec.name for spec in model.outputs] if metadata.task == ARRAYS
                              and metadata.output_name is None else [self._output.name])
        self._classes = list(metadata.classes)
        self.top_k = max(1, min(top_k, len(metadata.classes) or 1))
        _check_consistent(model, metadata, self._output)

    # -- construction -------------------------------------------------------------------------------

    @classmethod
    def from_model(cls, path: PathLike, *, labels: Optional[PathLike] = None, task: Optional[str] = None,
                   classes: Optional[List[str]] = None, version: Optional[str] = None, top_k: int = 3,
                   backend: Optional[str] = None, threads: Optional[int] = None,
                   output: Optional[str] = None) -> Predictor:
        """A model file. labels.json beside it is used unless `labels`, or `task`/`classes`, say otherwise.
        `task`: 'classification', 'regression' or 'arrays'; `output`: the output to read (by name)."""
        source = locate(path)
        if source.kind != "model":
            raise ModelLoadError(f"{path} is not a model file; use Predictor.from_bundle or from_manifest")
        if labels is not None:
            source = ModelSource(source.model, Path(labels), source.version, source.kind)
        elif task is not None or classes is not None:
            source = ModelSource(source.model, None, source.version, source.kind)
        return cls._build(source, task=task, classes=classes, version=version, top_k=top_k, backend=backend,
                          threads=threads, output=output)

    @classmethod
    def from_manifest(cls, path: PathLike, *, artifact: Optional[str] = None, top_k: int = 3,
                      backend: Optional[str] = None, threads: Optional[int] = None, task: Optional[str] = None,
                      output: Optional[str] = None) -> Predictor:
        """An `edgeml convert` manifest.json (or its directory). `artifact` picks one by file name,
        quantization or format; by default the manifest's measured recommendation (`edgeml select`) when a
        backend here (`backend`, if given) runs it, else the first that passed its check and runs here
        (`predictor.source.note` says why)."""
        path = Path(path)
        source = locate(path / "manifest.json" if path.is_dir() else path, artifact=artifact, backend=backend)
        return cls._build(source, top_k=top_k, backend=backend, threads=threads, task=task, output=output)

    @classmethod
    def from_bundle(cls, path: PathLike, *, artifact: Optional[str] = None, top_k: int = 3,
                    backend: Optional[str] = None, threads: Optional[int] = None, task: Optional[str] = None,
                    output: Optional[str] = None) -> Predictor:
        """An unpacked bundle, a release directory, or a deployment directory (its `current` release). The
        model is chosen as in from_manifest when the bundle carries its conversion manifest."""
        path = Path(path)
        if path.is_file() and path.suffix.lower() != ".json":
            raise ModelLoadError(f"{path} is a file, not a bundle directory; use Predictor.from_model")
        return cls.from_path(path, artifact=artifact, top_k=top_k, backend=backend, threads=threads, task=task,
                             output=output)

    @classmethod
    def from_path(cls, path: PathLike, *, artifact: Optional[str] = None, top_k: int = 3,
                  backend: Optional[str] = None, threads: Optional[int] = None, task: Optional[str] = None,
                  output: Optional[str] = None) -> Predictor:
        """Whatever `path` is: model file, manifest.json, bundle, release or deployment directory."""
        return cls._build(locate(path, artifact=artifact, backend=backend), top_k=top_k, backend=backend,
                          threads=threads, task=task, output=output)

    @classmethod
    def _build(cls, source: ModelSource, *, task=None, classes=None, version=None, top_k=3, backend=None,
               threads=None, output=None) -> Predictor:
        model = load(source.model, backend=backend, threads=threads)
        chosen = _output_named(model, output) if output is not None else None
        output_shape = (chosen or model.outputs[0]).shape
        labels = read_labels(source.labels) if source.labels is not None else None
        if labels is not None:
            metadata = labels
            if task not in (None, labels.task) or classes is not None:  # the caller overrides labels.json's task
                wanted = task or labels.task
                known = labels.classes if wanted == CLASSIFICATION and labels.task == CLASSIFICATION else None
                stated = metadata_for_task(wanted, output_shape, classes or known)
                metadata = dataclasses.replace(stated, features=labels.features, image=labels.image,
                                               source=labels.source)
        elif task is not None or classes is not None:
            metadata = metadata_for_task(task or CLASSIFICATION, output_shape, classes)
        elif chosen is not None:
            metadata = guess_task([chosen], _probe(model))
        else:
            metadata = guess_task(model.outputs, _probe(model) if len(model.outputs) == 1 else None)
        if chosen is not None:
            metadata = dataclasses.replace(metadata, output_name=chosen.name)
        return cls(model, metadata, version=version or source.version,
                   top_k=top_k, source=source)

    # -- prediction ---------------------------------------------------------------------------------

    @property
    def output_spec(self) -> TensorSpec:
        """The output predictions are read from (labels.json names it; else the first)."""
        return self._output

    @property
    def task(self) -> str:
        return self.metadata.task

    def predict(self, sample: Any, *, top_k: Optional[int] = None) -> Union[Prediction, List[Prediction]]:
        """One raw sample -> Prediction; a batch (one more leading dimension) -> list of Prediction.

        A sample is an array or nested list shaped like one model input, a dict by input name, or for
        table models a row dict {column: value} (a list of row dicts is a batch).
        """
        if type(sample) is np.ndarray and sample.shape == self._sample_shape:
            feeds, single = sample[None], True  # one array sample of the fixed shape: the hot path
        else:
            feeds, single = self.to_model_input(sample)
        outputs = self.model.run(feeds)
        if self.metadata.task == ARRAYS:
            predictions = self.interpret_arrays(outputs)
        else:
            predictions = self.interpret(outputs[self._output.name], top_k=top_k)
        return predictions[0] if single else predictions

    def to_model_input(self, sample: Any) -> Tuple[Any, bool]:
        """(feeds for Model.run with a batch dimension, whether `sample` was a single sample)."""
        if isinstance(sample, Mapping):
            if self._is_feed_dict(sample):
                first = np.asarray(sample[self._input.name])
                single = first.ndim == len(self._input.shape) - 1
                return ({k: np.asarray(v)[None] for k, v in sample.items()} if single else dict(sample)), single
            return self._encode_rows(sample), True
        if _is_row_list(sample):
            return self._encode_rows(sample), False
        if len(self.model.inputs) > 1:
            raise InputError(f"the model has {len(self.model.inputs)} inputs {self.input_names}: pass a dict "
                             "by input name")
        array = _numeric_array(sample, self._input)
        return _with_batch(array, self._input)

    def interpret(self, outputs: np.ndarray, *, top_k: Optional[int] = None) -> List[Prediction]:
        """Model outputs (batch first) -> one Prediction per row."""
        rows = outputs.reshape(outputs.shape[0], -1) if outputs.ndim != 2 else outputs
        if self.metadata.task != CLASSIFICATION:
            return [Prediction(self.version, row) for row in outputs]
        k = self.top_k if top_k is None else max(1, min(int(top_k), rows.shape[1]))
        classes, version = self._classes, self.version
        predictions = []
        for index, scores in enumerate(rows.tolist()):  # indexing rows: iterating a numpy array costs more
            row = rows[index]
            ranked = _top_indices(row, scores, k)
            best = ranked[0]
            predictions.append(Prediction(version, row, classes[best], best, scores[best],
                                          [(classes[i], scores[i]) for i in ranked]))
        return predictions

    def interpret_arrays(self, outputs: Mapping[str, np.ndarray]) -> List[Prediction]:
        """Outputs by name (batch first) -> one Prediction per sample holding the returned outputs."""
        names, version = self._output_names, self.version
        count = len(outputs[names[0]])
        return [Prediction(version, outputs[names[0]][index], outputs={name: outputs[name][index] for name in names})
                for index in range(count)]

    @property
    def output_names(self) -> List[str]:
        """The outputs a prediction carries (the arrays task without --output: all of them)."""
        return list(self._output_names)

    @property
    def input_names(self) -> List[str]:
        return [spec.name for spec in self.model.inputs]

    def describe(self) -> dict:
        """JSON-ready facts for /health and logs."""
        return {
            "version": self.version,
            "model": str(self.model.path),
            "format": self.model.format,
            "backend": f"{self.model.backend} {self.model.backend_version}",
            "quantization": self.model.quantization,
            "inputs": [spec.to_dict() for spec in self.model.inputs],
            **self.metadata.to_dict(),
            "outputs": self.output_names,
        }

    def _is_feed_dict(self, sample: Mapping) -> bool:
        names = set(self.input_names)
        if set(sample) == names and (len(names) > 1 or self.metadata.features is None):
            return True
        if self.metadata.features is None:
            raise InputError(f"got an object with keys {sorted(sample)}; expected the model's inputs "
                             f"{self.input_names} (a row of named columns needs the model's labels.json)")
        return False

    def _encode_rows(self, rows: Any) -> np.ndarray:
        if self.metadata.features is None:
            raise InputError("rows of named columns need the model's labels.json (written by edgeml train); "
                             "send the feature vector as a list of numbers instead")
        return encode_records(rows, self.metadata.features)

    def __repr__(self) -> str:
        return f"<Predictor {self.model.path.name} version {self.version} {self.metadata.task}>"


def _fixed_sample_shape(inputs: List[TensorSpec]) -> Optional[Tuple[int, ...]]:
    """The shape of one sample when the model has one input and every dimension after the batch is fixed."""
    if len(inputs) != 1 or not inputs[0].shape or None in inputs[0].shape[1:]:
        return None
    return inputs[0].shape[1:]


def _output_named(model: Model, name: str) -> TensorSpec:
    for spec in model.outputs:
        if spec.name == name:
            return spec
    names = ", ".join(spec.name for spec in model.outputs)
    raise InputError(f"the model has no output named {name!r}; its outputs are: {names}")


def _probe(model: Model) -> Optional[Dict[str, np.ndarray]]:
    """The model's outputs on one made-up sample (values in [0, 1), dynamic dimensions 1), to see whether
    they look like class probabilities; None when it cannot run on such a sample."""
    rng = np.random.default_rng(0)
    feeds = {}
    for spec in model.inputs:
        shape = tuple(1 if dim is None else dim for dim in spec.shape)
        kind = np.dtype(spec.dtype).kind
        feeds[spec.name] = (rng.random(shape).astype(np.float32) if kind == "f" or spec.quantization is not None
                            else np.zeros(shape, dtype=spec.dtype))
    try:
        return model.run(feeds)
    except Exception:  # noqa: BLE001 - any failure only means "no evidence": the outputs are returned as arrays
        return None


def _chosen_output(outputs: List[TensorSpec], name: Optional[str]) -> TensorSpec:
    for spec in outputs:
        if spec.name == name:
            return spec
    return outputs[0]


def _check_consistent(model: Model, metadata: ModelMetadata, output: TensorSpec) -> None:
    """labels.json from another model would give wrong labels silently: refuse it at load."""
    width = output.shape[-1] if output.shape else None
    if metadata.task == CLASSIFICATION and width is not None and width != len(metadata.classes):
        raise ModelLoadError(f"{metadata.source or 'the class list'} names {len(metadata.classes)} classes but "
                             f"{model.path.name} outputs {width} scores; labels.json belongs to another model")
    features = (metadata.features or {}).get("vector")
    columns = model.inputs[0].shape[-1] if model.inputs[0].shape else None
    if features and len(model.inputs[0].shape) == 2 and columns is not None and columns != len(features):
        raise ModelLoadError(f"{metadata.source} describes {len(features)} features but {model.path.name} takes "
                             f"{columns}; labels.json belongs to another model")


def _top_indices(row: np.ndarray, scores: List[float], k: int) -> List[int]:
    """Indices of the k highest scores, ties in class order. Python's sort is faster for short rows."""
    if len(scores) <= 64:
        # reverse=True keeps equal scores in class order (Python's sort stays stable).
        return sorted(range(len(scores)), key=scores.__getitem__, reverse=True)[:k]
    return np.argsort(-row, kind="stable")[:k].tolist()


def _is_row_list(sample: Any) -> bool:
    return isinstance(sample, (list, tuple)) and len(sample) > 0 and all(isinstance(r, Mapping) for r in sample)


def _numeric_array(sample: Any, spec: TensorSpec) -> np.ndarray:
    try:
        array = np.asarray(sample)
    except (ValueError, TypeError):
        raise InputError(f"input '{spec.name}': rows of different lengths; expected {spec.describe()}") from None
    if array.dtype.kind not in "biuf":
        what = "rows of different lengths" if array.dtype == object else f"{array.dtype} values"
        raise InputError(f"input '{spec.name}': expected numbers shaped {spec.describe()}, got {what}")
    return array


def _with_batch(array: np.ndarray, spec: TensorSpec) -> Tuple[np.ndarray, bool]:
    """Add the batch dimension to one sample."""
    rank = len(spec.shape)
    if array.shape == spec.shape[1:]:  # the common case: one sample with fixed dimensions (µs count here)
        return array[None], True
    if array.ndim == rank - 1:
        wrong = [i for i, (want, have) in enumerate(zip(spec.shape[1:], array.shape)) if want not in (None, have)]
        if wrong:
            raise InputError(f"input '{spec.name}': expected one sample shaped {_sample_shape(spec)}, got shape "
                             f"{tuple(array.shape)} (dimension {wrong[0]} must be {spec.shape[wrong[0] + 1]})")
        return array[None], True
    if array.ndim == rank:
        return array, False
    raise InputError(f"input '{spec.name}': expected one sample shaped {_sample_shape(spec)} or a batch shaped "
                     f"{spec.describe()}, got shape {tuple(array.shape)}")


def _sample_shape(spec: TensorSpec) -> str:
    dims = ", ".join("None" if d is None else str(d) for d in spec.shape[1:])
    return f"({dims}{',' if len(spec.shape) == 2 else ''})"

