"""Keras 3 implementation of the study's contract (mirrors `pytorch_impl`).

The contract is written once, in `compare.run.contract` (`Implementation`), and
`tests/test_impl_contract.py` checks both sides against it; `compare` reaches this
package only through it.
"""

import os

# Keras reads its backend once, at import: set it before anything imports keras.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_impl.data import load_fashion_mnist
from keras_impl.defaults import framework_defaults
from keras_impl.model import (
    build_model,
    count_parameters,
    dropout_probe,
    get_weights,
    mode_probe,
    set_weights,
)
from keras_impl.optimizers import make_optimizer_for, optimizer_trajectory
from keras_impl.pairs import pair_model
from keras_impl.runtime import (
    FRAMEWORK,
    backend,
    configure,
    float_precision,
    gpu_info,
    intra_op_threads,
    synchronize,
)
from keras_impl.train import Trainer, predict, training_batches

__all__ = [
    "FRAMEWORK",
    "backend",
    "configure",
    "synchronize",
    "gpu_info",
    "float_precision",
    "intra_op_threads",
    "build_model",
    "count_parameters",
    "get_weights",
    "set_weights",
    "dropout_probe",
    "mode_probe",
    "Trainer",
    "optimizer_trajectory",
    "make_optimizer_for",
    "pair_model",
    "predict",
    "training_batches",
    "load_fashion_mnist",
    "framework_defaults",
]
