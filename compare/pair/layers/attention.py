"""nn.MultiheadAttention against keras.layers.MultiHeadAttention.

torch packs the query, key and value projections in `in_proj_weight` (3E, E) (or keeps
q/k/v_proj_weight apart when kdim/vdim differ) and holds the output projection in
`out_proj`; Keras holds four EinsumDense layers: query/key/value kernels (dim, heads,
head_dim) with biases (heads, head_dim), and the output kernel (heads, head_dim, E).
A Keras MultiHeadAttention paired against separate torch Linears (Hugging Face's
query/key/value/output) is paired through those four layers instead (`expandable`).

The masks mean the opposite: torch's key_padding_mask and boolean attn_mask are True
where a key is ignored, Keras's attention_mask True where it is attended. The traced
calls give each side's effective mask, compared as a setting.

Stage: pair.
"""

from __future__ import annotations

import numpy as np

from compare.pair import registry
from compare.pair.registry import Converter, Setting

ROLES = ("query", "key", "value", "attention_output")


def _keras_roles(layer) -> dict[str, list]:
    """{role: [kernel, bias?]} of a Keras MultiHeadAttention's weights (by path)."""
    roles = {role: [] for role in ROLES}
    for variable in layer.weights:
        parts = variable.path.split("/")
        role = parts[-2] if len(parts) >= 2 else ""
        if role in roles:
            roles[role].append(variable)
    return roles


def _torch_projections(module, a):
    """(q, k, v) weights and biases of an nn.MultiheadAttention's arrays."""
    if "in_proj_weight" in a:
        weights = np.split(a["in_proj_weight"], 3, axis=0)
    else:
        weights = [a["q_proj_weight"], a["k_proj_weight"], a["v_proj_weight"]]
    biases = np.split(a["in_proj_bias"], 3) if "in_proj_bias" in a else [None] * 3
    return weights, biases


class MultiheadAttentionToMultiHeadAttention(Converter):
    kind = "attention"
    torch_layout = "last"
    expandable = True

    def check(self, pair):
        module, layer = pair.torch_module, pair.keras_layer
        if module.bias_k is not None or module.add_zero_attn:
            return "torch add_bias_kv / add_zero_attn have no Keras counterpart"
        if module.num_heads != layer.num_heads:
            return f"num_heads: torch {module.num_heads}, keras {layer.num_heads}"
        if (module.in_proj_bias is not None) != bool(layer._use_bias):
            return "bias: torch and Keras's use_bias differ"
        return None

    def to_keras(self, pair, a):
        module, layer = pair.torch_module, pair.keras_layer
        roles = _keras_roles(layer)
        weights, biases = _torch_projections(module, a)
        values = {}
        for role, weight, bias in zip(ROLES[:3], weights, biases, strict=True):
            kernel, *bias_var = roles[role]
            values[id(kernel)] = weight.T.reshape(tuple(kernel.shape))
            if bias_var and bias is not None:
                values[id(bias_var[0])] = bias.reshape(tuple(bias_var[0].shape))
        out_kernel, *out_bias = roles["attention_output"]
        values[id(out_kernel)] = a["out_proj.weight"].T.reshape(tuple(out_kernel.shape))
        if out_bias and "out_proj.bias" in a:
            values[id(out_bias[0])] = a["out_proj.bias"]
        return [values[id(v)] for v in layer.weights]

    def to_torch(self, pair, w):
        module, layer = pair.torch_module, pair.keras_layer
        by_id = {id(v): np.asarray(x) for v, x in zip(layer.weights, w, strict=True)}
        roles = _keras_roles(layer)
        out, weights, biases = {}, [], []
        for role in ROLES[:3]:
            kernel, *bias = roles[role]
            k = by_id[id(kernel)]
            weights.append(k.reshape(k.shape[0], -1).T)
            if bias:
                biases.append(by_id[id(bias[0])].reshape(-1))
        if module._qkv_same_embed_dim:
            out["in_proj_weight"] = np.concatenate(weights, axis=0)
        else:
            out["q_proj_weight"], out["k_proj_weight"], out["v_proj_weight"] = weights
        if biases:
            out["in_proj_bias"] = np.concatenate(biases)
        out_kernel, *out_bias = roles["attention_output"]
        k = by_id[id(out_kernel)]
        out["out_proj.weight"] = k.reshape(-1, k.shape[-1]).T
        if out_bias:
            out["out_proj.bias"] = by_id[id(out_bias[0])]
        return out

    def align(self, pair, torch_output, keras_shape):
        out = torch_output if pair.torch_module.batch_first else np.swapaxes(torch_output, 0, 1)
        return out if out.shape == tuple(keras_shape) else None

    def settings(self, pair):
        module, layer = pair.torch_module, pair.keras_layer
        rows = [
            Setting("num_heads", module.num_heads, layer.num_heads),
            Setting(
                "head_dim",
                module.head_dim,
                layer.key_dim,
                effect="scores scaled by another 1/sqrt(head_dim)",
            ),
            Setting(
                "dropout",
                module.dropout,
                layer.dropout,
                effect="attention weights dropped otherwise in training (switched off "
                "by the training levels)",
            ),
        ]
        masks = _mask_setting(pair)
        return rows + ([masks] if masks is not None else [])

    def switch_off(self, obj):
        if hasattr(obj, "in_proj_weight"):  # torch: the attention weights' dropout
            before = obj.dropout
            obj.dropout = 0.0
            return lambda: setattr(obj, "dropout", before)
        layer = getattr(obj, "_dropout_layer", None)  # Keras: its Dropout sublayer
        if layer is not None and layer.rate:
            before = layer.rate
            object.__setattr__(layer, "rate", 0.0)
            return lambda: object.__setattr__(layer, "rate", before)
        return lambda: None

    def random_rate(self, obj):
        if hasattr(obj, "in_proj_weight"):
            return float(obj.dropout)
        layer = getattr(obj, "_dropout_layer", None)
        return float(layer.rate) if layer is not None else 0.0


