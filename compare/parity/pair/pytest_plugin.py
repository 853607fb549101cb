"""pytest plugin (entry point `pytest11`: keras_vs_pytorch): after `pip install` of this
package, every test suite has these fixtures, with no conftest code.

    def test_my_port(assert_same_model):
        assert_same_model(MyTorchNet(), my_keras_net(), x, y=y, loss="cross_entropy",
                          optimizers=Optimizers(...))

At startup the plugin loads torch._dynamo (and with it torch and triton; about 3 s with
warm file caches, measured in the README): with torch
2.14 and TensorFlow 2.21, triton loaded after TensorFlow crashes the process (a
segmentation fault), and a test module that imports keras before its first torch
optimizer would load them in that order. Keras itself loads only when a test asks.

Stage: parity.
"""

from __future__ import annotations

import contextlib

import pytest


def pytest_configure(config):
    # Without torch installed the fixtures say so when used.
    with contextlib.suppress(ImportError):
        import torch._dynamo  # noqa: F401  (before TensorFlow: see the docstring)


@pytest.fixture
def assert_same_model():
    """assert_same_model(torch_model, keras_model, x, y=None, loss=None, optimizers=None,
    mapping_names=None, parity=None, levels=...) -> ParityReport.

    Checks structure, weights, forward (layer by layer) and, given y, a loss and
    `Optimizers(torch=..., keras=...)`, gradients, optimizer steps and lockstep training
    (BatchNorm statistics included). Fails the test with an AssertionError naming the
    first level and the layer (or step and tensor) where the two models part, by how
    much, and the layer settings whose defaults differ. x is in torch's layout.
    """
    from compare.parity.pair.api import assert_same_model as check

    return check


@pytest.fixture
def parity_pair():
    """The `compare.parity.pair` module: check_pair (a report, no assertion),
    Optimizers, Loss, ParityReport, assert_same_model."""
    from compare.parity.pair import api

    return api
