"""Which torch module holds which Keras layer's weights, and how the arrays convert.

A user's pair is matched layer by layer: the weighted layers of each side in traversal
order (torch: `named_modules()`, registration order; Keras: `model.layers`, nested
models expanded), or by an explicit `{torch name: Keras name}` mapping for the layers
whose orders differ. Each match is checked by kind and by the converted shapes; a layer
the mapper does not know is an error naming it, never a silent skip.

Conversions, torch -> Keras (every one is exact: a transpose, a reorder or a sum):
- Linear (out, in) -> Dense kernel (in, out); after a Keras Flatten of an (H, W, C) map,
  the rows are permuted from torch's (C, H, W) flatten order;
- Conv1d/Conv2d (out, in/groups, *k) -> Conv1D/Conv2D (*k, in/groups, out); depthwise
  (groups == in) (in*m, 1, *k) -> DepthwiseConv (*k, in, m);
- BatchNorm1d/2d [weight, bias, running_mean, running_var] -> [gamma, beta,
  moving_mean, moving_variance]; LayerNorm -> [gamma, beta]; Embedding -> embeddings;
- LSTM (gates i, f, g, o in both) -> kernel W_ih.T, recurrent W_hh.T, bias b_ih + b_hh;
- GRU (torch gates r, z, n; Keras z, r, h) -> reordered kernels; `reset_after=True`
  keeps both biases (2, 3H), `reset_after=False` has one and computes another function.

Stage: parity.
"""

from __future__ import annotations

import dataclasses

import numpy as np

TORCH_KINDS = {
    "Linear": "dense",
    "Conv1d": "conv",
    "Conv2d": "conv",
    "BatchNorm1d": "batchnorm",
    "BatchNorm2d": "batchnorm",
    "LayerNorm": "layernorm",
    "Embedding": "embedding",
    "LSTM": "lstm",
    "GRU": "gru",
}
KERAS_KINDS = {
    "Dense": "dense",
    "Conv1D": "conv",
    "Conv2D": "conv",
    "DepthwiseConv1D": "conv",
    "DepthwiseConv2D": "conv",
    "BatchNormalization": "batchnorm",
    "LayerNormalization": "layernorm",
    "Embedding": "embedding",
    "LSTM": "lstm",
    "GRU": "gru",
}


class MappingError(ValueError):
    """The two models cannot be matched layer by layer; the message says where and how."""


@dataclasses.dataclass
class LayerPair:
    """One torch module and the Keras layer holding the same weights."""

    torch_name: str
    torch_module: object
    keras_layer: object
    kind: str
    # Keras Flatten input (H, W, C) feeding this Dense: rows come in torch's (C, H, W) order.
    flatten_hwc: tuple[int, int, int] | None = None

    @property
    def keras_name(self) -> str:
        return self.keras_layer.name

    def label(self) -> str:
        """How a message names the pair: `layer1.0.bn1 (BatchNorm2d) / bn1 (BatchNormalization)`."""
        return (
            f"{self.torch_name} ({type(self.torch_module).__name__}) / "
            f"{self.keras_name} ({type(self.keras_layer).__name__})"
        )

    def torch_arrays(self) -> dict[str, np.ndarray]:
        """The module's own parameters and buffers (not num_batches_tracked), by name."""
        return {
            name: tensor.detach().cpu().numpy().copy()
            for name, tensor in self.torch_module.state_dict().items()
            if name != "num_batches_tracked"
        }

    def to_keras(self, arrays: dict[str, np.ndarray], gradients: bool = False) -> list[np.ndarray]:
        """torch arrays (or their gradients) as the Keras layer's weight list.

        Where Keras holds a sum of two torch tensors (LSTM biases), a gradient is either
        tensor's (they are equal), not their sum; tensors without a gradient are zeros.
        """
        return _TO_KERAS[self.kind](self, _filled(self, arrays), gradients)

    def to_torch(self, weights: list[np.ndarray]) -> dict[str, np.ndarray]:
        """The Keras weight list as torch arrays (a summed bias goes to b_ih, b_hh = 0)."""
        return _TO_TORCH[self.kind](self, [np.asarray(w) for w in weights])


