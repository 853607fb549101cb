"""The parity zoo: user-style pairs (pytorch_impl.pairs, keras_impl.pairs) with their
inputs, recipe and deliberately wrong ports, checked by `python -m compare parity --zoo`
and the tests.

Each case gives the torch model, the correct Keras port, example inputs in torch's
layout, integer targets, a loss and both optimizers; each wrong port is a Keras builder
with one porting bug and the level it must fail. The DenseNet-121 case runs with random
features (ImageNet weights cannot be downloaded here); `standin_statistics` gives its
BatchNorm layers running statistics spread as a trained network's are, so that the
epsilon that keras.applications uses (1.001e-5, torchvision 1e-5) can show.

Stage: parity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from compare.parity.pair.api import PAIR_LEVELS, Optimizers, check_pair
from compare.run import contract
from compare.spec.schema import TrainSpec


@dataclasses.dataclass(frozen=True)
class WrongPort:
    name: str
    keras: Callable  # () -> the Keras model with the bug
    fails_at: str  # the level that must fail
    names_layer: str  # the torch layer the failure must name


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    torch: Callable  # () -> torch model (seeded by the caller)
    keras: Callable  # () -> the correct Keras port
    inputs: Callable  # rng -> (x in torch's layout, y)
    loss: str
    optimizers: Callable  # () -> Optimizers
    wrong: tuple[WrongPort, ...]
    prepare: Callable | None = None  # (torch model, rng, x) -> None, before the check


def optimizers(train_spec: TrainSpec) -> Optimizers:
    """Both sides' optimizers for `train_spec`, as the study builds them (the contract)."""
    torch_side, keras_side = contract.load("torch"), contract.load("keras")
    return Optimizers(
        lambda model: torch_side.make_optimizer_for(model, train_spec),
        lambda: keras_side.make_optimizer_for(None, train_spec),
    )


SGD = TrainSpec(optimizer="sgd", learning_rate=0.05, momentum=0.9)
# Parity: stock Keras Adam adds epsilon to sqrt(v), not sqrt(v_hat): torch's rule.
ADAM = TrainSpec(optimizer="adam", learning_rate=1e-3, adam_formula="torch")
# The tutorial's transfer recipe (Udacity's solution notebook: Adam at 0.003).
TRANSFER_ADAM = dataclasses.replace(ADAM, learning_rate=3e-3)


def _models(name: str):
    """(torch builder, Keras builder taking the port's bugs) of a zoo pair."""
    torch_side, keras_side = contract.load("torch"), contract.load("keras")
    return (lambda: torch_side.pair_model(name)), (
        lambda **port: keras_side.pair_model(name, **port)
    )


def standin_statistics(torch_model, rng, x, quiet_share: float = 0.1, scale: float = 1e-3) -> None:
    """BatchNorm statistics as a trained network has them, for random weights: a share of
    the filters of every convolution that feeds a BatchNorm is scaled by `scale` (channels
    carrying little signal, whose variance is then tiny), and every BatchNorm's running
    statistics are measured on `x` (a cumulative average over its batches). Random
    initial statistics (mean 0, variance 1) hide an epsilon of 1e-5 against 1.001e-5 in
    float32; a channel with variance near 1e-5 shows it."""
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


def cases(image_size: int = 32) -> dict[str, Case]:
    def images(shape, classes):
        return lambda rng: (
            rng.normal(size=shape).astype(np.float32),
            rng.integers(0, classes, shape[0]),
        )

    resnet, resnet_port = _models("resnet_bn")
    text, text_port = _models("text_rnn")
    mlp, mlp_port = _models("layernorm_mlp")
    densenet, densenet_port = _models("densenet121_transfer")
    return {
        "resnet_bn": Case(
            "resnet_bn",
            resnet,
            resnet_port,
            images((16, 1, 12, 12), 10),
            "cross_entropy",
            lambda: optimizers(SGD),
            (
                WrongPort("keras_bn_epsilon", lambda: resnet_port(epsilon=1e-3), "forward", "bn1"),
                WrongPort(
                    "keras_bn_momentum", lambda: resnet_port(momentum=0.99), "lockstep", "bn1"
                ),
                WrongPort(
                    "same_padding_stride_2",
                    lambda: resnet_port(down_padding="same"),
                    "forward",
                    "down",
                ),
            ),
            prepare=standin_statistics,
        ),
        "text_rnn": Case(
            "text_rnn",
            text,
            text_port,
            lambda rng: (rng.integers(0, 50, (16, 7)), rng.integers(0, 3, 16)),
            "cross_entropy",
            lambda: optimizers(SGD),
            (
                WrongPort(
                    "gru_reset_before", lambda: text_port(reset_after=False), "forward", "gru"
                ),
            ),
        ),
        "layernorm_mlp": Case(
            "layernorm_mlp",
            mlp,
            mlp_port,
            images((16, 20), 3),
            "cross_entropy",
            lambda: optimizers(ADAM),
            (WrongPort("keras_ln_epsilon", lambda: mlp_port(epsilon=1e-3), "forward", "ln1"),),
        ),
        "densenet121": Case(
            "densenet121",
            densenet,
            lambda: densenet_port(image_size=image_size),
            images((8, 3, image_size, image_size), 2),
            "nll",
            lambda: optimizers(TRANSFER_ADAM),
            (
                WrongPort(
                    "keras_applications_epsilon",
                    lambda: densenet_port(image_size=image_size, epsilon=None),
                    "forward",
                    "(BatchNorm2d)",
                ),
            ),
            prepare=standin_statistics,
        ),
    }


def check_case(case: Case, seed: int = 0, wrong: bool = True, levels=PAIR_LEVELS) -> list[dict]:
    """The correct port (every level in `levels`) and each wrong port (up to the level it
    must fail): rows {pair, port, passed, expected, first_failure, seconds, report}."""
    import time

    import torch

    rows = []
    # A wrong port is shown only where the level it must fail at is checked.
    ports = [("correct", case.keras, None)] + (
        [(w.name, w.keras, w) for w in case.wrong if w.fails_at in levels] if wrong else []
    )
    for port, build_keras, bug in ports:
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        torch_model = case.torch()
        x, y = case.inputs(rng)
        if case.prepare is not None:
            # Statistics measured on other examples than those checked, as a trained
            # network's are: a batch's statistics differ from the running ones.
            case.prepare(torch_model, rng, case.inputs(rng)[0])
        chosen = levels if bug is None else PAIR_LEVELS[: PAIR_LEVELS.index(bug.fails_at) + 1]
        started = time.perf_counter()
        report = check_pair(
            torch_model,
            build_keras(),
            x,
            y=y,
            loss=case.loss,
            optimizers=case.optimizers(),
            name=f"{case.name}:{port}",
            levels=tuple(chosen),
        )
        failed_at = next((c["name"] for c in report.entry["checks"] if not c["passed"]), None)
        expected = (
            report.passed
            if bug is None
            else (failed_at == bug.fails_at and bug.names_layer in (report.first_failure or ""))
        )
        rows.append(
            {
                "pair": case.name,
                "port": port,
                "passed": report.passed,
                "failed_at": failed_at,
                "as_expected": bool(expected),
                "first_failure": report.first_failure,
                "seconds": round(time.perf_counter() - started, 1),
                "report": report,
            }
        )
    return rows
