"""PyTorch implementation of the study's contract (mirrors `keras_impl`).

The runner, the parity suite and the benchmarks call only these names:
configure, synchronize, build_model, count_parameters, get_weights, set_weights,
Trainer, predict.
"""

from pytorch_impl.model import build_model, count_parameters, get_weights, set_weights
from pytorch_impl.runtime import FRAMEWORK, configure, synchronize
from pytorch_impl.train import Trainer, predict

__all__ = [
    "FRAMEWORK",
    "configure",
    "synchronize",
    "build_model",
    "count_parameters",
    "get_weights",
    "set_weights",
    "Trainer",
    "predict",
]
