"""Round trips as a check: for random configurations of every weighted layer kind the
engine converts, torch -> Keras -> torch gives back torch's weights bit for bit, and
Keras -> torch -> Keras gives back Keras's, each leg through `port_weights` (the path a
user takes), its structure and weights levels passing.

Hypothesis draws the settings (kernel sizes, strides, dilation, groups, bias on or off,
channels, heads, directions, stacked layers); six examples per kind keep the suite
affordable, derandomized so that every run (CI's included) tries the same ones.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from compare import pair

LEVELS = ("structure", "weights")
FEW = settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _frameworks():
    import keras
    import torch

    return torch, keras


def _state(module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _round_trip(make_torch, make_keras, x):
    """torch -> Keras -> a second torch, and Keras -> torch -> a second Keras, bit for bit."""
    torch, _ = _frameworks()
    torch.manual_seed(1)
    original = make_torch()
    before = _state(original)
    keras_model = make_keras()
    there = pair.port_weights(original, keras_model, x, levels=LEVELS)
    assert there.passed, there.report.message()
    torch.manual_seed(2)  # another draw: every tensor must come from Keras
    back = pair.port_weights(keras_model, make_torch(), x, levels=LEVELS)
    assert back.passed, back.report.message()
    after = _state(back.model)
    assert sorted(after) == sorted(before)
    for name, value in before.items():
        if name.endswith("num_batches_tracked"):
            continue  # a counter, not a weight: Keras holds no such thing
        assert torch.equal(after[name], value), f"{name} changes on torch -> Keras -> torch"
    keras_start = [np.array(w) for w in keras_model.get_weights()]
    fresh = make_keras()
    again = pair.port_weights(back.model, fresh, x, levels=LEVELS)
    assert again.passed, again.report.message()
    for index, (a, b) in enumerate(zip(keras_start, fresh.get_weights(), strict=True)):
        assert np.array_equal(a, b), f"Keras weight {index} changes on Keras -> torch -> Keras"


def _x(*shape, high=None):
    rng = np.random.default_rng(0)
    if high is not None:
        return rng.integers(0, high, shape)
    return rng.normal(size=shape).astype(np.float32)


def _randomised_norm(module):
    torch, _ = _frameworks()
    with torch.no_grad():
        module.running_mean.uniform_(-1, 1)
        module.running_var.uniform_(0.5, 2)
        module.weight.uniform_(0.5, 1.5)
        module.bias.uniform_(-1, 1)
    return module


@FEW
@given(inputs=st.integers(1, 6), outputs=st.integers(1, 6), bias=st.booleans())
def test_dense(inputs, outputs, bias):
    torch, keras = _frameworks()
    _round_trip(
        lambda: torch.nn.Linear(inputs, outputs, bias=bias),
        lambda: keras.Sequential(
            [keras.Input((inputs,)), keras.layers.Dense(outputs, use_bias=bias)]
        ),
        _x(3, inputs),
    )


@FEW
@given(
    rank=st.sampled_from([1, 2, 3]),
    groups=st.integers(1, 3),
    per_group_in=st.integers(1, 2),
    per_group_out=st.integers(1, 2),
    kernel=st.integers(1, 3),
    stride=st.integers(1, 2),
    dilation=st.integers(1, 2),
    bias=st.booleans(),
)
def test_conv(rank, groups, per_group_in, per_group_out, kernel, stride, dilation, bias):
    assume(stride == 1 or dilation == 1)  # Keras refuses both above 1 in one convolution
    torch, keras = _frameworks()
    cin, cout, size = groups * per_group_in, groups * per_group_out, 7
    conv = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)[rank - 1]
    layer = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)[rank - 1]
    _round_trip(
        lambda: conv(cin, cout, kernel, stride=stride, dilation=dilation, groups=groups, bias=bias),
        lambda: keras.Sequential(
            [
                keras.Input((size,) * rank + (cin,)),
                layer(
                    cout,
                    kernel,
                    strides=stride,
                    dilation_rate=dilation,
                    groups=groups,
                    use_bias=bias,
                ),
            ]
        ),
        _x(2, cin, *(size,) * rank),
    )


@FEW
@given(
    cin=st.integers(1, 3),
    cout=st.integers(1, 3),
    kernel=st.integers(1, 3),
    stride=st.integers(1, 2),
    bias=st.booleans(),
)
def test_conv_transpose(cin, cout, kernel, stride, bias):
    torch, keras = _frameworks()
    _round_trip(
        lambda: torch.nn.ConvTranspose2d(cin, cout, kernel, stride=stride, bias=bias),
        lambda: keras.Sequential(
            [
                keras.Input((5, 5, cin)),
                keras.layers.Conv2DTranspose(cout, kernel, strides=stride, use_bias=bias),
            ]
        ),
        _x(2, cin, 5, 5),
    )


@FEW
@given(channels=st.integers(1, 3), multiplier=st.integers(1, 2), kernel=st.integers(1, 3))
def test_depthwise(channels, multiplier, kernel):
    torch, keras = _frameworks()
    _round_trip(
        lambda: torch.nn.Conv2d(
            channels, channels * multiplier, kernel, groups=channels, bias=True
        ),
        lambda: keras.Sequential(
            [
                keras.Input((6, 6, channels)),
                keras.layers.DepthwiseConv2D(kernel, depth_multiplier=multiplier),
            ]
        ),
        _x(2, channels, 6, 6),
    )


@FEW
@given(kind=st.sampled_from(["batch", "layer", "group"]), groups=st.integers(1, 3))
def test_norms(kind, groups):
    torch, keras = _frameworks()
    channels = groups * 2
    if kind == "batch":
        make = lambda: _randomised_norm(torch.nn.BatchNorm2d(channels))  # noqa: E731
        norm = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9)
        x, shape = _x(4, channels, 3, 3), (3, 3, channels)
    elif kind == "layer":
        make = lambda: torch.nn.LayerNorm(channels)  # noqa: E731
        norm = keras.layers.LayerNormalization(epsilon=1e-5)
        x, shape = _x(4, 5, channels), (5, channels)
    else:
        make = lambda: torch.nn.GroupNorm(groups, channels)  # noqa: E731
        norm = keras.layers.GroupNormalization(groups, epsilon=1e-5)
        x, shape = _x(4, channels, 3, 3), (3, 3, channels)
    config = norm.get_config()
    _round_trip(
        make,
        lambda: keras.Sequential([keras.Input(shape), type(norm).from_config(config)]),
        x,
    )


@FEW
@given(vocabulary=st.integers(2, 9), width=st.integers(1, 5))
def test_embedding(vocabulary, width):
    torch, keras = _frameworks()
    _round_trip(
        lambda: torch.nn.Embedding(vocabulary, width),
        lambda: keras.Sequential(
            [keras.Input((4,), dtype="int32"), keras.layers.Embedding(vocabulary, width)]
        ),
        _x(3, 4, high=vocabulary),
    )


class _Recurrent:
    """A torch recurrent module that hands on its sequence (the Keras side's output)."""

    def __init__(self, torch, kind, features, hidden, layers, bidirectional, bias):
        module = getattr(torch.nn, kind)(
            features,
            hidden,
            num_layers=layers,
            bidirectional=bidirectional,
            bias=bias,
            batch_first=True,
        )

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = module

            def forward(self, x):
                return self.rnn(x)[0]

        self.net = Net()


@FEW
@given(
    kind=st.sampled_from(["LSTM", "GRU"]),
    hidden=st.integers(1, 4),
    layers=st.integers(1, 2),
    bidirectional=st.booleans(),
    bias=st.booleans(),
)
def test_recurrent(kind, hidden, layers, bidirectional, bias):
    torch, keras = _frameworks()
    features = 3

    def make_keras():
        x = inputs = keras.Input((5, features))
        for index in range(layers):
            extra = {"reset_after": True} if kind == "GRU" else {}
            cell = getattr(keras.layers, kind)(
                hidden, return_sequences=True, use_bias=bias, name=f"rnn_l{index}", **extra
            )
            x = (
                keras.layers.Bidirectional(cell, name=f"rnn_l{index}")(x)
                if bidirectional
                else cell(x)
            )
        return keras.Model(inputs, x)

    _round_trip(
        lambda: _Recurrent(torch, kind, features, hidden, layers, bidirectional, bias).net,
        make_keras,
        _x(2, 5, features),
    )


@FEW
@given(heads=st.sampled_from([1, 2, 4]), head_width=st.integers(1, 3), bias=st.booleans())
def test_attention(heads, head_width, bias):
    torch, keras = _frameworks()
    width = heads * head_width

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = torch.nn.MultiheadAttention(width, heads, bias=bias, batch_first=True)

        def forward(self, x):
            return self.attention(x, x, x, need_weights=False)[0]

    def make_keras():
        x = keras.Input((4, width))
        layer = keras.layers.MultiHeadAttention(heads, head_width, use_bias=bias, name="attention")
        return keras.Model(x, layer(x, x))

    _round_trip(Net, make_keras, _x(2, 4, width))


def test_a_broken_converter_fails_the_round_trip():
    """The property can fail: a converter that drops a bias's last element on the way
    back to torch is caught at the weights level, naming the layer."""
    torch, keras = _frameworks()
    from compare.pair import layers, registry
    from compare.pair.layers.dense import LinearToDense

    layers.load()
    converter = next(r.converter for r in registry._REGISTRY if type(r.converter) is LinearToDense)
    original = converter.to_torch

    def lossy(layer_pair, weights):
        out = original(layer_pair, weights)
        out["bias"] = out["bias"].copy()
        out["bias"][-1] = 0.0
        return out

    converter.to_torch = lossy
    try:
        report = pair.port_weights(
            torch.nn.Linear(3, 2),
            keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]),
            _x(2, 3),
            levels=LEVELS,
        ).report
    finally:
        del converter.to_torch
    assert not report.passed
    assert "weights: " in report.first_failure and "bias" in report.first_failure


@pytest.fixture(autouse=True)
def _quiet_keras_names():
    """Keras numbers layer names per process; each example builds new ones."""
    import keras

    keras.backend.clear_session()
    yield
