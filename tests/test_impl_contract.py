"""Both implementations honour the same contract: build, count, get/set weights."""

from __future__ import annotations

import inspect
import pathlib

import numpy as np
import pytest

from compare.run import contract
from compare.spec import catalog

MLP = catalog.MODELS["mlp"]


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


# --- the contract written once (compare.run.contract), checked on both sides ----------


def _public_signature(function) -> list[str]:
    """Parameter names of a function or method, `self` left out."""
    return [name for name in inspect.signature(function).parameters if name != "self"]


def _satisfies(implemented, written) -> bool:
    """The written parameters, in order; anything after them must have a default (a
    framework-only option, e.g. torch's `device` for `training_batches`)."""
    names = _public_signature(implemented)
    wanted = _public_signature(written)
    parameters = inspect.signature(implemented).parameters.values()
    extra = [p for p in parameters if p.name != "self"][len(wanted) :]
    return names[: len(wanted)] == wanted and all(
        p.default is not inspect.Parameter.empty for p in extra
    )


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_each_implementation_satisfies_the_written_contract(framework):
    impl = contract.load(framework)
    assert isinstance(impl, contract.Implementation)
    assert isinstance(contract.load_regression(framework), contract.RegressionNets)
    for protocol, module in (
        (contract.Implementation, impl),
        (contract.RegressionNets, contract.load_regression(framework)),
    ):
        for name, member in vars(protocol).items():
            if name.startswith("_") or not callable(member) or isinstance(member, type):
                continue
            assert _satisfies(getattr(module, name), member), f"{module.__name__}.{name}"
    for name, member in vars(contract.Trainer).items():
        if callable(member) and (not name.startswith("_") or name == "__init__"):
            assert _satisfies(getattr(impl.Trainer, name), member), f"Trainer.{name}"


def test_both_implementations_mirror_each_other_module_for_module():
    """Same module names on both sides: a diff between them shows framework differences."""
    root = pathlib.Path(__file__).resolve().parent.parent
    modules = [
        sorted(p.name for p in (root / package).glob("*.py"))
        for package in ("pytorch_impl", "keras_impl")
    ]
    assert modules[0] == modules[1]
