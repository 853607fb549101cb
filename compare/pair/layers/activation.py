"""Activations, paired so that the forward level compares their outputs and the
structure level names a variant that differs (GELU exact or tanh: keras.ops.gelu
approximates by default, keras.activations.gelu does not; ReLU6, hard-swish, leaky
slopes), a Keras layer's own `activation=` included; and PReLU, for its slopes. torch's
functional forms (`F.gelu`, `torch.relu`, ...) are recorded by the trace when called
outside any unit.

Stage: pair.
"""

from __future__ import annotations

import functools
import inspect

import numpy as np

from compare.pair import registry
from compare.pair.layers.common import _bind, _Inherit
from compare.pair.registry import Converter, Setting
from compare.pair.units import FunctionalOp, FusedActivation

# --- activations -----------------------------------------------------------------------

_TORCH_MODULE_ACTIVATIONS = {
    "ReLU": lambda m: {"function": "relu"},
    "ReLU6": lambda m: {"function": "relu6"},
    "LeakyReLU": lambda m: {"function": "leaky_relu", "negative_slope": m.negative_slope},
    "ELU": lambda m: {"function": "elu", "alpha": m.alpha},
    "GELU": lambda m: {
        "function": "gelu",
        "approximate": "tanh" if m.approximate == "tanh" else "none",
    },
    "SiLU": lambda m: {"function": "silu"},
    "Hardswish": lambda m: {"function": "hard_swish"},
    "Hardsigmoid": lambda m: {"function": "hard_sigmoid"},
    "Sigmoid": lambda m: {"function": "sigmoid"},
    "Tanh": lambda m: {"function": "tanh"},
    "Softmax": lambda m: {"function": "softmax"},
    "LogSoftmax": lambda m: {"function": "log_softmax"},
    "Mish": lambda m: {"function": "mish"},
    "Softplus": lambda m: {"function": "softplus", "beta": m.beta},
    "SELU": lambda m: {"function": "selu"},
    "Softsign": lambda m: {"function": "softsign"},
}
_KERAS_NAMES = {"swish": "silu", "hard_silu": "hard_swish", "hardswish": "hard_swish"}


def torch_activation(obj) -> dict:
    if isinstance(obj, FunctionalOp):
        return obj.settings
    name = type(obj).__name__
    if name == "Hardtanh" and (obj.min_val, obj.max_val) == (0.0, 6.0):
        return {"function": "relu6"}
    if name == "Hardtanh":
        return {"function": "hardtanh", "min": obj.min_val, "max": obj.max_val}
    for cls in type(obj).__mro__:
        if cls.__name__ in _TORCH_MODULE_ACTIVATIONS:
            return _TORCH_MODULE_ACTIVATIONS[cls.__name__](obj)
    return {"function": name}


def keras_function(fn) -> dict:
    """A Keras activation function's settings: its name and the arguments that change it
    (keras.ops.gelu's approximate=True default against keras.activations.gelu's False)."""
    keywords = {}
    while isinstance(fn, functools.partial):
        keywords = {**fn.keywords, **keywords}
        fn = fn.func
    name = getattr(fn, "__name__", type(fn).__name__)
    name = _KERAS_NAMES.get(name, name)
    settings = {"function": name}
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        parameters = {}
    if name == "gelu":
        default = parameters["approximate"].default if "approximate" in parameters else False
        settings["approximate"] = "tanh" if keywords.get("approximate", default) else "none"
    if name == "relu":
        slope = keywords.get("negative_slope", 0.0)
        top = keywords.get("max_value")
        if top == 6.0 and not slope:
            return {"function": "relu6"}
        if slope:
            return {"function": "leaky_relu", "negative_slope": float(slope)}
    if name == "leaky_relu":
        default = parameters["negative_slope"].default if "negative_slope" in parameters else 0.2
        settings["negative_slope"] = float(keywords.get("negative_slope", default))
    if name == "elu":
        settings["alpha"] = float(keywords.get("alpha", 1.0))
    return settings


def keras_activation(obj) -> dict:
    if isinstance(obj, FusedActivation):
        return keras_function(obj.activation)
    name = type(obj).__name__
    if name == "ReLU":
        top, slope = obj.max_value, float(obj.negative_slope or 0.0)
        if top is not None and float(top) == 6.0 and not slope and not obj.threshold:
            return {"function": "relu6"}
        if slope:
            return {"function": "leaky_relu", "negative_slope": slope}
        if top is not None:
            return {"function": "hardtanh", "min": 0.0, "max": float(top)}
        return {"function": "relu"}
    if name == "LeakyReLU":
        return {"function": "leaky_relu", "negative_slope": float(obj.negative_slope)}
    if name == "ELU":
        return {"function": "elu", "alpha": float(obj.alpha)}
    if name == "Softmax":
        return {"function": "softmax"}
    if name == "Activation":
        return keras_function(obj.activation)
    return {"function": name}


