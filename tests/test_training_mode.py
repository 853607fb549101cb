"""The training_mode level's probes on batch norm, the layer the study's catalog only
has frozen (the transfer model's features): trainable batch norm must use the batch's
statistics in training, frozen batch norm its running statistics, and neither in
evaluation. Each framework's probe reads what its layer's own call decides. And the
injected bugs only the training_mode level catches, run as `tests/test_parity_bugs.py`
runs its own (whose control, the unpatched tree, includes this level)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch
from test_parity_bugs import SMALL, run_levels, torch_eval_in_training_mode

import keras_impl
import keras_impl.train
import pytorch_impl
import pytorch_impl.train
from compare.parity.training_mode import side_problems

X = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)


def _torch_phases(net, keep_frozen_in_eval: bool):
    with pytorch_impl.mode_probe(net) as (layers, calls):
        net.train()
        if keep_frozen_in_eval:
            net[1].eval()
        net(torch.from_numpy(X))
        trained = list(calls)
        net.eval()
        net(torch.from_numpy(X))
    return layers, [
        ("training epoch 1", True, trained),
        ("evaluation", False, calls[len(trained) :]),
    ]


def test_a_frozen_torch_batch_norm_in_training_mode_fails_and_kept_in_eval_passes():
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4), torch.nn.Dropout(0.5))
    for parameter in net[1].parameters():
        parameter.requires_grad = False
    assert side_problems(*_torch_phases(net, keep_frozen_in_eval=False)) == [
        "1 (BatchNorm1d) ran active while its Trainer trained (training epoch 1)"
    ]
    assert side_problems(*_torch_phases(net, keep_frozen_in_eval=True)) == []
    net[1].requires_grad_(True)
    assert side_problems(*_torch_phases(net, keep_frozen_in_eval=False)) == []


def test_keras_batch_norm_follows_training_and_trainable():
    norm = keras.layers.BatchNormalization(name="norm")
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(4), norm, keras.layers.Dropout(0.5, name="drop")]
    )
    for trainable in (True, False):
        norm.trainable = trainable
        with keras_impl.mode_probe(model) as (layers, calls):
            model(X, training=True)
            trained = list(calls)
            model(X, training=False)
        phases = [("training epoch 1", True, trained), ("evaluation", False, calls[len(trained) :])]
        assert [c["active"] for c in trained] == [trainable, True]
        assert side_problems(layers, phases) == []
    # The probe is gone afterwards: the layer's own call again.
    assert "call" not in norm.__dict__
    norm.trainable = True
    with keras_impl.mode_probe(model) as (layers, calls):
        model(X, training=False)
    assert side_problems(
        layers, [("training epoch 1", True, calls), ("evaluation", False, [])]
    ) == [
        "norm (BatchNormalization) ran inactive while its Trainer trained (training epoch 1)",
        "norm (BatchNormalization) was never called in the worker's evaluation (bypassed)",
        "drop (Dropout) ran inactive while its Trainer trained (training epoch 1)",
        "drop (Dropout) was never called in the worker's evaluation (bypassed)",
    ]


# --- injected bugs: each fails training_mode, naming the layer ----------------------


def torch_train_mode_dropped(monkeypatch):
    # The epoch never calls model.train(): after the first evaluation (predict's
    # model.eval()) the model trains in eval mode, dropout off.
    real = pytorch_impl.train.Trainer._train_batches

    def train_batches(self, batches):
        object.__setattr__(self.model, "train", lambda mode=True: self.model)
        try:
            return real(self, batches)
        finally:
            object.__delattr__(self.model, "train")

    monkeypatch.setattr(pytorch_impl.train.Trainer, "_train_batches", train_batches)


def keras_fit_training_false(monkeypatch):
    # The model's call passes training=False down, whatever fit asks for.
    real = keras_impl.build_model

    def build_model(model_spec):
        model = real(model_spec)
        call = model.call

        def inference_only(inputs, training=None, mask=None, **kwargs):
            return call(inputs, training=False, mask=mask, **kwargs)

        object.__setattr__(model, "call", inference_only)
        return model

    monkeypatch.setattr(keras_impl, "build_model", build_model)


def keras_trainer_bypasses_dropout(monkeypatch):
    # The Trainer fits a copy of the layer stack without its dropout layers (the same
    # weights), so training never drops; evaluation goes through the whole model.
    real = keras_impl.train.Trainer.__init__

    def init(self, model, train_spec, mode="tuned", device="cpu"):
        kept = [layer for layer in model.layers if not isinstance(layer, keras.layers.Dropout)]
        real(self, keras.Sequential([keras.Input(model.input_shape[1:]), *kept]), train_spec, mode)

    monkeypatch.setattr(keras_impl.train.Trainer, "__init__", init)


TRAINING_MODE_BUGS = [
    ("torch_eval_in_training_mode", torch_eval_in_training_mode),
    ("torch_train_mode_dropped", torch_train_mode_dropped),
    ("keras_fit_training_false", keras_fit_training_false),
    ("keras_trainer_bypasses_dropout", keras_trainer_bypasses_dropout),
]


@pytest.mark.parametrize(
    "inject", [bug for _, bug in TRAINING_MODE_BUGS], ids=[name for name, _ in TRAINING_MODE_BUGS]
)
def test_training_mode_fails_on_an_injected_bug(inject, monkeypatch):
    inject(monkeypatch)
    result = run_levels(SMALL, levels=("training_mode",))
    (check,) = result["checks"]
    assert check["name"] == "training_mode" and not check["passed"], result["details"]
    assert not result["passed"]
    assert result["details"]["training_mode"]["first_failure"], result["details"]
