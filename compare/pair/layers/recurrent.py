"""LSTM and GRU, one direction or both, one layer or several: each torch layer (an
`nn.LSTM(num_layers=2)` makes two units) against one Keras LSTM/GRU, or against a
Bidirectional wrapper when torch's is bidirectional.

Gates: LSTM (i, f, g, o) in both; GRU torch (r, z, n), Keras (z, r, h). Biases: an LSTM's
b_ih + b_hh is Keras's one bias (its gradient is either's); a GRU with reset_after=True
keeps both (2, 3H). torch concatenates the two directions; Keras's merge_mode must be
"concat" for the same function. A stacked torch module shows only its last layer's
output, so the layers before it are listed as not compared.

Stage: pair.
"""

from __future__ import annotations

import numpy as np

from compare.pair import registry
from compare.pair.registry import Converter, Setting


def _gru_to_keras(array):
    r, z, n = np.split(array, 3, axis=0)
    return np.concatenate([z, r, n], axis=0)


def _gru_to_torch(array):
    z, r, n = np.split(array, 3, axis=0)
    return np.concatenate([r, z, n], axis=0)


def _layer_index(pair) -> int:
    part = pair.part
    return int(part[2:]) if part.startswith(".l") else 0


def _directions(pair) -> list[tuple[str, object]]:
    """(torch suffix, Keras RNN layer) per direction."""
    layer = pair.keras_layer
    k = _layer_index(pair)
    if type(layer).__name__ == "Bidirectional":
        return [(f"_l{k}", layer.forward_layer), (f"_l{k}_reverse", layer.backward_layer)]
    return [(f"_l{k}", layer)]


