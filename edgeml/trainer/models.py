"""Edge-sized Keras models with the input scaling baked in.

Only layers that convert to builtin TFLite ops and plain ONNX (Dense, Conv2D, SeparableConv2D,
pooling, Normalization/Rescaling = sub/mul) are used: no Lambda, no string ops, a fixed feature size
and a dynamic batch dimension.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from edgeml.trainer.dataset import CLASSIFICATION, IMAGE, Dataset

ARCHITECTURES = ("auto", "mlp", "cnn", "dscnn")
OUTPUT_NAME = "output"


@dataclass
class ModelConfig:
    architecture: str = "auto"  # mlp for tables, cnn for images; dscnn = depthwise-separable CNN
    width: float = 1.0  # multiplies every layer's units / filters
    depth: int = 2  # hidden Dense layers (MLP) or convolution blocks (CNN)
    dropout: float = 0.1
    learning_rate: float = 1e-3

    def resolved(self, kind: str) -> ModelConfig:
        if self.architecture != "auto":
            return self
        return ModelConfig(**{**asdict(self), "architecture": "cnn" if kind == IMAGE else "mlp"})

    def to_dict(self) -> dict:
        return asdict(self)


def build_model(config: ModelConfig, data: Dataset, train_x: np.ndarray, train_y: Optional[np.ndarray] = None):
    """A compiled model for `data`; scaling statistics come from the training split only."""
    import keras

    config = config.resolved(data.kind)
    inputs = keras.Input(shape=train_x.shape[1:], name=data.input_name, dtype="float32")
    x = _scaling_layer(data, train_x)(inputs)
    if config.architecture == "mlp":
        if data.kind == IMAGE:
            x = keras.layers.Flatten()(x)
        x = _mlp_body(x, config)
    else:
        x = _cnn_body(x, config, separable=config.architecture == "dscnn")
    if data.task == CLASSIFICATION:
        outputs = keras.layers.Dense(data.num_classes, activation="softmax", name=OUTPUT_NAME)(x)
        loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
    else:
        # Trained on a standardised target; the last layer maps back to the target's units.
        mean, std = float(np.mean(train_y)), float(np.std(train_y) or 1.0)
        x = keras.layers.Dense(1, name="standardised")(x)
        outputs = keras.layers.Rescaling(scale=std, offset=mean, name=OUTPUT_NAME)(x)
        loss, metrics = "mse", ["mae"]
    model = keras.Model(inputs, outputs, name=f"edgeml_{config.architecture}")
    optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    return model


def scaling_facts(model) -> dict:
    """What the model's first layer does to raw input, for labels.json."""
    import keras

    layer = next(layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer))
    if isinstance(layer, keras.layers.Rescaling):
        return {"op": "rescale", "scale": float(layer.scale), "offset": float(layer.offset), "in_model": True,
                "meaning": f"the model computes x * {float(layer.scale):.6g}; feed raw values"}
    mean = np.asarray(layer.mean).reshape(-1)
    variance = np.asarray(layer.variance).reshape(-1)
    return {"op": "normalize", "in_model": True, "mean": mean.tolist(), "variance": variance.tolist(),
            "meaning": "the model computes (x - mean) / sqrt(variance), adapted on the training split; "
                       "feed raw values"}


def parameter_count(model) -> int:
    return int(model.count_params())


def _scaling_layer(data: Dataset, train_x: np.ndarray):
    import keras

    if data.rescale is not None:
        return keras.layers.Rescaling(scale=data.rescale, name="rescale")
    # Per feature for tables; one scalar for images of unknown value range.
    layer = keras.layers.Normalization(axis=-1 if data.kind != IMAGE else None, name="normalize")
    layer.adapt(train_x)
    return layer


def _mlp_body(x, config: ModelConfig):
    import keras

    units = max(4, int(round(64 * config.width)))
    for index in range(config.depth):
        x = keras.layers.Dense(units, activation="relu", name=f"dense_{index}")(x)
        if config.dropout:
            x = keras.layers.Dropout(config.dropout)(x)
    return x


def _cnn_body(x, config: ModelConfig, *, separable: bool):
    import keras

    filters = max(4, int(round(16 * config.width)))
    for index in range(config.depth):
        # The first block stays a plain convolution: a depthwise one on 1-3 channels learns little.
        conv = keras.layers.SeparableConv2D if separable and index > 0 else keras.layers.Conv2D
        x = conv(filters * 2**index, 3, padding="same", activation="relu", name=f"conv_{index}")(x)
        if x.shape[1] >= 2 and x.shape[2] >= 2:
            x = keras.layers.MaxPooling2D(2, name=f"pool_{index}")(x)
    # Small feature maps are flattened (keeps position); larger ones averaged (keeps the model small).
    small = x.shape[1] * x.shape[2] <= 16
    x = keras.layers.Flatten()(x) if small else keras.layers.GlobalAveragePooling2D()(x)
    if config.dropout:
        x = keras.layers.Dropout(config.dropout)(x)
    x = keras.layers.Dense(max(8, int(round(128 * config.width))), activation="relu", name="dense_head")(x)
    return x
