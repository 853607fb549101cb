"""Both implementations honour the same contract: build, count, get/set weights."""

from __future__ import annotations

import numpy as np
import pytest

from compare import studies

MLP = studies.MODELS["mlp"]


@pytest.fixture(scope="module", params=["pytorch_impl", "keras_impl"])
def impl(request):
    module = pytest.importorskip(request.param)
    return module


def test_parameter_count_matches_the_architecture(impl):
    model = impl.build_model(MLP.model)
    assert impl.count_parameters(model) == 784 * 256 + 256 + 256 * 64 + 64 + 64 * 10 + 10


def test_weights_round_trip_exactly(impl):
    model = impl.build_model(MLP.model)
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(w.shape).astype(np.float32) for w in impl.get_weights(model)]
    impl.set_weights(model, weights)
    assert all(np.array_equal(a, b) for a, b in zip(weights, impl.get_weights(model), strict=True))


def test_canonical_shapes_and_init_bounds(impl):
    weights = impl.get_weights(impl.build_model(MLP.model))
    assert [w.shape for w in weights] == [(784, 256), (256,), (256, 64), (64,), (64, 10), (10,)]
    # uniform_fan_in: U(+-1/sqrt(fan_in)) for kernel and bias, on both sides.
    for kernel, bias in zip(weights[0::2], weights[1::2], strict=True):
        # float32 rounding can put a sample one ulp above the float64 bound.
        bound = np.float32(1 / np.sqrt(kernel.shape[0])) * (1 + 1e-6)
        assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.9 * bound
        assert np.abs(bias).max() <= bound