class RecurrentToRecurrent(Converter):
    kind = "recurrent"
    torch_layout = "last"

    def torch_parts(self, module):
        return [""] if module.num_layers == 1 else [f".l{k}" for k in range(module.num_layers)]

    def torch_arrays(self, pair):
        arrays = super().torch_arrays(pair)
        suffixes = {s for s, _ in _directions(pair)} if pair.keras_layer is not None else None
        k = _layer_index(pair)
        wanted = suffixes or {f"_l{k}", f"_l{k}_reverse"}
        return {n: v for n, v in arrays.items() if any(n.endswith(s) for s in wanted)}

    @staticmethod
    def _gru(pair) -> bool:
        return isinstance(pair.torch_module, __import__("torch").nn.GRU)

    def check(self, pair):
        module, layer = pair.torch_module, pair.keras_layer
        bidirectional = type(layer).__name__ == "Bidirectional"
        if module.bidirectional != bidirectional:
            return (
                f"torch bidirectional={module.bidirectional} against a Keras "
                f"{type(layer).__name__}: wrap the Keras layer in Bidirectional"
                if module.bidirectional
                else "a unidirectional torch layer against a Keras Bidirectional"
            )
        if getattr(module, "proj_size", 0):
            return "torch LSTM proj_size has no Keras counterpart"
        inner = layer.forward_layer if bidirectional else layer
        torch_gru = self._gru(pair)
        if torch_gru != (type(inner).__name__ == "GRU"):
            return f"a torch {type(module).__name__} against a Keras {type(inner).__name__}"
        return None

    def to_keras(self, pair, a, gradients=False):
        gru = self._gru(pair)
        order = _gru_to_keras if gru else (lambda x: x)
        out = []
        for suffix, layer in _directions(pair):
            out += [order(a[f"weight_ih{suffix}"]).T, order(a[f"weight_hh{suffix}"]).T]
            if f"bias_ih{suffix}" not in a:
                continue
            b_ih, b_hh = order(a[f"bias_ih{suffix}"]), order(a[f"bias_hh{suffix}"])
            if gru and layer.reset_after:
                out.append(np.stack([b_ih, b_hh]))
            else:  # one Keras bias: the sum (its gradient is either tensor's)
                out.append(b_ih if gradients else b_ih + b_hh)
        return out

    def gradients_to_keras(self, pair, gradients):
        full = self.torch_arrays(pair)
        filled = {k: np.asarray(gradients.get(k, np.zeros_like(v))) for k, v in full.items()}
        return self.to_keras(pair, filled, gradients=True)

    def to_torch(self, pair, w):
        order = _gru_to_torch if self._gru(pair) else (lambda x: x)
        out, index = {}, 0
        has_bias = pair.torch_module.bias
        for suffix, _ in _directions(pair):
            out[f"weight_ih{suffix}"] = order(w[index].T)
            out[f"weight_hh{suffix}"] = order(w[index + 1].T)
            index += 2
            if not has_bias:
                continue
            bias = w[index]
            index += 1
            if bias.ndim == 2:
                out[f"bias_ih{suffix}"], out[f"bias_hh{suffix}"] = order(bias[0]), order(bias[1])
            else:
                out[f"bias_ih{suffix}"], out[f"bias_hh{suffix}"] = order(bias), np.zeros_like(bias)
        return out

    def round_trip(self, pair, original, back):
        failed = []
        for suffix, layer in _directions(pair):
            summed = not (self._gru(pair) and layer.reset_after)
            for name in (f"weight_ih{suffix}", f"weight_hh{suffix}"):
                if not np.array_equal(original[name], back[name]):
                    failed.append(name)
            ih, hh = f"bias_ih{suffix}", f"bias_hh{suffix}"
            if ih in original:
                if summed:
                    ok = np.array_equal(original[ih] + original[hh], back[ih] + back[hh])
                else:
                    ok = np.array_equal(original[ih], back[ih]) and np.array_equal(
                        original[hh], back[hh]
                    )
                if not ok:
                    failed.append(ih)
        return failed

    def compared(self, pair):
        module = pair.torch_module
        if _layer_index(pair) < module.num_layers - 1:
            return (
                f"layer {_layer_index(pair)} of torch's {module.num_layers}-layer "
                f"{type(module).__name__} shows no output of its own"
            )
        return None

    def align(self, pair, torch_output, keras_shape):
        module = pair.torch_module
        out = torch_output if module.batch_first else np.swapaxes(torch_output, 0, 1)
        keras_shape = tuple(keras_shape)
        if out.shape == keras_shape:
            return out
        if out.ndim == 3 and len(keras_shape) == 2:  # Keras returns the last state
            if module.bidirectional:
                hidden = out.shape[-1] // 2
                last = np.concatenate([out[:, -1, :hidden], out[:, 0, hidden:]], axis=-1)
            else:
                last = out[:, -1]
            return last if last.shape == keras_shape else None
        return None

    def structure_problems(self, pair):
        layer = pair.keras_layer
        if type(layer).__name__ == "Bidirectional" and layer.merge_mode != "concat":
            return [
                f"{pair.label()}: torch concatenates its two directions, Keras's "
                f"Bidirectional merge_mode={layer.merge_mode!r}: give merge_mode='concat'"
            ]
        return []

    def settings(self, pair):
        module = pair.torch_module
        rows = []
        for _, layer in _directions(pair):
            cell = getattr(layer, "cell", layer)
            if self._gru(pair) and not layer.reset_after:
                rows.append(
                    Setting(
                        "reset_after",
                        "always (r multiplies W_hn h + b_hn)",
                        False,
                        effect="Keras applies the reset gate before the recurrent "
                        "matmul: another function (Keras's default True is torch's)",
                    )
                )
            if getattr(cell.recurrent_activation, "__name__", "") != "sigmoid":
                rows.append(
                    Setting(
                        "recurrent_activation",
                        "sigmoid",
                        cell.recurrent_activation.__name__,
                        effect="other gates",
                    )
                )
            if getattr(cell.activation, "__name__", "") != "tanh":
                rows.append(Setting("activation", "tanh", cell.activation.__name__))
            if getattr(layer, "go_backwards", False) and layer is not getattr(
                pair.keras_layer, "backward_layer", None
            ):
                rows.append(
                    Setting("go_backwards", False, True, effect="reads the sequence reversed")
                )
            keras_rate = max(getattr(cell, "dropout", 0.0), getattr(cell, "recurrent_dropout", 0.0))
            if keras_rate or (module.dropout and _layer_index(pair) < module.num_layers - 1):
                rows.append(
                    Setting(
                        "dropout",
                        module.dropout,
                        keras_rate,
                        decisive=False,
                        effect="torch drops between layers, Keras inside each step "
                        "(switched off by the training levels)",
                    )
                )
        if (
            not self._gru(pair)
            and module.bias
            and any(
                p.requires_grad for n, p in module.named_parameters() if n.startswith("bias_hh")
            )
        ):
            rows.append(
                Setting(
                    "biases",
                    "two trained biases (b_ih, b_hh)",
                    "one bias",
                    same=False,
                    intrinsic=True,
                    effect="the same function, but in training torch moves b_ih + "
                    "b_hh by two updates a step, Keras its one bias by one: freeze "
                    "torch's bias_hh at zero for a port that trains alike",
                )
            )
        return rows

    def switch_off(self, obj):
        saved = []
        for target in _recurrent_cells(obj):
            for name in ("dropout", "recurrent_dropout"):
                value = getattr(target, name, None)
                if isinstance(value, float) and value:
                    saved.append((target, name, value))
                    object.__setattr__(target, name, 0.0)

        def undo():
            for target, name, value in saved:
                object.__setattr__(target, name, value)

        return undo

    def random_rate(self, obj):
        return max(
            [
                getattr(t, n, 0.0) or 0.0
                for t in _recurrent_cells(obj)
                for n in ("dropout", "recurrent_dropout")
            ]
            or [0.0]
        )


def _recurrent_cells(obj):
    """The objects holding a recurrent layer's dropout rates (torch module, Keras cells)."""
    if hasattr(obj, "num_layers"):
        return [obj]
    layers = [obj.forward_layer, obj.backward_layer] if hasattr(obj, "forward_layer") else [obj]
    return [getattr(layer, "cell", layer) for layer in layers]


def _register():
    import keras
    import torch

    registry.register(
        RecurrentToRecurrent,
        (torch.nn.LSTM, torch.nn.GRU),
        (keras.layers.LSTM, keras.layers.GRU, keras.layers.Bidirectional),
        user=False,
    )


_register()
