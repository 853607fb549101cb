"""Convolutional models: built from spec fields alike in both frameworks, weights
exchanged exactly through the canonical layout, and the two classic porting bugs caught.
"""

from __future__ import annotations

import json

import keras_traps
import numpy as np
import pytest
import torch
from conftest import run_cli

import keras_impl
import pytorch_impl
from compare.data import split
from compare.errors import UserError
from compare.spec import catalog, parse, studies
from compare.spec.validate import validate

# Forward-logit tolerance from parity-notes.md (float32, CPU).
RTOL = ATOL = 1e-5

# A conv -> flatten -> dense -> logits network written as a user's study file would:
# 28 -> 14 -> 7 with 16 channels, so the first dense layer sees a 16x7x7 map and the
# flatten-order conversion matters.
CONV_DENSE_TOML = """
name = "user cnn"
[[experiment]]
name = "conv_dense"
[experiment.data]
mean = 0.0
std = 1.0
[experiment.model]
architecture = "cnn"
conv_filters = [8, 16]
conv_kernel_size = 3
conv_stride = 2
conv_padding = 1
hidden_sizes = [32]
[experiment.train]
optimizer = "sgd"
learning_rate = 0.1
"""

# Hand counts: kernel k*k*in*out + bias out per conv; in*out + out per dense.
SEED_CNN_PARAMETERS = (9 * 1 * 16 + 16) + (9 * 16 * 16 + 16) + (9 * 16 * 10 + 10)
CONV_DENSE_PARAMETERS = (
    (9 * 1 * 8 + 8) + (9 * 8 * 16 + 16) + (16 * 7 * 7 * 32 + 32) + (32 * 10 + 10)
)


@pytest.fixture(scope="module")
def conv_dense(tmp_path_factory):
    path = tmp_path_factory.mktemp("study") / "user.toml"
    path.write_text(CONV_DENSE_TOML)
    (experiment,) = studies.load_study_file(path).experiments
    return validate(experiment)


@pytest.fixture(scope="module")
def experiments(conv_dense):
    return {
        "cnn": validate(catalog.MODELS["cnn"]),
        "cnn_adaptive": validate(catalog.MODELS["cnn_adaptive"]),
        "conv_dense": conv_dense,
    }


@pytest.fixture(scope="module")
def batch():
    """64 real Fashion-MNIST validation images, pixels in [0, 1] as the seed CNN sees them."""
    quick = studies.apply_profile(catalog.MODELS["cnn"], "quick")
    return split.load_shared(quick.data).x_val[:64]


def transplant(model_spec, build_keras=keras_impl.build_model):
    """A torch model and a Keras model holding the torch model's weights."""
    torch.manual_seed(0)
    torch_model = pytorch_impl.build_model(model_spec)
    keras_net = build_keras(model_spec)
    keras_impl.set_weights(keras_net, pytorch_impl.get_weights(torch_model))
    return torch_model, keras_net


def logits(torch_model, keras_net, x):
    torch_logits = pytorch_impl.predict(torch_model, x, batch_size=len(x))
    keras_logits = keras_impl.predict(keras_net, x, batch_size=len(x))
    return torch_logits, keras_logits


NAMES = ("cnn", "cnn_adaptive", "conv_dense")


@pytest.mark.parametrize("name", NAMES)
def test_parameter_counts_equal_the_hand_count(experiments, name):
    expected = CONV_DENSE_PARAMETERS if name == "conv_dense" else SEED_CNN_PARAMETERS
    model_spec = experiments[name].model
    assert pytorch_impl.count_parameters(pytorch_impl.build_model(model_spec)) == expected
    assert keras_impl.count_parameters(keras_impl.build_model(model_spec)) == expected


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_is_bitwise_exact_and_logits_agree(experiments, batch, name):
    model_spec = experiments[name].model
    torch_model, keras_net = transplant(model_spec)
    original = {k: v.clone() for k, v in torch_model.state_dict().items()}
    canonical = pytorch_impl.get_weights(torch_model)
    back = keras_impl.get_weights(keras_net)
    assert all(np.array_equal(a, b) for a, b in zip(canonical, back, strict=True))
    with torch.no_grad():
        for tensor in torch_model.parameters():
            tensor.zero_()
    pytorch_impl.set_weights(torch_model, back)
    restored = torch_model.state_dict()
    assert all(torch.equal(original[key], restored[key]) for key in original)

    torch_logits, keras_logits = logits(torch_model, keras_net, batch)
    assert torch_logits.shape == keras_logits.shape == (len(batch), 10)
    np.testing.assert_allclose(keras_logits, torch_logits, rtol=RTOL, atol=ATOL)