def _blocked(mask) -> np.ndarray:
    """True where a torch mask blocks (bool True, or an additive -inf / very negative)."""
    mask = np.asarray(mask)
    if mask.dtype == bool:
        return mask
    return mask < -1e30


def _mask_setting(pair) -> Setting | None:
    """Each side's attended (query, key) positions, from the traced calls."""
    torch_call, keras_call = pair.torch_call, pair.keras_call
    if torch_call is None or keras_call is None or keras_call.output is None:
        return None
    batch, length = keras_call.output.shape[0], keras_call.output.shape[1]
    keys = _key_length(keras_call)
    if keys is None:
        return None
    torch_allowed = np.ones((batch, length, keys), bool)
    kw = torch_call.kwargs
    args = torch_call.inputs
    kpm = kw.get("key_padding_mask", args[3] if len(args) > 3 else None)
    if kpm is not None and np.ndim(kpm) == 2:
        torch_allowed &= ~_blocked(kpm)[:, None, :]
    attn = kw.get("attn_mask")
    if attn is not None:
        blocked = _blocked(attn)
        if blocked.ndim == 2:
            torch_allowed &= ~blocked[None]
        elif blocked.ndim == 3 and blocked.shape[0] == batch * pair.torch_module.num_heads:
            torch_allowed &= ~blocked.reshape(batch, -1, *blocked.shape[1:]).all(axis=1)
    elif kw.get("is_causal"):
        torch_allowed &= np.tril(np.ones((length, keys), bool))[None]
    keras_allowed = np.ones((batch, length, keys), bool)
    mask = keras_call.kwargs.get("attention_mask")
    if mask is not None and not isinstance(mask, (bool, str)):
        keras_allowed &= np.broadcast_to(np.asarray(mask).astype(bool), keras_allowed.shape)
    if keras_call.kwargs.get("use_causal_mask") is True:
        keras_allowed &= np.tril(np.ones((length, keys), bool))[None]
    total = torch_allowed.size
    return Setting(
        "attention mask",
        f"{int(torch_allowed.sum())} of {total} (query, key) positions attended",
        f"{int(keras_allowed.sum())} of {total}",
        same=bool(np.array_equal(torch_allowed, keras_allowed)),
        effect="the two attend to other keys: torch's key_padding_mask (and a boolean "
        "attn_mask) is True where a key is ignored, Keras's attention_mask True where it "
        "is attended; is_causal is use_causal_mask",
    )


def _key_length(keras_call):
    inputs = keras_call.inputs
    value = inputs[1] if len(inputs) > 1 else keras_call.kwargs.get("value")
    if value is None:
        value = inputs[0] if inputs else None
    return None if value is None or np.ndim(value) < 2 else int(np.shape(value)[1])


def _register():
    import keras
    import torch

    registry.register(
        MultiheadAttentionToMultiHeadAttention,
        torch.nn.MultiheadAttention,
        keras.layers.MultiHeadAttention,
        user=False,
    )


_register()
