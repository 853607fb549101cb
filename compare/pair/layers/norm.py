"""Normalisations: BatchNorm1d/2d/3d, LayerNorm (torchvision's LayerNorm2d too, a
subclass), GroupNorm, InstanceNorm1d/2d/3d and RMSNorm against BatchNormalization,
LayerNormalization, GroupNormalization (an instance norm is one group per channel) and
RMSNormalization. Weights: [weight, bias, running_mean, running_var] -> [gamma, beta,
moving_mean, moving_variance], each present as the layer has it.

BatchNorm's momentum means the opposite in the two (torch: the weight of the batch,
Keras: the weight of the old average); torch's running variance is unbiased, Keras's
biased, which no setting changes (the lockstep level predicts one from the other).

Stage: pair.
"""

from __future__ import annotations

import numpy as np

from compare.pair import registry
from compare.pair.registry import Converter, Setting


def _names(pair, running: bool) -> list[tuple[str, str]]:
    """(torch name, Keras role) of the layer's weights, in Keras's order."""
    layer = pair.keras_layer
    names = []
    if getattr(layer, "scale", True) and getattr(layer, "gamma", None) is not None:
        names.append(("weight", "gamma"))
    if getattr(layer, "center", True) and getattr(layer, "beta", None) is not None:
        names.append(("bias", "beta"))
    if running:
        names += [("running_mean", "moving_mean"), ("running_var", "moving_variance")]
    return names


class _Norm(Converter):
    running = False

    def torch_arrays(self, pair):
        arrays = super().torch_arrays(pair)
        keep = {"weight", "bias"} | ({"running_mean", "running_var"} if self.running else set())
        return {k: v for k, v in arrays.items() if k in keep}

    def to_keras(self, pair, a):
        return [
            a[name].reshape(self._keras_shape(pair, i))
            for i, (name, _) in enumerate(_names(pair, self.running))
        ]

    def _keras_shape(self, pair, index):
        return tuple(pair.keras_layer.weights[index].shape)

    def to_torch(self, pair, w):
        shapes = {k: v.shape for k, v in super().torch_arrays(pair).items()}
        return {
            name: value.reshape(shapes[name])
            for (name, _), value in zip(_names(pair, self.running), w, strict=True)
        }

    def check(self, pair):
        torch_affine = "weight" in super().torch_arrays(pair)
        layer = pair.keras_layer
        keras_affine = getattr(layer, "gamma", None) is not None
        if torch_affine != keras_affine:
            return f"affine: torch {torch_affine}, keras scale/center={keras_affine}"
        return None


def _epsilon(torch_eps, keras_eps, effect="outputs differ where a variance is near it"):
    return Setting("epsilon", float(torch_eps), float(keras_eps), effect=effect)


class BatchNormToBatchNormalization(_Norm):
    kind = "batchnorm"
    torch_layout = "channels_first"
    running = True

    def check(self, pair):
        if not pair.torch_module.track_running_stats:
            return (
                "torch track_running_stats=False normalises with each batch's statistics in "
                "inference too; Keras's BatchNormalization keeps moving averages"
            )
        return super().check(pair)

    def settings(self, pair):
        module, layer = pair.torch_module, pair.keras_layer
        rows = [
            _epsilon(
                module.eps,
                layer.epsilon,
                "inference outputs differ where a channel's running variance is near "
                "epsilon (keras default 1e-3, torch 1e-5; keras.applications' 1.001e-5)",
            )
        ]
        if module.momentum is None:
            rows.append(
                Setting(
                    "momentum",
                    "None (cumulative average)",
                    layer.momentum,
                    same=False,
                    effect="running statistics differ after the first training step",
                )
            )
        else:
            rows.append(
                Setting(
                    "momentum",
                    f"{module.momentum:g} (weight of the batch)",
                    f"{layer.momentum:g} (weight of the old average)",
                    same=bool(np.isclose(1.0 - module.momentum, layer.momentum, atol=1e-9)),
                    effect=f"running statistics differ after one training step: torch "
                    f"keeps {1 - module.momentum:g} of the old average, Keras "
                    f"{layer.momentum:g} (torch 0.1 = keras 0.9; keras 0.99 = torch 0.01)",
                )
            )
        rows.append(
            Setting(
                "running variance",
                "unbiased (n / (n - 1))",
                "biased",
                same=False,
                intrinsic=True,
                effect="after training the moving variances differ by the Bessel factor; "
                "lockstep predicts Keras's from torch's and compares that",
            )
        )
        if getattr(layer, "renorm", False):
            rows.append(Setting("renorm", False, True, effect="Keras renormalises batches"))
        return rows


