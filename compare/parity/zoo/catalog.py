"""The zoo's catalogue: every case with its wrong ports (see `cases` for what a case is).

Stage: parity.
"""

from __future__ import annotations

import numpy as np

from compare.parity.zoo import library
from compare.parity.zoo.cases import (
    ADAM,
    LIBRARY,
    SGD,
    TRANSFER_ADAM,
    Case,
    WrongPort,
    _bert_inputs,
    _decoder_inputs,
    _encoder_inputs,
    _images,
    _keras_ops_gelu,
    _models,
    _tokens,
    optimizers,
    standin_statistics,
    zero_padding_row,
)


def cases(image_size: int = 32) -> dict[str, Case]:
    from compare.parity.zoo import converters

    converters.register()
    names = (
        "resnet_bn text_rnn layernorm_mlp densenet121_transfer encoder_postnorm "
        "encoder_prenorm decoder_prenorm bert_tiny unet birnn mobile_block signal_1d "
        "volume_3d separable scaled_mlp mobilenet_v2 convnext_tiny efficientnet_b0 resnet50"
    )
    m = {name: _models(name) for name in names.split()}
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
            prepare_keras=zero_padding_row,
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
    found += library.cases(m, sgd)
    return {case.name: case for case in found}
