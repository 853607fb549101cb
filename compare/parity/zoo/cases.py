"""The zoo's cases: each a torch model, its correct Keras port, example inputs in torch's
layout, targets, a loss and both optimizers, and wrong ports, each with the level it
must fail at, the layer its failure must name and the setting where one is to blame.
A library pair's stock models (torchvision's and keras.applications' as they come) are
a wrong port: they must fail naming their real differences.

The DenseNet-121 case runs with random features (ImageNet weights cannot be downloaded
here); `standin_statistics` gives its BatchNorm layers running statistics spread as a
trained network's are, so that keras.applications' epsilon (1.001e-5, torchvision's
1e-5) can show.

Stage: parity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from compare import pair
from compare.run import contract
from compare.spec.schema import TrainSpec


@dataclasses.dataclass(frozen=True)
class WrongPort:
    name: str
    keras: Callable  # () -> the Keras model with the bug
    fails_at: str  # the level that must fail first
    names_layer: str  # what the failure must name (a torch layer)
    names_setting: str | None = None  # and the setting, where one is to blame
    torch: Callable | None = None  # () -> the torch model, where it differs (stock)
    inputs: Callable | None = None  # rng -> (inputs, targets), where they differ


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    torch: Callable  # () -> torch model (seeded by the caller)
    keras: Callable  # () -> the correct Keras port
    inputs: Callable  # rng -> (inputs in torch's layout, targets)
    loss: str
    optimizers: Callable  # () -> Optimizers
    wrong: tuple[WrongPort, ...]
    prepare: Callable | None = None  # (torch model, rng, inputs) -> None, before the check
    # (Keras model) -> None, when the Keras model is the source of a port: what its
    # weights must hold for the torch model to compute the same (a padding row at zero).
    prepare_keras: Callable | None = None
    options: dict = dataclasses.field(default_factory=dict)  # more check_pair keywords
    requires: str | None = None  # a module the case needs (a test dependency)
    library: bool = False  # a whole library model: seconds, not a fraction of one


def optimizers(train_spec: TrainSpec) -> pair.Optimizers:
    """Both sides' optimizers for `train_spec`, as the study builds them (the contract)."""
    torch_side, keras_side = contract.load("torch"), contract.load("keras")
    return pair.Optimizers(
        lambda model: torch_side.make_optimizer_for(model, train_spec),
        lambda: keras_side.make_optimizer_for(None, train_spec),
    )


SGD = TrainSpec(optimizer="sgd", learning_rate=0.05, momentum=0.9)
# Parity: stock Keras Adam adds epsilon to sqrt(v), not sqrt(v_hat): torch's rule.
ADAM = TrainSpec(optimizer="adam", learning_rate=1e-3, adam_formula="torch")
# The tutorial's transfer recipe (Udacity's solution notebook: Adam at 0.003).
TRANSFER_ADAM = dataclasses.replace(ADAM, learning_rate=3e-3)
# Three lockstep steps for the library models (a Keras train step of ResNet-50 compiles
# for seconds); their per-layer levels are what their size tests.
LIBRARY = pair.PairSpec(lockstep_steps=3)


def _models(name: str):
    """(torch builder, Keras builder taking the port's bugs) of a zoo pair."""
    torch_side, keras_side = contract.load("torch"), contract.load("keras")
    return (lambda **port: torch_side.pair_model(name, **port)), (
        lambda **port: keras_side.pair_model(name, **port)
    )


def standin_statistics(torch_model, rng, x, quiet_share: float = 0.1, scale: float = 1e-3) -> None:
    """BatchNorm statistics as a trained network has them, for random weights: a share of
    the filters of every convolution that feeds a BatchNorm is scaled by `scale`
    (channels carrying little signal, whose variance is then tiny), and every
    BatchNorm's running statistics are measured on `x` (a cumulative average)."""
    import torch

    modules = list(torch_model.modules())
    norms = [m for m in modules if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for conv, following in zip(modules, modules[1:], strict=False):
            if isinstance(conv, torch.nn.Conv2d) and following in norms:
                quiet = rng.random(conv.out_channels) < quiet_share
                conv.weight[torch.as_tensor(quiet)] *= scale
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average
            m.train()
        batch = max(1, len(x) // 2)
        for start in range(0, len(x), batch):
            torch_model(torch.as_tensor(x[start : start + batch]))
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
    torch_model.eval()


def zero_padding_row(keras_model, layer: str = "embedding") -> None:
    """torch reads an Embedding's padding_idx row in its forward pass and holds it at zero
    from its initialisation; the Keras port zeroes the padding positions instead. Ported
    from Keras, the row must be zero for the two to compute the same."""
    embedding = keras_model.get_layer(layer)
    table = embedding.get_weights()[0]
    table[0] = 0.0
    embedding.set_weights([table])


def _images(shape, classes):
    return lambda rng: (
        rng.normal(size=shape).astype(np.float32),
        rng.integers(0, classes, shape[0]),
    )


def _encoder_inputs(rng):
    padding = np.zeros((8, 6), bool)
    padding[:4, -2:] = True
    return {"x": rng.normal(size=(8, 6, 16)).astype(np.float32), "padding": padding}, rng.integers(
        0, 3, 8
    )


def _decoder_inputs(rng):
    inputs = {
        "target": rng.normal(size=(4, 5, 16)).astype(np.float32),
        "memory": rng.normal(size=(4, 7, 16)).astype(np.float32),
    }
    return inputs, rng.integers(0, 5, (4, 5))


def _bert_inputs(rng):
    mask = np.ones((8, 10), np.int64)
    mask[:4, -3:] = 0
    types = np.zeros((8, 10), np.int64)
    types[:, 5:] = 1
    ids = rng.integers(1, 50, (8, 10))
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}, rng.integers(
        0, 3, 8
    )


def _tokens(rng):
    tokens = rng.integers(1, 30, (8, 7))
    tokens[:, :2] = 0  # left padding: the padding index's row must not train
    return tokens, rng.integers(0, 3, 8)


def _keras_ops_gelu():
    import keras

    return keras.ops.gelu  # approximate=True by default: the tanh form
