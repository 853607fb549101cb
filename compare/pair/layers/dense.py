"""Linear against Dense and EinsumDense, Embedding against Embedding.

Linear (out, in) -> Dense kernel (in, out); after a Keras Flatten of an (H, W, C) map the
rows are permuted from torch's (C, H, W) flatten order. EinsumDense (MultiHeadAttention's
projections, keras-hub's layers) holds the same matrix reshaped: (in, heads, head_dim)
for a query projection, (heads, head_dim, out) for an output projection.

Stage: pair.
"""

from __future__ import annotations

import numpy as np

from compare.pair import registry
from compare.pair.registry import Converter, Setting


def flatten_order(hwc: tuple[int, int, int]) -> np.ndarray:
    """For Keras's row r (an (h, w, c) position flattened), torch's row: its (c, h, w)."""
    h, w, c = hwc
    return np.arange(h * w * c).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)


def flatten_source(layer) -> tuple[int, int, int] | None:
    """(H, W, C) when the Keras layer reads a Flatten (or a flattening Reshape) of a
    channels-last 3-D map."""
    try:
        source = layer.input._keras_history.operation
    except (AttributeError, ValueError):
        return None
    name = type(source).__name__
    flattens = name == "Flatten" or (
        name == "Reshape" and len(getattr(source, "target_shape", ())) == 1
    )  # Reshape((-1,)) flattens as Flatten does
    if not flattens or getattr(source, "data_format", "channels_last") == "channels_first":
        return None
    try:
        before = source.input._keras_history.operation
        if type(before).__name__ == "Permute":  # the port put channels first itself
            return None
    except (AttributeError, ValueError):
        pass
    shape = tuple(source.input.shape[1:])
    return shape if len(shape) == 3 and None not in shape else None


class LinearToDense(Converter):
    kind = "dense"
    torch_layout = "last"

    def prepare(self, pair):
        pair.context["flatten_hwc"] = flatten_source(pair.keras_layer)

    def align_input(self, pair, torch_input, keras_shape):
        # After a Flatten, Keras's features come in (H, W, C) order, torch's in (C, H, W).
        hwc = pair.context.get("flatten_hwc")
        if hwc is not None and torch_input.ndim == 2:
            torch_input = torch_input[:, flatten_order(hwc)]
        return torch_input if torch_input.shape == tuple(keras_shape) else None

    def to_keras(self, pair, a):
        kernel = a["weight"].T
        hwc = pair.context.get("flatten_hwc")
        if hwc is not None:
            kernel = kernel[flatten_order(hwc)]
        return [kernel] + ([a["bias"]] if "bias" in a else [])

    def to_torch(self, pair, w):
        kernel = w[0]
        hwc = pair.context.get("flatten_hwc")
        if hwc is not None:
            kernel = kernel[np.argsort(flatten_order(hwc))]
        return {"weight": kernel.T} | ({"bias": w[1]} if len(w) > 1 else {})

    def check(self, pair):
        torch_bias = pair.torch_module.bias is not None
        keras_bias = bool(getattr(pair.keras_layer, "use_bias", True))
        if torch_bias != keras_bias:
            return f"bias: torch {torch_bias}, keras use_bias={keras_bias}"
        return None


def _einsum_parts(equation: str):
    """(input letters, kernel letters, output letters) of 'abc,cde->abde'."""
    inputs, output = equation.split("->")
    data, kernel = inputs.split(",")
    return data, kernel, output


class LinearToEinsumDense(Converter):
    """The Linear's matrix reshaped: the kernel's letters must be the contracted ones (in
    the input's order), then the output's own (in the output's order)."""

    kind = "dense"
    torch_layout = "last"

    def check(self, pair):
        layer = pair.keras_layer
        try:
            data, kernel, output = _einsum_parts(layer.equation.replace("...", ""))
        except (AttributeError, ValueError):
            return "an EinsumDense whose equation is not 'input,kernel->output'"
        contracted = [c for c in data if c in kernel and c not in output]
        produced = [c for c in output if c in kernel and c not in data]
        if list(kernel) != contracted + produced:
            return f"EinsumDense equation {layer.equation!r} is not a reshaped matrix product"
        torch_bias = pair.torch_module.bias is not None
        keras_bias = getattr(layer, "bias", None) is not None
        if torch_bias != keras_bias:
            return f"bias: torch {torch_bias}, keras {keras_bias}"
        return None

    def to_keras(self, pair, a):
        weights = pair.keras_layer.weights
        kernel = a["weight"].T.reshape(tuple(weights[0].shape))
        if "bias" not in a:
            return [kernel]
        return [kernel, a["bias"].reshape(tuple(weights[1].shape))]

    def to_torch(self, pair, w):
        out_features = pair.torch_module.out_features
        kernel = w[0].reshape(-1, out_features)
        return {"weight": kernel.T} | ({"bias": w[1].reshape(-1)} if len(w) > 1 else {})

    def align(self, pair, torch_output, keras_shape):
        # (B, T, heads * head_dim) against (B, T, heads, head_dim): the same numbers.
        keras_shape = tuple(keras_shape)
        if (
            torch_output.size == int(np.prod(keras_shape))
            and torch_output.shape[0] == (keras_shape[0])
        ):
            return torch_output.reshape(keras_shape)
        return None


class EmbeddingToEmbedding(Converter):
    kind = "embedding"
    torch_layout = "last"

    def to_keras(self, pair, a):
        return [a["weight"]]

    def to_torch(self, pair, w):
        return {"weight": w[0]}

    def settings(self, pair):
        module = pair.torch_module
        rows = []
        if module.padding_idx is not None:
            rows.append(
                Setting(
                    "padding_idx",
                    module.padding_idx,
                    None,
                    same=False,
                    effect=f"torch never trains row {module.padding_idx} (its gradient is "
                    "zero); Keras's Embedding trains every row: mask it in the port",
                    decisive=False,
                )
            )
        if module.max_norm is not None:
            rows.append(
                Setting(
                    "max_norm",
                    module.max_norm,
                    None,
                    same=False,
                    effect="torch renormalises the rows it looks up, in place",
                    decisive=False,
                )
            )
        if module.scale_grad_by_freq:
            rows.append(
                Setting("scale_grad_by_freq", True, False, effect="other gradients", decisive=False)
            )
        return rows


def _register():
    import keras
    import torch

    registry.register(LinearToDense, torch.nn.Linear, keras.layers.Dense, user=False)
    registry.register(LinearToEinsumDense, torch.nn.Linear, keras.layers.EinsumDense, user=False)
    registry.register(EmbeddingToEmbedding, torch.nn.Embedding, keras.layers.Embedding, user=False)


_register()