def _filled(pair: LayerPair, arrays: dict) -> dict:
    """Every tensor of the module, zeros for those `arrays` lacks (buffers have no gradient)."""
    full = pair.torch_arrays()
    return {
        name: np.asarray(arrays.get(name, np.zeros_like(value))) for name, value in full.items()
    }


# --- enumerating each side -------------------------------------------------------------


def torch_layers(module) -> list[tuple[str, object]]:
    """(name, module) of every weighted module, in registration order; a module holding
    weights the mapper cannot convert is an error naming it."""
    found = []
    for name, child in module.named_modules():
        kind = TORCH_KINDS.get(type(child).__name__)
        own = list(child.named_parameters(recurse=False)) + [
            item for item in child.named_buffers(recurse=False) if item[0] != "num_batches_tracked"
        ]
        if kind is None:
            if own:
                raise MappingError(
                    f"torch module '{name or '<root>'}' ({type(child).__name__}) holds "
                    f"{', '.join(n for n, _ in own)}, and the mapper does not know this layer: "
                    f"supported are {', '.join(TORCH_KINDS)}"
                )
            continue
        _check_torch_supported(name, child)
        found.append((name, child))
    return found


def _check_torch_supported(name: str, module) -> None:
    kind = type(module).__name__
    if kind in ("LSTM", "GRU"):
        if module.num_layers != 1 or module.bidirectional or not module.batch_first:
            raise MappingError(
                f"torch {kind} '{name}': only one layer, one direction and batch_first=True "
                "map to a Keras layer; stack single-layer modules instead"
            )
        if getattr(module, "proj_size", 0):
            raise MappingError(f"torch LSTM '{name}': proj_size has no Keras counterpart")
    if kind == "LayerNorm" and len(module.normalized_shape) != 1:
        raise MappingError(
            f"torch LayerNorm '{name}' normalises over {tuple(module.normalized_shape)}: "
            "only the last axis maps to keras.layers.LayerNormalization(axis=-1)"
        )


def keras_layers(model) -> list[object]:
    """Every weighted Keras layer in `model.layers` order, nested models expanded."""
    found = []
    for layer in model.layers:
        if hasattr(layer, "layers") and type(layer).__name__ not in KERAS_KINDS:
            found += keras_layers(layer)
            continue
        if not layer.weights:
            continue
        if type(layer).__name__ not in KERAS_KINDS:
            raise MappingError(
                f"Keras layer '{layer.name}' ({type(layer).__name__}) holds weights, and the "
                f"mapper does not know this layer: supported are {', '.join(KERAS_KINDS)}"
            )
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            raise MappingError(
                f"Keras layer '{layer.name}' uses data_format='{layer.data_format}': "
                "the mapper converts channels_last models"
            )
        found.append(layer)
    return found


def _flatten_source(layer) -> tuple[int, int, int] | None:
    """(H, W, C) when `layer` (a Dense) reads a Flatten of a 3-D feature map, else None."""
    try:
        source = layer.input._keras_history.operation
    except (AttributeError, ValueError):
        return None
    if type(source).__name__ != "Flatten":
        return None
    shape = tuple(source.input.shape[1:])
    return shape if len(shape) == 3 else None  # conv2d maps only: (H, W, C)


# --- matching -----------------------------------------------------------------------------


