"""The pair engine stands alone and loads fast: `import compare.pair` and the pytest
plugin import no framework (a suite that does not use the fixtures pays nothing for
them), the fixtures work in a user's suite with no conftest, whatever the order the
user imported torch and Keras in."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

FRAMEWORKS = ("torch", "keras", "tensorflow", "jax", "numpy")


def _imported_by(statement: str) -> list[str]:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; {statement}; "
            f"print(sorted(m for m in {FRAMEWORKS!r} if m in sys.modules))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return eval(done.stdout.strip())  # noqa: S307 - our own printed list


def test_importing_the_engine_or_its_plugin_loads_no_framework():
    assert _imported_by("import compare.pair") == []
    assert _imported_by("import compare.pair.pytest_plugin") == []
    assert _imported_by("from compare import pair; pair.__all__") == []


def test_this_suite_uses_the_plugin_fixture_too(assert_same_model):
    # The fixture comes from the installed package's pytest11 entry point, not a conftest.
    import keras
    import torch

    from compare.parity import zoo

    case = zoo.cases()["layernorm_mlp"]
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 20)).astype(np.float32), rng.integers(0, 3, 8)
    report = assert_same_model(
        case.torch(), case.keras(), x, y=y, loss="cross_entropy", optimizers=case.optimizers()
    )
    assert report.passed and report.first_failure is None
    torch_model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.LayerNorm(4))
    with pytest.raises(
        AssertionError, match=r"structure: torch 1 \(LayerNorm\) has no Keras counterpart"
    ):
        assert_same_model(
            torch_model, keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)]), x[:, :6]
        )


PLUGIN_TEST = """
import numpy as np, keras, torch
from compare.pair import Optimizers
from keras_impl.pairs.small import resnet_bn as keras_port
from pytorch_impl.pairs.small import resnet_bn

def test_my_port(assert_same_model, port=keras_port):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 1, 12, 12)).astype("float32"), rng.integers(0, 10, 16)
    sgd = Optimizers(lambda m: torch.optim.SGD(m.parameters(), lr=0.05),
                     lambda: keras.optimizers.SGD(0.05))
    assert_same_model(resnet_bn(), port(), x, y=y, loss="cross_entropy", optimizers=sgd)

def test_epsilon(assert_same_model):
    test_my_port(assert_same_model, lambda: keras_port(epsilon=1e-3))

def test_padding(assert_same_model):
    test_my_port(assert_same_model, lambda: keras_port(down_padding="same"))
"""


def test_the_pytest_plugin_needs_no_conftest(pytester):
    # A user's suite: one file, no conftest, no plugin named, Keras imported before
    # torch's first optimizer (the order that crashed when triton loaded after
    # TensorFlow); the installed package's pytest11 entry point gives it the fixture.
    pytester.makepyfile(test_user=PLUGIN_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "-p", "no:xdist")
    result.assert_outcomes(passed=1, failed=2)
    text = result.stdout.str()
    assert "structure: bn1 (BatchNorm2d) / bn1 (BatchNormalization): epsilon" in text
    assert "epsilon torch 1e-05 vs keras 0.001" in text
    assert "down (Conv2d) / down (Conv2D): padding torch [(1, 1), (1, 1)]" in text
