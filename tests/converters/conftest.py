"""Tiny real models, built once per test session (TensorFlow is slow to import and to trace)."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _trained_classifier_data(seed=0, samples=400, features=6):
    """A learnable 3-class problem, so top-1 agreement after quantization means something."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, features)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 1).astype(int)
    return x, y


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> SimpleNamespace:
    import keras
    import tensorflow as tf
    import tf_keras

    root = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(0)
    x, y = _trained_classifier_data()

    sequential = keras.Sequential([
        keras.Input((6,), name="features"),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(3, activation="softmax"),
    ])
    sequential.compile("adam", "sparse_categorical_crossentropy")
    sequential.fit(x, y, epochs=20, verbose=0)
    sequential.save(root / "sequential.keras")
    np.save(root / "features.npy", x)

    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    hidden = keras.layers.Concatenate()([keras.layers.Dense(8, activation="relu")(a), b])
    functional = keras.Model([a, b], [keras.layers.Dense(3, name="scores")(hidden),
                                      keras.layers.Dense(1, name="value")(hidden)])
    functional.save(root / "functional.keras")

    subclassed = _register_subclassed_model()()
    subclassed(np.zeros((1, 5), "float32"))
    subclassed.save(root / "subclassed.keras")

    legacy = tf_keras.Sequential([
        tf_keras.layers.InputLayer(input_shape=(8, 8, 3)),
        tf_keras.layers.DepthwiseConv2D(3, activation="relu"),
        tf_keras.layers.GlobalAveragePooling2D(),
        tf_keras.layers.Dense(4),
    ])
    legacy.save(root / "legacy.h5", save_format="h5")

    lam = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda t: t * 2.0), keras.layers.Dense(2)])
    lam.save(root / "lambda.keras")

    module = tf.Module()
    module.w = tf.Variable(np.arange(12, dtype="float32").reshape(4, 3) / 10.0)

    @tf.function(input_signature=[tf.TensorSpec((None, 4), tf.float32, name="x")])
    def serve(x):
        return {"y": tf.nn.relu(tf.matmul(x, module.w))}

    tf.saved_model.save(module, str(root / "saved_model"), signatures={"serving_default": serve})

    flex = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec((None, 3, 3), tf.float32, name="m")])
    def invert(m):  # MatrixInverse has no builtin TFLite kernel: only the Flex delegate runs it
        return {"inverse": tf.linalg.inv(m + 3.0 * tf.eye(3))}

    tf.saved_model.save(flex, str(root / "flex_model"), signatures={"serving_default": invert})

    empty = tf.Module()
    empty.v = tf.Variable(1.0)
    tf.saved_model.save(empty, str(root / "no_signatures"))
    _save_tf1_multi_metagraph(root / "tf1_multi_metagraph", tf)

    return SimpleNamespace(
        root=root, x=x, tf1_weights=TF1_WEIGHTS, sequential=sequential, functional=functional, subclassed=subclassed,
        legacy=legacy, paths=SimpleNamespace(
            sequential=root / "sequential.keras", functional=root / "functional.keras",
            subclassed=root / "subclassed.keras", legacy=root / "legacy.h5", lam=root / "lambda.keras",
            saved_model=root / "saved_model", flex=root / "flex_model", no_signatures=root / "no_signatures",
            features=root / "features.npy", tf1_multi_metagraph=root / "tf1_multi_metagraph",
        ),
    )


def _save_tf1_multi_metagraph(path, tf):
    """A TF1-style SavedModel with a 'serve' and a 'train' MetaGraph, as TF1 Estimators and TF Hub v1
    modules export them. `tf.saved_model.load(path)` rejects it ("requires a `tags=` argument if there is
    more than one MetaGraph"; reported e.g. in FederatedAI/FATE#4348, tensorflow/tensorflow#37068)."""
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        w = tf.compat.v1.get_variable("w", initializer=tf.constant(TF1_WEIGHTS))
        y = tf.nn.relu(tf.matmul(x, w), name="y")
        session.run(tf.compat.v1.global_variables_initializer())
        builder = tf.compat.v1.saved_model.Builder(str(path))
        signature = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y})
        builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map={"serving_default": signature})
        builder.add_meta_graph(["train"])
        builder.save()


TF1_WEIGHTS = (np.arange(12, dtype="float32").reshape(4, 3) - 5.0) / 10.0


def _register_subclassed_model():
    """A subclassed model class, registered so Keras can load it back in this process."""
    import keras

    @keras.saving.register_keras_serializable(package="edgeml_tests")
    class TinySubclassed(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.hidden = keras.layers.Dense(8, activation="tanh")
            self.out = keras.layers.Dense(2)

        def call(self, inputs):
            return self.out(self.hidden(inputs))

    return TinySubclassed
