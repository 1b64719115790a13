"""Small trained Keras models whose int8 conversion goes wrong in known ways, for the input-range, --explain and
repair tests and for `benchmarks/precision_recovery.py`.

    data = digits()                                   # scikit-learn's 8x8 digits: x (N, 8, 8, 1) in 0..16, y
    model = inflated_channel(data)                    # one hidden unit x INFLATION (the next layer / INFLATION):
                                                      # the float function is unchanged, plain int8 collapses
    model = mobilenet_style(data)                     # depthwise-separable CNN (Conv/BN/ReLU blocks)
    model = digits_cnn(data)                          # a plain small CNN
    model = unit_range_images(seed)                   # (model, x in 0..1, y): expects 0..1, no Rescaling layer
    model = raw_range_features(seed)                  # (model, x in 0..255, y): expects raw 0..255 values

Everything is seeded and trains in a few seconds on 2 cores; TensorFlow is imported inside the functions.
Standard library only at import time.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

__all__ = [
    "INFLATED_LAYER",
    "INFLATION",
    "digits",
    "digits_cnn",
    "inflated_channel",
    "mobilenet_style",
    "raw_range_features",
    "unit_range_images",
]

INFLATED_LAYER = "hidden_a"  # the layer whose one unit is scaled up
INFLATION = 300.0  # "a few hundred": one int8 step of that layer's output then swallows every other unit


def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


def digits(test_fraction: float = 0.2) -> SimpleNamespace:
    """scikit-learn's digits as 8x8x1 images with raw values 0..16, split (seeded) into train and test."""
    import numpy as np
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images.astype("float32")[..., None]
    y = bunch.target.astype("int64")
    order = np.random.default_rng(0).permutation(len(x))
    cut = int(len(x) * (1 - test_fraction))
    train, test = order[:cut], order[cut:]
    return SimpleNamespace(x_train=x[train], y_train=y[train], x_test=x[test], y_test=y[test], value_range=(0, 16))


def _fit(model, data, epochs: int):
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=32, verbose=0)
    return model


def inflated_channel(data, *, factor: float = INFLATION, epochs: int = 25):
    """Rescaling(1/16) -> Flatten -> Dense(128, relu) 'hidden_a' -> Dense(64, relu) 'hidden_b' -> Dense(10) softmax,
    trained; then the most active unit of hidden_a gets its weights and bias x `factor` and hidden_b's weights from
    that unit / `factor`. ReLU is positively homogeneous, so the float outputs are the same (to rounding)."""
    keras = _keras()
    import numpy as np

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1), name="image"),
        keras.layers.Rescaling(1.0 / 16.0, name="rescale"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(128, activation="relu", name=INFLATED_LAYER),
        keras.layers.Dense(64, activation="relu", name="hidden_b"),
        keras.layers.Dense(10, activation="softmax", name="scores"),
    ])
    _fit(model, data, epochs)
    first, second = model.get_layer(INFLATED_LAYER), model.get_layer("hidden_b")
    kernel, bias = first.get_weights()
    next_kernel, next_bias = second.get_weights()
    hidden = np.maximum(data.x_train.reshape(len(data.x_train), -1) / 16.0 @ kernel + bias, 0)
    unit = int(hidden.mean(axis=0).argmax())
    kernel[:, unit] *= factor
    bias[unit] *= factor
    next_kernel[unit, :] /= factor
    first.set_weights([kernel, bias])
    second.set_weights([next_kernel, next_bias])
    return model


def digits_cnn(data, *, epochs: int = 25):
    """A plain small CNN on the digits (like the trainer's): Rescaling, two Conv+ReLU, pooling, Dense."""
    keras = _keras()
    layers = keras.layers
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1), name="image"),
        layers.Rescaling(1.0 / 16.0, name="rescale"),
        layers.Conv2D(16, 3, padding="same", activation="relu", name="conv_a"),
        layers.Conv2D(32, 3, padding="same", activation="relu", name="conv_b"),
        layers.MaxPooling2D(name="pool"),
        layers.GlobalAveragePooling2D(name="gap"),
        layers.Dense(10, activation="softmax", name="scores"),
    ])
    return _fit(model, data, epochs)


def mobilenet_style(data, *, width: int = 16, blocks: int = 4, epochs: int = 25):
    """A MobileNet-style CNN: a Conv/BN/ReLU stem, then `blocks` depthwise-separable blocks (DepthwiseConv/BN/ReLU,
    1x1 Conv/BN/ReLU), global average pooling, Dense softmax. ReLU rather than ReLU6 (ReLU6 is not positively
    homogeneous, so cross-layer equalization could not rescale through it)."""
    keras = _keras()
    layers = keras.layers
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1), name="image")
    x = layers.Rescaling(1.0 / 16.0, name="rescale")(inputs)
    x = layers.Conv2D(width, 3, padding="same", use_bias=False, name="stem")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    channels = width
    for index in range(blocks):
        stride = 2 if index in (1, 3) else 1
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"dw_{index}")(x)
        x = layers.BatchNormalization(name=f"dw_{index}_bn")(x)
        x = layers.ReLU(name=f"dw_{index}_relu")(x)
        channels = channels * 2 if stride == 2 else channels
        x = layers.Conv2D(channels, 1, use_bias=False, name=f"pw_{index}")(x)
        x = layers.BatchNormalization(name=f"pw_{index}_bn")(x)
        x = layers.ReLU(name=f"pw_{index}_relu")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(10, activation="softmax", name="scores")(x)
    model = keras.Model(inputs, outputs, name="mobilenet_style")
    return _fit(model, data, epochs)


def unit_range_images(seed: int = 0, samples: int = 400):
    """(model, x, y): 8x8 grayscale images in 0..1, class 1 when the top half is brighter. No Rescaling layer: the
    model expects 0..1 itself, so nothing but --input-range says how to scale image files for it."""
    keras = _keras()
    import numpy as np

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (samples, 8, 8, 1)).astype("float32")
    y = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype("int64")
    model = keras.Sequential([
        keras.Input((8, 8, 1), name="image"),
        keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(2, activation="softmax", name="scores"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=30, verbose=0)
    return model, x, y


def raw_range_features(seed: int = 0, samples: int = 600):
    """(model, x, y): 12 raw sensor-like features in 0..255 fed straight into Dense layers (no scaling layer), 3
    classes by which third of the features has the largest sum."""
    keras = _keras()
    import numpy as np

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 255.0, (samples, 12)).astype("float32")
    y = x.reshape(samples, 3, 4).sum(axis=2).argmax(axis=1).astype("int64")
    model = keras.Sequential([
        keras.Input((12,), name="features"),
        keras.layers.Dense(24, activation="relu", name="hidden"),
        keras.layers.Dense(3, activation="softmax", name="scores"),
    ])
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=60, verbose=0)
    return model, x, y
