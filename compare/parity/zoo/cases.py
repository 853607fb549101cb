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


def cases(image_size: int = 32) -> dict[str, Case]:
    from compare.parity.zoo import converters

    converters.register()
    m = {
        name: _models(name)
        for name in (
            "resnet_bn",
            "text_rnn",
            "layernorm_mlp",
            "densenet121_transfer",
            "encoder_postnorm",
            "encoder_prenorm",
            "decoder_prenorm",
            "bert_tiny",
            "unet",
            "birnn",
            "mobile_block",
            "signal_1d",
            "volume_3d",
            "separable",
            "scaled_mlp",
            "mobilenet_v2",
            "convnext_tiny",
            "efficientnet_b0",
            "resnet50",
        )
    }
    sgd, adam = (lambda: optimizers(SGD)), (lambda: optimizers(ADAM))
    gelu_tanh = _keras_ops_gelu
    found = [
        Case(
            "resnet_bn",
            m["resnet_bn"][0],
            m["resnet_bn"][1],
            _images((16, 1, 12, 12), 10),
            "cross_entropy",
            sgd,
            (
                WrongPort(
                    "keras_bn_epsilon",
                    lambda: m["resnet_bn"][1](epsilon=1e-3),
                    "structure",
                    "bn1",
                    "epsilon",
                ),
                WrongPort(
                    "keras_bn_momentum",
                    lambda: m["resnet_bn"][1](momentum=0.99),
                    "structure",
                    "bn1",
                    "momentum",
                ),
                WrongPort(
                    "same_padding_stride_2",
                    lambda: m["resnet_bn"][1](down_padding="same"),
                    "structure",
                    "down",
                    "padding",
                ),
            ),
            prepare=standin_statistics,
        ),
        Case(
            "text_rnn",
            m["text_rnn"][0],
            m["text_rnn"][1],
            lambda rng: (rng.integers(0, 50, (16, 7)), rng.integers(0, 3, 16)),
            "cross_entropy",
            sgd,
            (
                WrongPort(
                    "gru_reset_before",
                    lambda: m["text_rnn"][1](reset_after=False),
                    "structure",
                    "gru",
                    "reset_after",
                ),
            ),
        ),
        Case(
            "layernorm_mlp",
            m["layernorm_mlp"][0],
            m["layernorm_mlp"][1],
            _images((16, 20), 3),
            "cross_entropy",
            adam,
            (
                WrongPort(
                    "keras_ln_epsilon",
                    lambda: m["layernorm_mlp"][1](epsilon=1e-3),
                    "structure",
                    "ln1",
                    "epsilon",
                ),
            ),
        ),
        Case(
            "densenet121",
            m["densenet121_transfer"][0],
            lambda: m["densenet121_transfer"][1](image_size=image_size),
            _images((8, 3, image_size, image_size), 2),
            "nll",
            lambda: optimizers(TRANSFER_ADAM),
            (
                WrongPort(
                    "keras_applications_epsilon",
                    lambda: m["densenet121_transfer"][1](image_size=image_size, epsilon=None),
                    "structure",
                    "(BatchNorm2d)",
                    "epsilon",
                ),
            ),
            prepare=standin_statistics,
            library=True,
            options={"spec": LIBRARY},
        ),
        Case(
            "encoder_postnorm",
            m["encoder_postnorm"][0],
            m["encoder_postnorm"][1],
            _encoder_inputs,
            "cross_entropy",
            sgd,
            (
                WrongPort(
                    "mask_not_inverted",
                    lambda: m["encoder_postnorm"][1](invert_mask=False),
                    "structure",
                    "self_attn",
                    "attention mask",
                ),
                WrongPort(
                    "two_heads",
                    lambda: m["encoder_postnorm"][1](num_heads=2),
                    "structure",
                    "self_attn",
                    "num_heads",
                ),
            ),
        ),
        Case(
            "encoder_prenorm",
            m["encoder_prenorm"][0],
            m["encoder_prenorm"][1],
            _encoder_inputs,
            "cross_entropy",
            adam,
            (
                WrongPort(
                    "gelu_tanh",
                    lambda: m["encoder_prenorm"][1](gelu=gelu_tanh()),
                    "structure",
                    "gelu",
                    "activation",
                ),
            ),
        ),
        Case(
            "decoder_prenorm",
            m["decoder_prenorm"][0],
            m["decoder_prenorm"][1],
            _decoder_inputs,
            "cross_entropy",
            sgd,
            (
                WrongPort(
                    "not_causal",
                    lambda: m["decoder_prenorm"][1](causal=False),
                    "structure",
                    "self_attn",
                    "attention mask",
                ),
            ),
        ),
        Case(
            "bert_tiny",
            m["bert_tiny"][0],
            m["bert_tiny"][1],
            _bert_inputs,
            "cross_entropy",
            sgd,
            (
                WrongPort(
                    "keras_ln_epsilon",
                    lambda: m["bert_tiny"][1](epsilon=1e-3),
                    "structure",
                    "LayerNorm",
                    "epsilon",
                ),
                WrongPort(
                    "mask_inverted",
                    lambda: m["bert_tiny"][1](invert_mask=True),
                    "forward",
                    "attention.output.dense",
                ),
                WrongPort(
                    "gelu_tanh",
                    lambda: m["bert_tiny"][1](gelu=gelu_tanh()),
                    "structure",
                    "intermediate",
                    "activation",
                ),
            ),
            options={"output": "logits"},
            requires="transformers",
        ),
        Case(
            "unet",
            m["unet"][0],
            m["unet"][1],
            lambda rng: (
                rng.normal(size=(4, 3, 16, 16)).astype(np.float32),
                rng.normal(size=(4, 2, 16, 16)).astype(np.float32),
            ),
            "mse",
            sgd,
            (
                WrongPort(
                    "groupnorm_epsilon",
                    lambda: m["unet"][1](epsilon=1e-3),
                    "structure",
                    "enc1.norm",
                    "epsilon",
                ),
                WrongPort(
                    "groups", lambda: m["unet"][1](groups=2), "structure", "enc1.norm", "groups"
                ),
                WrongPort(
                    "nearest_upsampling",
                    lambda: m["unet"][1](interpolation="nearest"),
                    "structure",
                    "interpolate",
                    "interpolation",
                ),
                WrongPort(
                    "transposed_kernel_3",
                    lambda: m["unet"][1](up_kernel=3),
                    "structure",
                    "up1",
                    "kernel_size",
                ),
            ),
        ),
        Case(
            "birnn",
            m["birnn"][0],
            m["birnn"][1],
            _tokens,
            "cross_entropy",
            sgd,
            (
                WrongPort(
                    "merge_sum",
                    lambda: m["birnn"][1](merge_mode="sum"),
                    "structure",
                    "lstm.l0",
                    "merge_mode",
                ),
                WrongPort(
                    "padding_trained",
                    lambda: m["birnn"][1](mask_padding=False),
                    "gradients",
                    "embedding",
                    "padding_idx",
                ),
                WrongPort(
                    "gru_reset_before",
                    lambda: m["birnn"][1](reset_after=False),
                    "structure",
                    "gru",
                    "reset_after",
                ),
            ),
        ),
        Case(
            "mobile_block",
            m["mobile_block"][0],
            m["mobile_block"][1],
            _images((4, 3, 16, 16), 5),
            "cross_entropy",
            sgd,
            (
                WrongPort(
                    "avg_counts_padding",
                    lambda: m["mobile_block"][1](avg_padding="zeros"),
                    "structure",
                    "avg_pool",
                    "windows",
                ),
                WrongPort(
                    "no_ceil_mode",
                    lambda: m["mobile_block"][1](ceil_padding=False),
                    "structure",
                    "max_pool",
                    "windows",
                ),
                WrongPort(
                    "sigmoid_gate",
                    lambda: m["mobile_block"][1](gate="sigmoid"),
                    "structure",
                    "hardsigmoid",
                    "activation",
                ),
                WrongPort(
                    "prelu_unshared",
                    lambda: m["mobile_block"][1](shared_axes=None),
                    "structure",
                    "prelu",
                    "shared_axes",
                ),
            ),
        ),
        Case(
            "signal_1d",
            m["signal_1d"][0],
            m["signal_1d"][1],
            _images((4, 4, 16), 3),
            "cross_entropy",
            sgd,
            (
                WrongPort(
                    "no_dilation",
                    lambda: m["signal_1d"][1](dilation=1),
                    "structure",
                    "conv",
                    "dilation",
                ),
                WrongPort(
                    "instance_norm_epsilon",
                    lambda: m["signal_1d"][1](epsilon=1e-3),
                    "structure",
                    "norm",
                    "epsilon",
                ),
            ),
        ),
        Case(
            "volume_3d",
            m["volume_3d"][0],
            m["volume_3d"][1],
            _images((4, 1, 6, 6, 6), 3),
            "cross_entropy",
            sgd,
            (
                WrongPort(
                    "strides_2",
                    lambda: m["volume_3d"][1](strides=2),
                    "structure",
                    "conv",
                    "strides",
                ),
            ),
        ),
        Case(
            "separable",
            m["separable"][0],
            m["separable"][1],
            _images((4, 3, 8, 8), 3),
            "cross_entropy",
            sgd,
            (
                WrongPort(
                    "strides_2",
                    lambda: m["separable"][1](strides=2),
                    "structure",
                    "depthwise",
                    "strides",
                ),
            ),
        ),
        Case(
            "scaled_mlp",
            m["scaled_mlp"][0],
            m["scaled_mlp"][1],
            _images((8, 12), 3),
            "cross_entropy",
            adam,
            (
                WrongPort(
                    "scale_squared", lambda: m["scaled_mlp"][1](square=True), "forward", "tanh"
                ),
            ),
        ),
    ]
    for name, size in (
        ("mobilenet_v2", 33),
        ("convnext_tiny", 33),
        ("efficientnet_b0", 33),
        ("resnet50", 33),
    ):
        torch_half, keras_half = m[name]
        stock_size = 32 if name == "mobilenet_v2" else size
        found.append(
            Case(
                name,
                torch_half,
                lambda keras_half=keras_half, size=size: keras_half(image_size=size),
                _images((4, 3, size, size), 10),
                "cross_entropy",
                sgd,
                (
                    WrongPort(
                        "stock",
                        lambda keras_half=keras_half, s=stock_size: keras_half(
                            stock=True, image_size=s
                        ),
                        "structure",
                        *STOCK[name],
                        torch=lambda torch_half=torch_half: torch_half(stock=True),
                        inputs=_images((4, 3, stock_size, stock_size), 10),
                    ),
                ),
                options={"spec": LIBRARY},
                library=True,
            )
        )
    return {case.name: case for case in found}


# What each stock library pair must fail naming first: the real difference.
STOCK = {
    # torchvision's dropout, which Keras lacks; at an even size, 'same' at stride 2.
    "mobilenet_v2": ("classifier.0", None),
    "convnext_tiny": ("stochastic_depth", None),  # torchvision's stochastic depth
    "efficientnet_b0": ("normalization", None),  # keras.applications' preprocessing layer
    "resnet50": ("conv", None),  # v1 against v1.5: biases and strides
}


def _keras_ops_gelu():
    import keras

    return keras.ops.gelu  # approximate=True by default: the tanh form
