"""The pair engine's settings on ports the zoo does not hold, found by trying it as a user
would: padding written as a layer on one side and as the convolution's own on the other,
a pool after paired pad layers, activations given to Keras as callables (a lambda, a
layer), an upsampling's antialias, and reasons that are one clean line. Structure and
forward only: each test builds a few small layers."""

from __future__ import annotations

import numpy as np
import pytest

from compare import pair

LEVELS = ("structure", "weights", "forward")


def _frameworks():
    import keras
    import torch

    return torch, keras


def _x(*shape):
    return np.random.default_rng(0).normal(size=shape).astype(np.float32)


def _head(keras, h, classes=2):
    """Keras's map flattened in torch's (C, H, W) order, then a Dense."""
    layers = keras.layers
    return layers.Dense(classes)(layers.Flatten()(layers.Permute((3, 1, 2))(h)))


def _pad_port(torch_pad, torch_conv_padding, keras_zero, keras_padding, stride=1):
    torch, keras = _frameworks()
    nn, layers = torch.nn, keras.layers
    torch.manual_seed(0)
    modules = [nn.ZeroPad2d(torch_pad)] if torch_pad is not None else []
    modules.append(nn.Conv2d(2, 3, 3, stride=stride, padding=torch_conv_padding))
    body = nn.Sequential(*modules)
    out = body(torch.zeros(1, 2, 8, 8)).shape
    torch_model = nn.Sequential(body, nn.Flatten(), nn.Linear(int(np.prod(out[1:])), 2))
    inputs = keras.Input((8, 8, 2))
    h = layers.ZeroPadding2D(keras_zero)(inputs) if keras_zero is not None else inputs
    h = layers.Conv2D(3, 3, strides=stride, padding=keras_padding)(h)
    return torch_model, keras.Model(inputs, _head(keras, h)), _x(4, 2, 8, 8)


@pytest.mark.parametrize(
    ("torch_pad", "torch_conv_padding", "keras_zero", "keras_padding", "stride", "same"),
    [
        (1, 0, None, "same", 1, True),  # torch's pad layer is Keras's 'same'
        (None, 1, 1, "valid", 1, True),  # Keras's pad layer is torch's padding=1
        (1, 0, 1, "valid", 1, True),  # a pad layer on each side, paired
        (1, 1, 1, "same", 1, True),  # both pad twice
        ((0, 1, 0, 1), 0, None, "same", 2, True),  # 'same' at stride 2 pads after only
        (1, 0, None, "same", 2, False),  # pads both sides: the map shifts by a cell
    ],
)
def test_padding_is_counted_from_the_input_before_any_pad_layer(
    torch_pad, torch_conv_padding, keras_zero, keras_padding, stride, same
):
    torch_model, keras_model, x = _pad_port(
        torch_pad, torch_conv_padding, keras_zero, keras_padding, stride
    )
    report = pair.check_pair(torch_model, keras_model, x, levels=LEVELS)
    assert report.passed is same, report.message()
    if not same:
        assert report.first_failure.startswith("structure:")
        assert "padding" in report.first_failure


def test_a_pool_after_paired_pad_layers_is_not_padded_twice():
    torch, keras = _frameworks()
    nn, layers = torch.nn, keras.layers
    torch.manual_seed(0)
    torch_model = nn.Sequential(
        nn.Conv2d(2, 3, 1), nn.ZeroPad2d(1), nn.AvgPool2d(3, 2), nn.Flatten(), nn.Linear(48, 2)
    )
    inputs = keras.Input((8, 8, 2))
    h = layers.ZeroPadding2D(1)(layers.Conv2D(3, 1)(inputs))
    keras_model = keras.Model(inputs, _head(keras, layers.AveragePooling2D(3, 2)(h)))
    report = pair.check_pair(torch_model, keras_model, _x(4, 2, 8, 8), levels=LEVELS)
    assert report.passed, report.message()


def _activation_port(torch_activation, keras_activation):
    torch, keras = _frameworks()
    torch.manual_seed(0)
    torch_model = torch.nn.Sequential(
        torch.nn.Linear(6, 8), torch_activation, torch.nn.Linear(8, 3)
    )
    inputs = keras.Input((6,))
    h = keras.layers.Dense(8, activation=keras_activation)(inputs)
    return torch_model, keras.Model(inputs, keras.layers.Dense(3)(h)), 3 * _x(8, 6)


