"""The training_mode level's probes on batch norm, the layer the study's catalog only
has frozen (the transfer model's features): trainable batch norm must use the batch's
statistics in training, frozen batch norm its running statistics, and neither in
evaluation. Each framework's probe reads what its layer's own call decides."""

from __future__ import annotations

import keras
import numpy as np
import torch

import keras_impl
import pytorch_impl
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
