"""PyTorch implementation of the study's contract (mirrors `keras_impl`).

The contract is written once, in `compare.run.contract` (`Implementation`), and
`tests/test_impl_contract.py` checks both sides against it; `compare` reaches this
package only through it.
"""

from pytorch_impl.data import load_fashion_mnist
from pytorch_impl.defaults import framework_defaults
from pytorch_impl.model import (
    build_model,
    count_parameters,
    dropout_probe,
    get_weights,
    mode_probe,
    set_weights,
)
from pytorch_impl.optimizers import make_optimizer_for, optimizer_trajectory
from pytorch_impl.pairs import pair_model
from pytorch_impl.runtime import (
    FRAMEWORK,
    backend,
    configure,
    float_precision,
    gpu_info,
    intra_op_threads,
    synchronize,
)
from pytorch_impl.train import Trainer, predict, training_batches

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
