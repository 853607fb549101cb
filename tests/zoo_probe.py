"""Measurements for tests/test_zoo.py, one framework per process.

`python tests/zoo_probe.py FRAMEWORK` imports only that framework (as the runner's
workers do) and prints one JSON object: per-step losses and depths of the regression
nets, logits of every catalog classifier from shared weights, the loss forms on fixed
logits, and a check of the native input path. The test compares the two processes'
outputs with each other and with NumPy.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
import types

import numpy as np

from compare.data import fashion_mnist, split
from compare.run import contract, loop, timing
from compare.spec import catalog, studies
from compare.spec.schema import REGRESSORS

IMPLEMENTATIONS = {"torch": "pytorch_impl", "keras": "keras_impl"}
# Logits far apart, where a clipped-probability cross-entropy would differ (16.1 vs 100).
LOSS_LOGITS = np.array([[100.0, 0.0, -3.0], [0.5, 0.25, -1.0], [2.0, -2.0, 30.0]], np.float32)
LOSS_LABELS = np.array([1, 0, 2], np.int64)


def regression_runs() -> dict:
    """Per-step losses and depths of every catalog regression net, seed 0."""
    out = {}
    for name, experiment in catalog.MODELS.items():
        if experiment.model.architecture not in REGRESSORS:
            continue
        result = {"epochs": [], "device": "cpu"}
        request = types.SimpleNamespace(seed=0, framework=FRAMEWORK)
        # The worker's own loop, as a run trains the net.
        loop.train_regression(
            contract.load(FRAMEWORK),
            experiment,
            request,
            timing.PhaseTimer(),
            result,
            lambda kind, payload: None,
        )
        out[name] = {
            "losses": [e["train_loss"] for e in result["epochs"]],
            "depths": result["regression"]["depths"],
            "vs_numpy": {k: v for k, v in result["regression"].items() if "losses" not in k},
            "parameter_count": result["parameter_count"],
        }
    return out


def classifier_logits(impl, inputs: np.ndarray) -> dict:
    """Logits of every catalog classifier after loading the same seeded weights."""
    out = {}
    for name, experiment in catalog.MODELS.items():
        if experiment.model.architecture in REGRESSORS:
            continue
        variants = {name: experiment.model}
        if name == "mlp":  # the custom-gradient ReLU in a classifier too
            variants["mlp_custom_relu"] = dataclasses.replace(
                experiment.model, activation="custom_relu"
            )
        for label, model_spec in variants.items():
            model = impl.build_model(model_spec)
            rng = np.random.default_rng(0)
            weights = [
                rng.uniform(-0.1, 0.1, w.shape).astype(np.float32) for w in impl.get_weights(model)
            ]
            impl.set_weights(model, weights)
            out[label] = {
                "parameter_count": impl.count_parameters(model),
                "logits": impl.predict(model, inputs, 64).tolist(),
            }
    return out


def loss_forms(train_module) -> dict:
    """Each classification loss on LOSS_LOGITS / LOSS_LABELS, as training computes it."""
    out = {}
    for loss in ("cross_entropy", "log_softmax_nll", "softmax_categorical_crossentropy"):
        if FRAMEWORK == "torch":
            import torch

            value = train_module.loss_fn(
                torch.from_numpy(LOSS_LOGITS), torch.from_numpy(LOSS_LABELS), loss
            )
        else:
            import tensorflow as tf

            labels = LOSS_LABELS
            if loss == "softmax_categorical_crossentropy":
                labels = np.eye(3, dtype=np.float32)[LOSS_LABELS]
            function = train_module.loss_fn(loss)
            # Inside a traced function, as `fit` runs it.
            value = tf.function(lambda y, z, f=function: tf.reduce_mean(f(y, z)))(
                labels, LOSS_LOGITS
            )
        out[loss] = float(value)
    return out


def native_inputs() -> dict:
    """The PyTorch native path converts images exactly as compare.data preprocesses."""
    if FRAMEWORK != "torch":
        return {}
    from pytorch_impl.train import NativeImages

    experiment = studies.builtin_experiment("seed002")
    images = fashion_mnist.load_raw().train_images[:64]
    labels = np.zeros(64, np.int64)
    dataset = NativeImages(images, labels, experiment.data)
    converted = np.stack([dataset[i][0].numpy() for i in range(len(dataset))])
    return {
        "native_equals_shared": bool(
            np.array_equal(converted, split.preprocess(images, experiment.data))
        )
    }


if __name__ == "__main__":
    FRAMEWORK = sys.argv[1]
    impl = importlib.import_module(IMPLEMENTATIONS[FRAMEWORK])
    impl.configure(1, 0, "cpu")
    train_module = importlib.import_module(f"{IMPLEMENTATIONS[FRAMEWORK]}.train")
    inputs = np.random.default_rng(1).standard_normal((8, 28, 28)).astype(np.float32)
    payload = {
        "regression": regression_runs(),
        "classifiers": classifier_logits(impl, inputs),
        "losses": loss_forms(train_module),
        **native_inputs(),
    }
    print(json.dumps(payload))