class LayerNormToLayerNormalization(_Norm):
    kind = "layernorm"

    @staticmethod
    def torch_layout(pair):
        # torchvision's LayerNorm2d normalises channels of an (N, C, H, W) map.
        return "channels_first" if type(pair.torch_module).__name__ == "LayerNorm2d" else "last"

    def check(self, pair):
        module, layer = pair.torch_module, pair.keras_layer
        axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        rank = (
            len(pair.keras_call.inputs[0].shape)
            if pair.keras_call and pair.keras_call.inputs
            else None
        )
        negative = sorted(a - rank if rank is not None and a >= 0 else a for a in axes)
        wanted = list(range(-len(module.normalized_shape), 0))
        if type(module).__name__ != "LayerNorm2d" and negative != wanted:
            return (
                f"torch normalises over the last {len(module.normalized_shape)} axes, Keras "
                f"over axis={layer.axis}"
            )
        if getattr(module, "bias", None) is None and getattr(layer, "beta", None) is not None:
            return "torch LayerNorm(bias=False) has no offset, Keras's center=True has one"
        return super().check(pair)

    def settings(self, pair):
        rows = [
            _epsilon(
                pair.torch_module.eps,
                pair.keras_layer.epsilon,
                "outputs differ where a row's variance is near epsilon (keras "
                "default 1e-3, torch 1e-5)",
            )
        ]
        if getattr(pair.keras_layer, "rms_scaling", False):
            rows.append(Setting("rms_scaling", False, True, effect="Keras skips centring"))
        return rows


class GroupNormToGroupNormalization(_Norm):
    kind = "groupnorm"
    torch_layout = "channels_first"

    def settings(self, pair):
        module, layer = pair.torch_module, pair.keras_layer
        groups = layer.groups if layer.groups != -1 else "one per channel"
        return [
            Setting(
                "groups",
                module.num_groups,
                groups,
                same=module.num_groups == _keras_groups(layer, module.num_channels),
                effect="statistics over other channel groups",
            ),
            _epsilon(
                module.eps,
                layer.epsilon,
                "outputs differ where a group's variance is "
                "near epsilon (keras default 1e-3, torch 1e-5)",
            ),
        ]


def _keras_groups(layer, channels: int) -> int:
    return channels if layer.groups == -1 else layer.groups


class InstanceNormToGroupNormalization(_Norm):
    kind = "instancenorm"
    torch_layout = "channels_first"

    def settings(self, pair):
        module, layer = pair.torch_module, pair.keras_layer
        channels = module.num_features
        rows = [
            Setting(
                "groups",
                "one per channel",
                layer.groups,
                same=_keras_groups(layer, channels) == channels,
                effect="an instance norm normalises each channel alone",
            ),
            _epsilon(module.eps, layer.epsilon),
        ]
        if module.track_running_stats:
            rows.append(
                Setting(
                    "track_running_stats",
                    True,
                    False,
                    effect="torch normalises "
                    "with running statistics in inference, Keras with each example's",
                )
            )
        return rows


class RMSNormToRMSNormalization(_Norm):
    kind = "rmsnorm"

    def to_keras(self, pair, a):
        return [a["weight"]] if "weight" in a else []

    def to_torch(self, pair, w):
        return {"weight": w[0]} if w else {}

    def check(self, pair):
        return None

    def settings(self, pair):
        eps = pair.torch_module.eps
        torch_eps = float(np.finfo(np.float32).eps) if eps is None else eps
        return [
            _epsilon(
                torch_eps,
                pair.keras_layer.epsilon,
                "torch's default eps (None) is float32's machine epsilon, 1.2e-7; Keras's 1e-6",
            )
        ]


def _register():
    import keras
    import torch

    bn = torch.nn.modules.batchnorm._BatchNorm
    registry.register(
        BatchNormToBatchNormalization, bn, keras.layers.BatchNormalization, user=False
    )
    registry.register(
        LayerNormToLayerNormalization,
        torch.nn.LayerNorm,
        keras.layers.LayerNormalization,
        user=False,
    )
    registry.register(
        GroupNormToGroupNormalization,
        torch.nn.GroupNorm,
        keras.layers.GroupNormalization,
        user=False,
    )
    registry.register(
        InstanceNormToGroupNormalization,
        torch.nn.modules.instancenorm._InstanceNorm,
        keras.layers.GroupNormalization,
        user=False,
    )
    if hasattr(torch.nn, "RMSNorm") and hasattr(keras.layers, "RMSNormalization"):
        registry.register(
            RMSNormToRMSNormalization, torch.nn.RMSNorm, keras.layers.RMSNormalization, user=False
        )


_register()
