"""Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization Through Weight Equalization and Bias
Correction"), on a copy of a Keras model, before it is quantized.

Two layers joined by a positively homogeneous path (ReLU, pooling, padding: f(x / s) = f(x) / s for s > 0) compute
the same function when output channel c of the first is divided by s_c and input channel c of the second is
multiplied by s_c. Choosing s_c = sqrt(r1_c / r2_c) (r: the channel's weight range in each layer) gives both the
same range per channel, so no channel dominates an int8 scale: an inflated unit (weights x 300, the next layer's /
300) is brought back in line and the model stays all int8. A BatchNormalization right after the first layer is
part of it (the scaling goes into its gamma and beta). ReLU6 is not homogeneous (it clips at 6), so it ends a pair.

    copy, pairs = equalize(model)       # copy: a new Keras model; pairs: [(first, second), ...]; model untouched
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

__all__ = ["EqualizationPair", "equalize", "find_pairs"]

SWEEPS = 4  # passes over the pairs (a layer in two pairs moves again when its neighbour does)
FIRST = ("Dense", "Conv1D", "Conv2D", "DepthwiseConv2D")
SECOND = ("Dense", "Conv1D", "Conv2D", "DepthwiseConv2D")
HOMOGENEOUS = ("MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D", "GlobalAveragePooling1D",
               "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "Dropout", "SpatialDropout1D",
               "SpatialDropout2D", "ZeroPadding1D", "ZeroPadding2D", "Identity")
LINEAR_ACTIVATIONS = ("linear", "relu")


@dataclass(frozen=True)
class EqualizationPair:
    first: str  # the layer whose output channels are divided (and its BatchNormalization, if any)
    second: str  # the layer whose input channels are multiplied
    norm: Optional[str] = None  # the BatchNormalization between them that takes the scaling

    def describe(self) -> str:
        return f"{self.first}{' + ' + self.norm if self.norm else ''} -> {self.second}"


def equalize(model) -> Tuple[object, List[EqualizationPair]]:
    """A copy of `model` with every equalizable pair equalized, and the pairs. No pairs: (None, [])."""
    import keras

    pairs = find_pairs(model)
    if not pairs:
        return None, []
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for _ in range(SWEEPS):
        for pair in pairs:
            _equalize_pair(copy, pair)
    return copy, pairs


def find_pairs(model) -> List[EqualizationPair]:
    """The (first, second) layers joined by a homogeneous path, each link having one reader only."""
    try:
        readers, sources = _links(model)
        layers = {layer.name: layer for layer in model.layers}
    except Exception:  # a subclassed model: no layer graph to read
        return []
    pairs = []
    for name, layer in layers.items():
        if type(layer).__name__ not in FIRST or not _single_depth(layer):
            continue
        norm = None
        current = name
        activation = _activation(layer)
        if activation not in LINEAR_ACTIVATIONS:
            continue
        nxt = _only(readers.get(current))
        if nxt is not None and _usable_norm(layers[nxt]) and _only(sources.get(nxt)) == current:
            norm, current = nxt, nxt
            nxt = _only(readers.get(current))
        while nxt is not None and _homogeneous(layers[nxt]) and _only(sources.get(nxt)) == current:
            current, nxt = nxt, _only(readers.get(nxt))
        if nxt is None or _only(sources.get(nxt)) != current:
            continue
        second = layers[nxt]
        if type(second).__name__ not in SECOND or not _single_depth(second):
            continue
        pairs.append(EqualizationPair(name, nxt, norm))
    return pairs


def _equalize_pair(model, pair: EqualizationPair) -> None:
    first, second = model.get_layer(pair.first), model.get_layer(pair.second)
    weights_1, weights_2 = first.get_weights(), second.get_weights()
    kernel_1, kernel_2 = weights_1[0], weights_2[0]
    out_1 = _out_channels(first, kernel_1)  # (channels, values) view of the first layer's output channels
    in_2 = _in_channels(second, kernel_2)
    if out_1.shape[0] != in_2.shape[0]:
        return
    range_1 = np.max(np.abs(out_1), axis=1)
    if pair.norm is not None:
        norm = model.get_layer(pair.norm)
        gamma, beta, mean, variance = _norm_weights(norm)
        effective = np.abs(gamma) / np.sqrt(variance + norm.epsilon)
        range_1 = range_1 * effective
    range_2 = np.max(np.abs(in_2), axis=1)
    valid = (range_1 > 0) & (range_2 > 0)
    scale = np.ones_like(range_1)
    scale[valid] = np.sqrt(range_1[valid] / range_2[valid])
    if pair.norm is not None:
        _set_norm(norm, gamma / scale, beta / scale, mean, variance)
    else:
        weights_1[0] = _scale_out(first, kernel_1, 1.0 / scale)
        if first.use_bias:
            weights_1[1] = weights_1[1] / scale
        first.set_weights(weights_1)
    weights_2[0] = _scale_in(kernel_2, scale)
    second.set_weights(weights_2)


# --- kernels by channel ---------------------------------------------------------------------------------------


def _out_channels(layer, kernel: np.ndarray) -> np.ndarray:
    if type(layer).__name__ == "DepthwiseConv2D":  # (kh, kw, channels, 1): output channel c = input channel c
        return np.moveaxis(kernel[..., 0], -1, 0).reshape(kernel.shape[-2], -1)
    return np.moveaxis(kernel, -1, 0).reshape(kernel.shape[-1], -1)


def _in_channels(layer, kernel: np.ndarray) -> np.ndarray:
    if type(layer).__name__ == "DepthwiseConv2D":
        return np.moveaxis(kernel[..., 0], -1, 0).reshape(kernel.shape[-2], -1)
    return np.moveaxis(kernel, -2, 0).reshape(kernel.shape[-2], -1)


def _scale_out(layer, kernel: np.ndarray, factor: np.ndarray) -> np.ndarray:
    if type(layer).__name__ == "DepthwiseConv2D":
        return kernel * factor[:, None]
    return kernel * factor


def _scale_in(kernel: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """Input channel c (the second-to-last axis of Dense, Conv and DepthwiseConv kernels) times factor[c]."""
    return kernel * factor[:, None]


def _norm_weights(norm):
    gamma, beta, mean, variance = norm.get_weights()  # scale and center: checked when the pair was found
    return gamma, beta, mean, variance


def _set_norm(norm, gamma, beta, mean, variance) -> None:
    norm.set_weights([gamma.astype(np.float32), beta.astype(np.float32), mean, variance])


# --- the layer graph ----------------------------------------------------------------------------------------------


def _links(model) -> Tuple[Dict[str, List[str]], Dict[str, List[str]]]:
    """(readers, sources) by layer name, from the model's config (Functional) or its order (Sequential)."""
    import keras

    names = [layer.name for layer in model.layers]
    readers: Dict[str, List[str]] = {name: [] for name in names}
    sources: Dict[str, List[str]] = {name: [] for name in names}
    if isinstance(model, keras.Sequential):
        for before, after in zip(names, names[1:]):
            readers[before].append(after)
            sources[after].append(before)
        return readers, sources
    for entry in model.get_config()["layers"]:
        name = entry["name"] if "name" in entry else entry["config"]["name"]
        for origin in _histories(entry.get("inbound_nodes", [])):
            if origin in readers and name in sources:
                readers[origin].append(name)
                sources[name].append(origin)
    return readers, sources