def _words(settings: dict) -> str:
    extra = ", ".join(f"{k}={v!r}" for k, v in settings.items() if k != "function")
    return f"{settings['function']}({extra})" if extra else settings["function"]


class ActivationConverter(_Inherit, Converter):
    kind = "activation"
    weighted = False

    def settings(self, pair):
        ours, theirs = torch_activation(pair.torch_module), keras_activation(pair.keras_layer)
        if theirs.get("function") not in _KNOWN:
            return [_probed(ours, theirs, pair.keras_layer, pair.context.get("spec"))]
        same = _same_activation(ours, theirs)
        effect = "another function"
        if ours.get("function") == theirs.get("function") == "gelu":
            effect = (
                "GELU exact (erf) against its tanh approximation: up to ~5e-4 apart; "
                "keras.ops.gelu approximates by default, keras.activations.gelu does not"
            )
        return [Setting("activation", _words(ours), _words(theirs), same=same, effect=effect)]

    def check(self, pair):
        return None

    def align_key(self, obj):
        found = keras_activation(obj) if _is_keras(obj) else torch_activation(obj)
        return f"activation:{found.get('function')}"


# What torch's side computes, for a Keras activation known only as a callable (a lambda, a
# user's function): both are evaluated on one grid, elementwise.
_TORCH_REFERENCE = {
    "relu": lambda F, x, s: F.relu(x),
    "relu6": lambda F, x, s: F.relu6(x),
    "hardtanh": lambda F, x, s: F.hardtanh(x, s["min"], s["max"]),
    "leaky_relu": lambda F, x, s: F.leaky_relu(x, s["negative_slope"]),
    "elu": lambda F, x, s: F.elu(x, s["alpha"]),
    "gelu": lambda F, x, s: F.gelu(x, approximate=s["approximate"]),
    "silu": lambda F, x, s: F.silu(x),
    "hard_swish": lambda F, x, s: F.hardswish(x),
    "hard_sigmoid": lambda F, x, s: F.hardsigmoid(x),
    "sigmoid": lambda F, x, s: F.sigmoid(x),
    "tanh": lambda F, x, s: F.tanh(x),
    "mish": lambda F, x, s: F.mish(x),
    "softplus": lambda F, x, s: F.softplus(x, s.get("beta", 1.0)),
    "selu": lambda F, x, s: F.selu(x),
    "softsign": lambda F, x, s: F.softsign(x),
}
_KNOWN = {*_TORCH_REFERENCE, "softmax", "log_softmax", "linear"}


def _probed(ours: dict, theirs: dict, layer, spec) -> Setting:
    """The activation setting where Keras's function has no name we know: the two functions
    on one grid of values (an elementwise function is the same function where they agree
    on it to float32's rounding; GELU's tanh approximation is ~5e-4 from exact)."""
    import keras
    import torch
    import torch.nn.functional as F

    from compare.pair.spec import PairSpec

    spec = spec or PairSpec()
    span = spec.activation_probe_span
    name = theirs.get("function")
    reference = _TORCH_REFERENCE.get(ours.get("function"))
    fn = getattr(layer, "activation", layer)  # an Activation's or a fused one's, else the layer
    grid = np.linspace(-span, span, spec.activation_probe_points, dtype=np.float32)
    try:
        if reference is None:
            raise ValueError(f"no reference for torch's {ours.get('function')}")
        expected = reference(F, torch.from_numpy(grid), ours).numpy().astype(np.float64)
        got = np.asarray(keras.ops.convert_to_numpy(fn(keras.ops.convert_to_tensor(grid))))
        got = got.astype(np.float64).reshape(grid.shape)
    except Exception as error:  # noqa: BLE001 - an unreadable function is compared by outputs
        return Setting(
            "activation",
            _words(ours),
            f"{name} (not identified: {type(error).__name__})",
            same=False,
            effect="compared by its outputs only",
            decisive=False,
        )
    gaps = np.abs(got - expected)
    worst = int(np.argmax(np.where(np.isnan(gaps), np.inf, gaps)))
    bound = spec.activation_probe_rtol * np.maximum(1.0, np.abs(expected))
    same = bool(np.all(gaps <= bound))
    words = f"{name} (on [{-span:g}, {span:g}]: " + (
        f"{_words(ours)} to float32 rounding)"
        if same
        else f"{gaps[worst]:.2e} from torch's at x={grid[worst]:.4g})"
    )
    return Setting("activation", _words(ours), words, same=same, effect="another function")