def pair_layers(torch_model, keras_model, mapping: dict[str, str] | None = None) -> list[LayerPair]:
    """The layer pairs: `mapping` ({torch name: Keras name}) first, the rest in order."""
    torch_side = torch_layers(torch_model)
    keras_side = keras_layers(keras_model)
    mapping = dict(mapping or {})
    torch_names = {name for name, _ in torch_side}
    keras_by_name = {layer.name: layer for layer in keras_side}
    for torch_name, keras_name in mapping.items():
        if torch_name not in torch_names:
            raise MappingError(
                f"mapping names torch layer '{torch_name}', which is not a weighted module "
                f"(known: {', '.join(sorted(torch_names))})"
            )
        if keras_name not in keras_by_name:
            raise MappingError(
                f"mapping names Keras layer '{keras_name}', which is not a weighted layer "
                f"(known: {', '.join(sorted(keras_by_name))})"
            )
    mapped_keras = set(mapping.values())
    rest = iter(layer for layer in keras_side if layer.name not in mapped_keras)
    pairs = []
    for name, module in torch_side:
        layer = keras_by_name[mapping[name]] if name in mapping else next(rest, None)
        if layer is None:
            raise MappingError(
                f"torch layer '{name}' ({type(module).__name__}) has no Keras counterpart: "
                f"the torch model has {len(torch_side)} weighted layers, Keras {len(keras_side)}"
            )
        pairs.append(_make_pair(name, module, layer))
    left = list(rest)
    if left:
        raise MappingError(
            f"Keras layer '{left[0].name}' ({type(left[0]).__name__}) has no torch counterpart: "
            f"the torch model has {len(torch_side)} weighted layers, Keras {len(keras_side)}"
        )
    return pairs


def _make_pair(name: str, module, layer) -> LayerPair:
    kind = TORCH_KINDS[type(module).__name__]
    keras_kind = KERAS_KINDS[type(layer).__name__]
    pair = LayerPair(name, module, layer, kind)
    if kind != keras_kind:
        raise MappingError(
            f"{pair.label()}: a {kind} layer is matched with a {keras_kind} layer; the layer "
            "orders differ: pass mapping={'torch.name': 'keras_name', ...} for these layers"
        )
    if kind == "dense":
        pair.flatten_hwc = _flatten_source(layer)
    converted = [w.shape for w in pair.to_keras(pair.torch_arrays())]
    expected = [tuple(w.shape) for w in layer.weights]
    if converted != expected:
        raise MappingError(
            f"{pair.label()}: torch's weights convert to shapes {converted}, the Keras layer "
            f"has {expected}; the layers differ in size (or the orders differ: pass mapping=)"
        )
    return pair


# --- conversions, per kind --------------------------------------------------------------


def _flatten_order(hwc: tuple[int, int, int]) -> np.ndarray:
    """For Keras's row r (an (h, w, c) position flattened), torch's row: its (c, h, w)."""
    h, w, c = hwc
    return np.arange(h * w * c).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)


def _dense(pair, a, gradients):
    kernel = a["weight"].T
    if pair.flatten_hwc is not None:
        kernel = kernel[_flatten_order(pair.flatten_hwc)]
    return [kernel] + ([a["bias"]] if "bias" in a else [])


def _dense_back(pair, w):
    kernel = w[0]
    if pair.flatten_hwc is not None:
        kernel = kernel[np.argsort(_flatten_order(pair.flatten_hwc))]
    out = {"weight": kernel.T}
    return out | ({"bias": w[1]} if len(w) > 1 else {})


def _is_depthwise(pair) -> bool:
    return type(pair.keras_layer).__name__.startswith("Depthwise")


def _conv(pair, a, gradients):
    weight = a["weight"]  # (out, in/groups, *k)
    spatial = weight.ndim - 2
    if _is_depthwise(pair):
        channels = pair.torch_module.in_channels
        # (in*m, 1, *k) -> (in, m, *k) -> (*k, in, m)
        weight = weight.reshape(channels, -1, *weight.shape[2:])
        kernel = weight.transpose(*range(2, 2 + spatial), 0, 1)
    else:
        kernel = weight.transpose(*range(2, 2 + spatial), 1, 0)
    return [kernel] + ([a["bias"]] if "bias" in a else [])


def _conv_back(pair, w):
    kernel = w[0]
    spatial = kernel.ndim - 2
    axes = (spatial, spatial + 1, *range(spatial))
    if _is_depthwise(pair):
        weight = kernel.transpose(*axes)  # (in, m, *k)
        weight = weight.reshape(-1, 1, *weight.shape[2:])
    else:
        weight = kernel.transpose(spatial + 1, spatial, *range(spatial))
    return {"weight": weight} | ({"bias": w[1]} if len(w) > 1 else {})


