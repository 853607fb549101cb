"""A port that breaks a level fails that level with a one-line reason; it never ends
`python -m compare parity` in a traceback, and the levels after it still run.

One of each kind a port can provoke: shapes that do not fit (the Keras side built with
another output width), an op that raises inside one level only, and a regression net
that diverges on one side.
"""

from __future__ import annotations

import dataclasses

import pytest

import keras_impl.model
import keras_impl.optimizers
import keras_impl.regression
import pytorch_impl.train
from compare.parity import suite
from compare.spec import catalog, studies
from compare.spec.schema import ParitySpec

SMALL = studies.apply_profile(
    dataclasses.replace(
        catalog.MODELS["mlp"],
        name="small",
        model=dataclasses.replace(catalog.MODELS["mlp"].model, hidden_sizes=(32,)),
    ),
    "quick",
)
SPEC = ParitySpec(batch_size=64, steps=5, checkpoints=(1, 5))
LOADERS = {"torch": {"identical": True}, "keras": {"identical": True}}


def _run(experiment, levels):
    result = suite.check_model(experiment, SPEC, LOADERS, threads=1, levels=levels)
    return {c["name"]: (c["passed"], result["details"][c["name"]]) for c in result["checks"]}


def test_shapes_that_do_not_fit_fail_every_level_with_the_reason(monkeypatch):
    real = keras_impl.model.dense

    def dense(in_features, out_features, model_spec):
        return real(
            in_features, out_features + 1 if out_features == 10 else out_features, model_spec
        )

    monkeypatch.setattr(keras_impl.model, "dense", dense)
    levels = ("structure", "forward", "gradients", "study_path")
    checks = _run(SMALL, levels)
    assert list(checks) == list(levels)
    assert checks["structure"][1]["first_failure"] == (
        "canonical shapes differ from dense2.kernel: torch (32, 10), keras (32, 11)"
    )
    for passed, detail in checks.values():
        assert not passed
        reason = detail["first_failure"]
        assert "\n" not in reason and "(32, 11)" in reason, reason


def test_a_level_that_raises_fails_alone_and_the_next_levels_run(monkeypatch):
    def refused(self, x, y):
        raise NotImplementedError("this op is not supported on this backend")

    monkeypatch.setattr(pytorch_impl.train.Trainer, "loss_and_gradients", refused)
    checks = _run(SMALL, ("forward", "gradients", "study_path"))
    assert checks["forward"][0] and checks["study_path"][0]
    passed, detail = checks["gradients"]
    assert not passed
    assert detail["first_failure"] == (
        "the level could not run: NotImplementedError: this op is not supported on this backend"
    )


@pytest.mark.parametrize("name", ["two_layer_net", "dynamic_net"])
def test_a_regression_net_that_diverges_on_one_side_fails_its_study_path(name, monkeypatch):
    real = keras_impl.optimizers.make_optimizer

    def too_fast(train_spec):
        return real(dataclasses.replace(train_spec, learning_rate=train_spec.learning_rate * 1e6))

    monkeypatch.setattr(keras_impl.regression, "make_optimizer", too_fast)
    experiment = catalog.MODELS[name]
    checks = _run(experiment, ("forward", "study_path"))
    assert checks["forward"][0]
    passed, detail = checks["study_path"]
    assert not passed
    assert "diverged" in detail["first_failure"].lower(), detail["first_failure"]
