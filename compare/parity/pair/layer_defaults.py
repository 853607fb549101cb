"""Layer settings whose defaults differ between the frameworks, read from a user's pair.

Each row names the pair of layers, the setting, both values (in each framework's own
convention) and what the difference does; `forward`/`lockstep` failures cite the rows of
the layer where the two models part. Differences that no setting removes (torch's
unbiased running variance) are listed as `intrinsic` and accounted for by the levels.

Stage: parity.
"""

from __future__ import annotations

import numpy as np


def detect(pairs) -> list[dict]:
    """Every differing layer setting of the matched pairs, as report rows."""
    rows = []
    for pair in pairs:
        rows += _RULES.get(pair.kind, lambda p: [])(pair)
    return rows


def _row(pair, setting, torch_value, keras_value, effect, intrinsic=False) -> dict:
    return {
        "torch_layer": pair.torch_name,
        "keras_layer": pair.keras_name,
        "setting": setting,
        "torch": torch_value,
        "keras": keras_value,
        "effect": effect,
        "intrinsic": intrinsic,
    }


def _epsilon(pair, effect: str) -> list[dict]:
    """A row when the normalisation's epsilons differ (torch's `eps`, Keras's `epsilon`)."""
    ours, theirs = pair.torch_module.eps, pair.keras_layer.epsilon
    if np.isclose(ours, theirs, rtol=1e-9, atol=0.0):
        return []
    return [_row(pair, "epsilon", ours, theirs, effect)]


def _batchnorm(pair) -> list[dict]:
    torch_bn, keras_bn = pair.torch_module, pair.keras_layer
    rows = _epsilon(
        pair,
        "inference outputs differ where a channel's running variance is near epsilon "
        "(keras default 1e-3, torch 1e-5; keras.applications.DenseNet121 1.001e-5)",
    )
    # torch: new = (1 - m) * old + m * batch; Keras: new = m * old + (1 - m) * batch.
    if torch_bn.momentum is None:
        rows.append(
            _row(
                pair,
                "momentum",
                "None (cumulative average)",
                keras_bn.momentum,
                "running statistics differ after the first training step",
            )
        )
    elif not np.isclose(1.0 - torch_bn.momentum, keras_bn.momentum, rtol=0, atol=1e-9):
        rows.append(
            _row(
                pair,
                "momentum",
                f"{torch_bn.momentum} (weight of the batch)",
                f"{keras_bn.momentum} (weight of the old average)",
                f"running statistics differ after one training step: torch keeps "
                f"{1 - torch_bn.momentum:g} of the old average, Keras {keras_bn.momentum:g} "
                "(keras default 0.99 = torch momentum 0.01; torch default 0.1 = keras 0.9)",
            )
        )
    if not torch_bn.track_running_stats:
        rows.append(
            _row(
                pair,
                "track_running_stats",
                False,
                True,
                "torch normalises with batch statistics in inference too; Keras with its "
                "moving averages",
            )
        )
    rows.append(
        _row(
            pair,
            "running variance",
            "unbiased (n / (n - 1))",
            "biased",
            "after training the moving variances differ by the Bessel factor; lockstep "
            "predicts torch's from Keras's and compares that",
            intrinsic=True,
        )
    )
    if torch_bn.affine != (keras_bn.scale and keras_bn.center):
        rows.append(
            _row(
                pair,
                "affine",
                torch_bn.affine,
                f"scale={keras_bn.scale}, center={keras_bn.center}",
                "one side learns a scale or offset the other lacks",
            )
        )
    return rows


def _layernorm(pair) -> list[dict]:
    keras_ln = pair.keras_layer
    rows = _epsilon(
        pair,
        "outputs differ where a row's variance is near epsilon (keras default 1e-3, torch 1e-5)",
    )
    if getattr(keras_ln, "rms_scaling", False):
        rows.append(
            _row(pair, "rms_scaling", False, True, "Keras skips centring: another function")
        )
    return rows


def _pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """(before, after) padding of TensorFlow-style 'same' along one axis."""
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _conv(pair) -> list[dict]:
    torch_conv, keras_conv = pair.torch_module, pair.keras_layer
    rows = []
    keras_padding = keras_conv.padding
    torch_padding = torch_conv.padding
    strides = tuple(keras_conv.strides)
    kernel = tuple(keras_conv.kernel_size)
    if keras_padding == "same" and isinstance(torch_padding, tuple):
        dilation = tuple(keras_conv.dilation_rate)
        # Keras's 'same' pads (total // 2, total - total // 2): extra at the end when odd.
        uneven = any(
            ((k - 1) * d + 1 - s) % 2 == 1 or s > 1
            for k, s, d in zip(kernel, strides, dilation, strict=True)
        )
        symmetric = all(
            p == ((k - 1) * d) // 2 for p, k, d in zip(torch_padding, kernel, dilation, strict=True)
        )
        if uneven or not symmetric:
            example = _pads(8, kernel[0], strides[0], dilation[0])
            rows.append(
                _row(
                    pair,
                    "padding",
                    f"{tuple(torch_padding)} on both sides",
                    f"'same' at strides {strides} (e.g. {example} before/after on an 8-wide input)",
                    "Keras's 'same' pads more at the end when the stride is above 1 (or the "
                    "kernel even); torch pads both sides equally: outputs shift by a pixel",
                )
            )
    if (
        keras_padding == "valid"
        and not isinstance(torch_padding, str)
        and any(p != 0 for p in torch_padding)
        and not _after_zero_padding(keras_conv)
    ):
        rows.append(
            _row(
                pair,
                "padding",
                str(torch_padding),
                "'valid'",
                "torch pads, Keras does not (unless a ZeroPadding layer precedes it)",
            )
        )
    if tuple(torch_conv.stride) != strides:
        rows.append(
            _row(pair, "strides", tuple(torch_conv.stride), strides, "different output size")
        )
    return rows