def _histories(node) -> List[str]:
    """Layer names in the `keras_history` entries of a (nested) inbound-node config."""
    found = []
    if isinstance(node, dict):
        history = node.get("keras_history") if "keras_history" in node else None
        if history:
            found.append(history[0])
        for value in node.values():
            found += _histories(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            found += _histories(value)
    return found


def _only(values: Optional[List[str]]) -> Optional[str]:
    return values[0] if values and len(values) == 1 else None


def _activation(layer) -> str:
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", str(activation)) if activation is not None else "linear"


def _homogeneous(layer) -> bool:
    kind = type(layer).__name__
    if kind in HOMOGENEOUS:
        return True
    if kind == "ReLU":  # max_value None (not ReLU6), threshold 0: f(x/s) = f(x)/s
        return getattr(layer, "max_value", None) is None and float(getattr(layer, "threshold", 0.0) or 0.0) == 0.0
    if kind == "LeakyReLU":
        return True
    if kind == "Activation":
        return _activation(layer) in LINEAR_ACTIVATIONS
    return False


def _usable_norm(layer) -> bool:
    """A BatchNormalization over the last axis with gamma and beta, which can take a per-channel scaling."""
    if type(layer).__name__ != "BatchNormalization" or not (layer.scale and layer.center):
        return False
    try:
        axis = layer.axis if isinstance(layer.axis, int) else (layer.axis[0] if len(layer.axis) == 1 else None)
        return axis == -1 or (axis is not None and axis == len(layer.input.shape) - 1)
    except (AttributeError, TypeError, ValueError):  # a layer not connected in a graph
        return False


def _single_depth(layer) -> bool:
    """DepthwiseConv2D with depth_multiplier 1 only (then output channel c is input channel c)."""
    return type(layer).__name__ != "DepthwiseConv2D" or int(getattr(layer, "depth_multiplier", 1)) == 1