def _norm_names(pair) -> list[tuple[str, str]]:
    """(torch name, Keras role) of the normalisation's weights, in Keras's order."""
    layer = pair.keras_layer
    names = []
    if getattr(layer, "scale", True):
        names.append(("weight", "gamma"))
    if getattr(layer, "center", True):
        names.append(("bias", "beta"))
    if pair.kind == "batchnorm":
        names += [("running_mean", "moving_mean"), ("running_var", "moving_variance")]
    return names


def _norm(pair, a, gradients):
    return [a[name] for name, _ in _norm_names(pair) if name in a]


def _norm_back(pair, w):
    return {name: value for (name, _), value in zip(_norm_names(pair), w, strict=True)}


def _embedding(pair, a, gradients):
    return [a["weight"]]


def _embedding_back(pair, w):
    return {"weight": w[0]}


def _gru_order(array: np.ndarray) -> np.ndarray:
    """torch's gate blocks (r, z, n) along axis 0 as Keras's (z, r, h)."""
    r, z, n = np.split(array, 3, axis=0)
    return np.concatenate([z, r, n], axis=0)


def _gru_back_order(array: np.ndarray) -> np.ndarray:
    z, r, n = np.split(array, 3, axis=0)
    return np.concatenate([r, z, n], axis=0)


def _recurrent(pair, a, gradients):
    order = _gru_order if pair.kind == "gru" else (lambda x: x)
    out = [order(a["weight_ih_l0"]).T, order(a["weight_hh_l0"]).T]
    if "bias_ih_l0" not in a:
        return out
    b_ih, b_hh = order(a["bias_ih_l0"]), order(a["bias_hh_l0"])
    if pair.kind == "gru" and pair.keras_layer.reset_after:
        return out + [np.stack([b_ih, b_hh])]
    # One bias on the Keras side: the sum (its gradient is either tensor's).
    return out + [b_ih if gradients else b_ih + b_hh]


def _recurrent_back(pair, w):
    order = _gru_back_order if pair.kind == "gru" else (lambda x: x)
    out = {"weight_ih_l0": order(w[0].T), "weight_hh_l0": order(w[1].T)}
    if len(w) == 2:
        return out
    if w[2].ndim == 2:
        return out | {"bias_ih_l0": order(w[2][0]), "bias_hh_l0": order(w[2][1])}
    return out | {"bias_ih_l0": order(w[2]), "bias_hh_l0": np.zeros_like(w[2])}


_TO_KERAS = {
    "dense": _dense,
    "conv": _conv,
    "batchnorm": _norm,
    "layernorm": _norm,
    "embedding": _embedding,
    "lstm": _recurrent,
    "gru": _recurrent,
}
_TO_TORCH = {
    "dense": _dense_back,
    "conv": _conv_back,
    "batchnorm": _norm_back,
    "layernorm": _norm_back,
    "embedding": _embedding_back,
    "lstm": _recurrent_back,
    "gru": _recurrent_back,
}


# --- moving weights ------------------------------------------------------------------------


def keras_weights_from_torch(pairs: list[LayerPair]) -> list[list[np.ndarray]]:
    """Per pair, torch's current weights in Keras's layout."""
    return [pair.to_keras(pair.torch_arrays()) for pair in pairs]


def copy_torch_to_keras(pairs: list[LayerPair]) -> None:
    """Set every Keras layer to its torch module's weights (dtype kept as Keras's)."""
    for pair, weights in zip(pairs, keras_weights_from_torch(pairs), strict=True):
        pair.keras_layer.set_weights(weights)


def copy_keras_to_torch(pairs: list[LayerPair]) -> None:
    """Set every torch module to its Keras layer's weights."""
    import torch

    for pair in pairs:
        arrays = pair.to_torch(pair.keras_layer.get_weights())
        state = pair.torch_module.state_dict()
        with torch.no_grad():
            for name, value in arrays.items():
                state[name].copy_(torch.as_tensor(np.ascontiguousarray(value)))


def transplant(torch_model, keras_model, mapping: dict[str, str] | None = None) -> list[LayerPair]:
    """Copy the torch model's weights (and BatchNorm statistics) into the Keras model;
    return the layer pairs."""
    pairs = pair_layers(torch_model, keras_model, mapping)
    copy_torch_to_keras(pairs)
    return pairs