def _after_zero_padding(layer) -> bool:
    """Whether the Keras layer reads a ZeroPadding layer's output (torch's padding)."""
    try:
        source = layer.input._keras_history.operation
    except (AttributeError, ValueError):
        return False
    return type(source).__name__.startswith("ZeroPadding")


def _gru(pair) -> list[dict]:
    if pair.keras_layer.reset_after:
        return []
    return [
        _row(
            pair,
            "reset_after",
            "always (r multiplies W_hn h + b_hn)",
            False,
            "Keras applies the reset gate before the recurrent matmul: another function "
            "(keras default True since Keras 2.3 matches torch)",
        )
    ]


def _lstm(pair) -> list[dict]:
    keras_lstm = pair.keras_layer
    rows = []
    module = pair.torch_module
    if module.bias and module.bias_ih_l0.requires_grad and module.bias_hh_l0.requires_grad:
        rows.append(
            _row(
                pair,
                "biases",
                "two trained biases (b_ih, b_hh)",
                "one bias",
                "the same function, but in training torch moves b_ih + b_hh by two updates "
                "a step, Keras its one bias by one: freeze torch's bias_hh_l0 at zero for a "
                "port that trains alike",
                intrinsic=True,
            )
        )
    if keras_lstm.recurrent_activation.__name__ != "sigmoid":
        return rows + [
            _row(
                pair,
                "recurrent_activation",
                "sigmoid",
                keras_lstm.recurrent_activation.__name__,
                "gates computed differently",
            )
        ]
    return rows


_RULES = {
    "batchnorm": _batchnorm,
    "layernorm": _layernorm,
    "conv": _conv,
    "gru": _gru,
    "lstm": _lstm,
}


def optimizer_rows(torch_optimizer, keras_optimizer) -> list[dict]:
    """The two optimizers' settings and update rules where they differ, as report rows."""
    group = torch_optimizer.param_groups[0]
    config = keras_optimizer.get_config()
    kind = (type(torch_optimizer).__name__, type(keras_optimizer).__name__)
    pairs = [
        ("lr", "learning_rate"),
        ("momentum", "momentum"),
        ("nesterov", "nesterov"),
        ("eps", "epsilon"),
        ("weight_decay", "weight_decay"),
        ("alpha", "rho"),
    ]
    rows = []
    for torch_key, keras_key in pairs:
        if torch_key in group and keras_key in config:
            ours, theirs = group[torch_key], config[keras_key]
            if isinstance(ours, (int, float)) and not isinstance(ours, bool):
                differ = not np.isclose(float(ours), float(theirs or 0.0), rtol=1e-6, atol=0)
            else:
                differ = bool(ours) != bool(theirs)
            if differ:
                rows.append(_optimizer_row(torch_key, ours, theirs, "another update"))
    if (
        "betas" in group
        and "beta_1" in config
        and not np.allclose(group["betas"], (config["beta_1"], config["beta_2"]), rtol=1e-6)
    ):
        rows.append(
            _optimizer_row(
                "betas", group["betas"], (config["beta_1"], config["beta_2"]), "another update"
            )
        )
    if kind == ("Adam", "Adam"):
        rows.append(
            _optimizer_row(
                "update rule",
                "eps added to sqrt(v_hat)",
                "epsilon added to sqrt(v) (epsilon-hat)",
                "steps differ where |g| is near epsilon; keras_impl.optimizers.AdamTorchFormula "
                "is torch's rule in Keras",
            )
        )
    if kind == ("RMSprop", "RMSprop"):
        rows.append(
            _optimizer_row(
                "update rule",
                "g / (sqrt(v) + eps)",
                "g / sqrt(v + epsilon)",
                "steps differ where |g| is near sqrt(epsilon); keras_impl.optimizers."
                "RMSpropTorchFormula is torch's rule in Keras",
            )
        )
    return rows


def _optimizer_row(setting, torch_value, keras_value, effect) -> dict:
    return {
        "torch_layer": "optimizer",
        "keras_layer": "optimizer",
        "setting": setting,
        "torch": str(torch_value),
        "keras": str(keras_value),
        "effect": effect,
        "intrinsic": False,
    }