def _is_keras(obj) -> bool:
    return isinstance(obj, FusedActivation) or type(obj).__module__.startswith("keras")


def _same_activation(a: dict, b: dict) -> bool:
    if a.get("function") != b.get("function"):
        return False
    keys = set(a) | set(b)
    return all(registry._equal(a.get(k), b.get(k)) for k in keys)


def _activation_function(name, describe=None):
    def settings(args, kwargs):
        return describe(args, kwargs) if describe else {"function": name}

    return settings


def _gelu(args, kwargs):
    approximate = _bind(args, kwargs, ["approximate"], {"approximate": "none"})["approximate"]
    return {"function": "gelu", "approximate": "tanh" if approximate == "tanh" else "none"}


def _leaky(args, kwargs):
    slope = _bind(args, kwargs, ["negative_slope"], {"negative_slope": 0.01})["negative_slope"]
    return {"function": "leaky_relu", "negative_slope": float(slope)}


def _hardtanh(args, kwargs):
    values = _bind(args, kwargs, ["min_val", "max_val"], {"min_val": -1.0, "max_val": 1.0})
    if (float(values["min_val"]), float(values["max_val"])) == (0.0, 6.0):
        return {"function": "relu6"}
    return {
        "function": "hardtanh",
        "min": float(values["min_val"]),
        "max": float(values["max_val"]),
    }


def _elu(args, kwargs):
    return {
        "function": "elu",
        "alpha": float(_bind(args, kwargs, ["alpha"], {"alpha": 1.0})["alpha"]),
    }


# --- PReLU -------------------------------------------------------------------------------


class PReLUConverter(Converter):
    kind = "prelu"
    torch_layout = "channels_first"

    def check(self, pair):
        torch_size = pair.torch_module.weight.numel()
        keras_size = int(np.prod(pair.keras_layer.alpha.shape))
        if torch_size != keras_size:
            return (
                f"torch PReLU has {torch_size} slope(s), Keras's {keras_size}: give Keras "
                "shared_axes over the spatial axes (e.g. shared_axes=[1, 2])"
            )
        return None

    def to_keras(self, pair, a):
        return [a["weight"].reshape(tuple(pair.keras_layer.alpha.shape))]

    def to_torch(self, pair, w):
        return {"weight": w[0].reshape(-1)}


def _register():
    import keras
    import torch
    import torch.nn.functional as F

    nn, kl = torch.nn, keras.layers
    activation = registry.register(
        ActivationConverter,
        tuple(getattr(nn, n) for n in [*_TORCH_MODULE_ACTIVATIONS, "Hardtanh"]),
        (kl.ReLU, kl.LeakyReLU, kl.ELU, kl.Softmax, kl.Activation, FusedActivation),
        user=False,
    )
    for fn, describe in [
        (F.relu, None),
        (torch.relu, None),
        (torch.Tensor.relu, None),
        (F.relu6, lambda a, k: {"function": "relu6"}),
        (F.hardtanh, _hardtanh),
        (F.leaky_relu, _leaky),
        (F.elu, _elu),
        (F.gelu, _gelu),
        (F.silu, lambda a, k: {"function": "silu"}),
        (F.hardswish, lambda a, k: {"function": "hard_swish"}),
        (F.hardsigmoid, lambda a, k: {"function": "hard_sigmoid"}),
        (torch.sigmoid, lambda a, k: {"function": "sigmoid"}),
        (torch.Tensor.sigmoid, lambda a, k: {"function": "sigmoid"}),
        (F.sigmoid, lambda a, k: {"function": "sigmoid"}),
        (torch.tanh, lambda a, k: {"function": "tanh"}),
        (torch.Tensor.tanh, lambda a, k: {"function": "tanh"}),
        (F.tanh, lambda a, k: {"function": "tanh"}),
        (F.mish, lambda a, k: {"function": "mish"}),
        (F.softmax, lambda a, k: {"function": "softmax"}),
        (torch.softmax, lambda a, k: {"function": "softmax"}),
        (torch.Tensor.softmax, lambda a, k: {"function": "softmax"}),
        (F.log_softmax, lambda a, k: {"function": "log_softmax"}),
        (F.selu, lambda a, k: {"function": "selu"}),
    ]:
        name = getattr(fn, "__name__", "relu")
        registry.register_function(fn, activation, describe or _activation_function(name))
    registry.register(PReLUConverter, nn.PReLU, kl.PReLU, user=False)


_register()
