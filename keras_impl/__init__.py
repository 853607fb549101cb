"""Keras 3 implementation of the study's contract (mirrors `pytorch_impl`).

The runner, the parity suite and the benchmarks call only these names:
configure, synchronize, gpu_info, float_precision, build_model, count_parameters, get_weights,
set_weights, Trainer (train_epoch; train_step and apply_gradients for single steps),
predict, loss_and_gradients, training_batches, load_fashion_mnist.
"""

import os

# Keras reads its backend once, at import: set it before anything imports keras.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_impl.data import load_fashion_mnist
from keras_impl.model import build_model, count_parameters, get_weights, set_weights
from keras_impl.runtime import (
    FRAMEWORK,
    configure,
    float_precision,
    gpu_info,
    synchronize,
)
from keras_impl.train import Trainer, loss_and_gradients, predict, training_batches

__all__ = [
    "FRAMEWORK",
    "configure",
    "synchronize",
    "gpu_info",
    "float_precision",
    "build_model",
    "count_parameters",
    "get_weights",
    "set_weights",
    "Trainer",
    "predict",
    "loss_and_gradients",
    "training_batches",
    "load_fashion_mnist",
]
