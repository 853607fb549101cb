"""pytest plugin (entry point `pytest11`: keras_vs_pytorch): after `pip install` of this
package, every test suite has these fixtures, with no conftest code.

    def test_my_port(assert_same_model):
        assert_same_model(MyTorchNet(), my_keras_net(), x, y=y, loss="cross_entropy",
                          optimizers=Optimizers(...))

It imports nothing when pytest starts: the fixtures load the engine, and the engine
its frameworks, when a test asks for one. On a machine with no NVIDIA device it makes
triton unimportable at start (`compare.pair.frameworks.guard_import_order`, reading two
device files), so a suite that imports Keras before torchvision or torch's first
optimizer does not crash (triton loaded after TensorFlow does).

Stage: pair.
"""

from __future__ import annotations

import pytest


def pytest_configure(config):
    from compare.pair import frameworks  # no framework: os and sys only

    frameworks.guard_import_order()


@pytest.fixture
def assert_same_model():
    """assert_same_model(torch_model, keras_model, inputs, y=None, loss=None,
    optimizers=None, *, keras_inputs=None, input_names=None, output=None,
    mapping_names=None, weights="copy", spec=None, levels=...) -> ParityReport.

    Checks structure, weights, forward (layer by layer) and, given y, a loss and
    `Optimizers(torch=..., keras=...)`, gradients, optimizer steps and lockstep training
    (BatchNorm statistics included). Fails the test with an AssertionError giving the
    first failure in full (the level, the layer pair, by how much, the setting that
    differs), then a line per level. `inputs` are in torch's layout: an array, a tuple
    or a dict of keyword inputs.
    """
    from compare.pair import api, frameworks

    frameworks.prepare()
    return api.assert_same_model


@pytest.fixture
def parity_pair():
    """The `compare.pair` module: check_pair (a report, no assertion), Optimizers, Loss,
    PairSpec, converter/Converter/Setting (the extension point), assert_same_model."""
    from compare import pair
    from compare.pair import frameworks

    frameworks.prepare()
    return pair