@pytest.mark.parametrize(
    ("which", "same", "named"),
    [
        ("gelu_tanh_lambda", True, None),
        ("leaky_lambda", True, None),
        ("gelu_exact_against_tanh_lambda", False, "4.73e-04"),
        ("leaky_slope_layer", False, "negative_slope=0.1"),
    ],
)
def test_a_keras_activation_known_only_as_a_callable_is_read_by_its_values(which, same, named):
    torch, keras = _frameworks()
    nn, ops = torch.nn, keras.ops
    torch_activation, keras_activation = {
        "gelu_tanh_lambda": (nn.GELU("tanh"), lambda z: ops.gelu(z, approximate=True)),
        "leaky_lambda": (nn.LeakyReLU(0.1), lambda z: ops.leaky_relu(z, 0.1)),
        "gelu_exact_against_tanh_lambda": (nn.GELU(), lambda z: ops.gelu(z, approximate=True)),
        "leaky_slope_layer": (nn.LeakyReLU(0.1), keras.layers.LeakyReLU(0.2)),
    }[which]
    report = pair.check_pair(*_activation_port(torch_activation, keras_activation), levels=LEVELS)
    assert report.passed is same, report.message()
    if not same:
        # Decided at structure, whatever the inputs show: the function is another.
        assert report.first_failure.startswith("structure:")
        assert "activation" in report.first_failure and named in report.first_failure


@pytest.mark.parametrize(
    ("mode", "align_corners", "keras_layer", "same"),
    [
        ("bilinear", False, "upsampling", True),
        ("nearest", None, "upsampling", True),
        ("bilinear", False, "resizing", True),
        ("bilinear", True, "upsampling", False),
    ],
)
def test_upsampling_compares_interpolation_and_sampling_not_an_absent_antialias(
    mode, align_corners, keras_layer, same
):
    torch, keras = _frameworks()
    nn, layers = torch.nn, keras.layers
    torch.manual_seed(0)
    torch_model = nn.Sequential(
        nn.Conv2d(2, 3, 1),
        nn.Upsample(scale_factor=2, mode=mode, align_corners=align_corners),
        nn.Conv2d(3, 2, 3),
        nn.Flatten(),
        nn.Linear(72, 2),
    )
    inputs = keras.Input((4, 4, 2))
    h = layers.Conv2D(3, 1)(inputs)
    interpolation = "nearest" if mode == "nearest" else "bilinear"
    if keras_layer == "resizing":
        h = layers.Resizing(8, 8, interpolation=interpolation)(h)
    else:
        h = layers.UpSampling2D(2, interpolation=interpolation)(h)
    keras_model = keras.Model(inputs, _head(keras, layers.Conv2D(2, 3)(h)))
    report = pair.check_pair(torch_model, keras_model, _x(4, 2, 4, 4), levels=LEVELS)
    assert report.passed is same, report.message()
    if not same:
        assert "sampling" in report.first_failure and "corners aligned" in report.first_failure


def test_a_keras_model_that_cannot_be_called_gives_a_clean_one_line_reason():
    torch, keras = _frameworks()
    torch.manual_seed(0)

    class Broken(keras.layers.Layer):
        def call(self, x):
            raise ValueError("this layer cannot take its input")

    keras_model = keras.Sequential([keras.layers.Dense(3), Broken()])
    report = pair.check_pair(torch.nn.Linear(6, 3), keras_model, _x(4, 6), levels=LEVELS)
    assert not report.passed
    assert "the Keras model cannot be called" in report.first_failure, report.first_failure
    # Keras decorates the texts of exceptions inside a layer call with colour codes.
    assert "\x1b[" not in report.message() and "\n" not in report.first_failure


def test_inputs_written_as_lists_an_empty_batch_and_swapped_models():
    torch, keras = _frameworks()
    torch.manual_seed(0)
    torch_model = torch.nn.Linear(6, 3)
    inputs = keras.Input((6,))
    keras_model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    x = _x(4, 6)
    # Nested lists of numbers are one array, as NumPy reads them.
    assert pair.check_pair(torch_model, keras_model, x.tolist(), levels=LEVELS).passed
    # No examples compare nothing: a failure, not a pass.
    empty = pair.check_pair(torch_model, keras_model, x[:0], levels=LEVELS)
    assert not empty.passed and "no examples" in empty.first_failure
    # Targets that do not match the inputs are the user's mistake, named before any level.
    short = pair.check_pair(torch_model, keras_model, x, y=np.zeros(3, int), loss="cross_entropy")
    assert not short.passed and short.first_failure == (
        "structure: y holds 3 examples, the inputs 4: give one target each"
    )
    with pytest.raises(TypeError, match="the torch module comes first"):
        pair.check_pair(keras_model, torch_model, x)