def test_canonical_layout_and_conv_init(experiments):
    model_spec = experiments["cnn"].model
    torch_model = pytorch_impl.build_model(model_spec)
    shapes = [(3, 3, 1, 16), (16,), (3, 3, 16, 16), (16,), (3, 3, 16, 10), (10,)]
    conv = torch_model[1].weight.detach().numpy()  # (out, in, kh, kw)
    canonical = pytorch_impl.get_weights(torch_model)
    assert canonical[0][2, 1, 0, 5] == conv[5, 0, 2, 1]
    for impl, model in (
        (pytorch_impl, torch_model),
        (keras_impl, keras_impl.build_model(model_spec)),
    ):
        weights = impl.get_weights(model)
        assert [w.shape for w in weights] == shapes
        # uniform_fan_in: U(+-1/sqrt(k*k*in)) for kernel and bias, as torch's default.
        for kernel, bias in zip(weights[0::2], weights[1::2], strict=True):
            bound = 1 / np.sqrt(np.prod(kernel.shape[:3]))
            assert 0.9 * bound < np.abs(kernel).max() <= bound
            assert np.abs(bias).max() <= bound


@pytest.mark.parametrize(
    ("name", "trap"),
    [
        ("cnn", "same_padding"),
        ("conv_dense", "same_padding"),
        ("conv_dense", "unpermuted_flatten"),
    ],
)
def test_the_classic_wrong_ports_do_not_agree(experiments, batch, name, trap):
    model_spec = experiments[name].model

    def build_trap(spec_):
        return keras_traps.build_trap_model(spec_, trap)

    torch_model, keras_net = transplant(model_spec, build_trap)
    torch_logits, keras_logits = logits(torch_model, keras_net, batch)
    difference = np.abs(keras_logits - torch_logits).max()
    # Measured: 1.2e-2 (cnn at init, logits up to 0.12) and 7e-2 / 1.5e-1 (conv_dense),
    # against ~1e-8 for the correct ports: far outside the parity tolerance.
    tolerance = ATOL + RTOL * np.abs(torch_logits).max()
    assert difference > 100 * tolerance and difference > 5e-3


def test_trap_builder_refuses_what_it_cannot_build(experiments):
    with pytest.raises(ValueError, match="unknown trap"):
        keras_traps.build_trap_model(experiments["cnn"].model, "nope")
    # The seed CNN pools to 1x1 before its logits: no flatten order to get wrong.
    with pytest.raises(ValueError, match="unpermuted_flatten"):
        keras_traps.build_trap_model(experiments["cnn"].model, "unpermuted_flatten")


CNN = catalog.MODELS["cnn"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.conv_filters=[]", "model.conv_filters must not be empty"),
        ("model.conv_filters=[16, 0, 10]", "model.conv_filters must be positive"),
        ("model.conv_kernel_size=0", "model.conv_kernel_size must be >= 1"),
        ("model.conv_stride=0", "model.conv_stride must be >= 1"),
        ("model.conv_padding=-1", "model.conv_padding must be >= 0"),
        ("model.pooling='max'", "model.pooling = 'max' is unknown"),
        ("model.pool_size=5", "model.pool_size = 5 is larger than the 4x4 feature map"),
        ("model.logits_from='flat'", "model.logits_from = 'flat' is unknown"),
        ("model.hidden_sizes=[32]", "model.hidden_sizes must be \\[\\] when"),
        ("model.conv_filters=[16, 16, 8]", "needs 10 features after pooling, got 8x1x1"),
        # Without padding: 28 -> 13 -> 6 -> 2 -> nothing.
        (
            "model.conv_padding=0;model.conv_filters=[8, 8, 8, 8]",
            "conv_filters\\[3\\]: .* no pixels",
        ),
        (
            "model.architecture='mlp';model.hidden_sizes=[64]",
            "apply only to model.architecture = 'cnn'",
        ),
        ("model.conv_padding=1.5", "model.conv_padding must be an integer"),
    ],
)
def test_bad_cnn_fields_are_rejected_by_name(override, message):
    with pytest.raises(UserError, match=message):
        validate(parse.apply_overrides(CNN, override.split(";")))


def test_cnn_runs_end_to_end_in_both_frameworks(tmp_path):
    out = tmp_path / "out"
    result = run_cli(
        "run",
        "--models",
        "cnn",
        "--profile",
        "quick",
        "--seeds",
        "1",
        "--out",
        str(out),
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    runs = {p.stem: json.loads(p.read_text()) for p in (out / "runs" / "cnn").glob("*.json")}
    assert set(runs) == {"torch-seed0", "keras-seed0"}
    for run in runs.values():
        assert run["status"] == "ok", run.get("error")
        assert run["parameter_count"] == SEED_CNN_PARAMETERS
        assert len(run["epochs"]) == 2 and np.isfinite(run["test_loss"])
