"""Injected porting bugs: parity must fail on each, at the level that names it.

Each bug is a realistic mistake in one side's code (the kinds reported in converter and
framework issue trackers), patched into the implementation the study runs, one at a
time. `python -m compare parity`'s own wiring (`suite.check_model`) runs the levels on
a small MLP with dropout; the unpatched tree passes the same levels (the control), so a
failure here is the bug's and no other.
"""

from __future__ import annotations

import dataclasses

import keras
import pytest
import torch
from torch.nn import functional

import keras_impl.model
import keras_impl.optimizers
import keras_impl.regression
import keras_impl.train
import pytorch_impl
import pytorch_impl.model
import pytorch_impl.optimizers
import pytorch_impl.regression
import pytorch_impl.train
from compare.parity import suite
from compare.spec import catalog, studies
from compare.spec.schema import ParitySpec

# Small, with every part the levels look at: two hidden layers, dropout, Adam.
SMALL = studies.apply_profile(
    dataclasses.replace(
        catalog.MODELS["mlp_dropout"],
        name="small",
        model=dataclasses.replace(catalog.MODELS["mlp_dropout"].model, hidden_sizes=(64, 32)),
    ),
    "quick",
)
SPEC = ParitySpec(batch_size=128, steps=10, checkpoints=(1, 10))
# The levels these bugs are caught by (lockstep, optimizer and data have their own tests).
LEVELS = ("init", "forward", "dropout", "training_mode", "gradients", "study_path")
LOADERS = {"torch": {"identical": True}, "keras": {"identical": True}}


def with_train(experiment, **changes):
    return dataclasses.replace(experiment, train=dataclasses.replace(experiment.train, **changes))


def run_levels(experiment=SMALL, levels=LEVELS) -> dict:
    return suite.check_model(experiment, SPEC, LOADERS, threads=1, levels=levels)


# --- the bugs: (name, level that must fail, experiment, patch) -----------------------


def keras_bias_zeros(monkeypatch):
    # Keras's own default bias initialiser instead of the spec's U(+-1/sqrt(fan_in)).
    real = keras_impl.model.dense

    def dense(in_features, out_features, model_spec):
        layer = real(in_features, out_features, model_spec)
        layer.bias_initializer = keras.initializers.Zeros()
        return layer

    monkeypatch.setattr(keras_impl.model, "dense", dense)


def torch_kernel_glorot(monkeypatch):
    # xavier_uniform_ where the spec says U(+-1/sqrt(fan_in)).
    real = pytorch_impl.model._initialize

    def initialize(tensor, kind, fan_in):
        if kind == "uniform_fan_in" and tensor.dim() == 2:
            return torch.nn.init.xavier_uniform_(tensor)
        return real(tensor, kind, fan_in)

    monkeypatch.setattr(pytorch_impl.model, "_initialize", initialize)


def keras_dropout_keep_rate(monkeypatch):
    # Dropout(1 - rate): torch's "p" read as Keras's keep probability.
    real = keras.layers.Dropout
    monkeypatch.setattr(keras.layers, "Dropout", lambda rate, **kw: real(1 - rate, **kw))


def keras_dropout_rate_off(monkeypatch):
    # A rate 10 % off (0.22 for 0.2).
    real = keras.layers.Dropout
    monkeypatch.setattr(keras.layers, "Dropout", lambda rate, **kw: real(rate * 1.1, **kw))


def torch_dropout_unscaled(monkeypatch):
    # Units dropped, survivors not scaled by 1 / (1 - p).
    class Unscaled(torch.nn.Dropout):
        def forward(self, x):
            if not self.training:
                return x
            return x * (torch.rand_like(x) >= self.p)

    monkeypatch.setattr(torch.nn, "Dropout", Unscaled)


def keras_dropout_missing(monkeypatch):
    # The dropout layer left out of the port.
    monkeypatch.setattr(keras.layers, "Dropout", lambda rate, **kw: keras.layers.Identity())


def torch_label_smoothing(monkeypatch):
    real = pytorch_impl.train.loss_fn

    def loss_fn(logits, labels, loss="cross_entropy"):
        if loss == "cross_entropy":
            return functional.cross_entropy(logits, labels, label_smoothing=0.1)
        return real(logits, labels, loss)

    monkeypatch.setattr(pytorch_impl.train, "loss_fn", loss_fn)


def keras_softmax_before_logits_loss(monkeypatch):
    # Probabilities (a hand-written softmax) fed to a loss told it gets logits. Not
    # keras.activations.softmax: on TensorFlow it tags its output with its logits and the
    # loss silently takes those (keras.src.backend.tensorflow.nn._get_logits), so there
    # that port computes the right function and parity rightly passes it.
    def loss_fn(loss="cross_entropy"):
        scce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

        def softmax_then_loss(y, logits):
            exp = keras.ops.exp(logits - keras.ops.max(logits, axis=-1, keepdims=True))
            return scce(y, exp / keras.ops.sum(exp, axis=-1, keepdims=True))

        return softmax_then_loss

    monkeypatch.setattr(keras_impl.train, "loss_fn", loss_fn)


def keras_cce_on_logits(monkeypatch):
    # softmax_categorical_crossentropy ported without its softmax: CCE on raw logits.
    monkeypatch.setattr(
        keras_impl.train,
        "_softmax_categorical_crossentropy",
        lambda one_hot, logits: keras.losses.categorical_crossentropy(one_hot, logits),
    )


def keras_epoch_ignores_batch_size(monkeypatch):
    # The epoch path batches at Keras's default 32, not the spec's batch size.
    real = keras_impl.train._tf_dataset
    monkeypatch.setattr(
        keras_impl.train, "_tf_dataset", lambda x, y, batch_size, order: real(x, y, 32, order)
    )


def keras_epoch_drops_last_batch(monkeypatch):
    # The epoch's last, partial batch dropped (drop_remainder=True).
    import tensorflow as tf

    def dataset(inputs, targets, batch_size, order):
        if order is not None:
            index = tf.constant(order)
            inputs, targets = tf.gather(inputs, index), tf.gather(targets, index)
        slices = tf.data.Dataset.from_tensor_slices((inputs, targets))
        return slices.batch(batch_size, drop_remainder=True)

    monkeypatch.setattr(keras_impl.train, "_tf_dataset", dataset)


def torch_epoch_ignores_order(monkeypatch):
    # The epoch path walks the rows in place, not in the runner's shuffled order.
    real = pytorch_impl.train._index_batches
    monkeypatch.setattr(
        pytorch_impl.train,
        "_index_batches",
        lambda x, y, batch_size, order: real(x, y, batch_size, None),
    )


def torch_eval_in_training_mode(monkeypatch):
    # predict without model.eval(): dropout stays on at evaluation.
    def predict(model, x, batch_size):
        model.train()
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    monkeypatch.setattr(pytorch_impl, "predict", predict)
    monkeypatch.setattr(pytorch_impl.train, "predict", predict)


def optimizer_bug(framework, spec=lambda t: t, built=lambda o: o):
    """A bug in one side's optimizer factory: it reads the spec wrong (`spec`) or
    changes what it built (`built`); patched where the Trainer and the stock-optimizer
    level both take it from, as a bug in the source would be."""

    def inject(monkeypatch):
        if framework == "torch":
            real = pytorch_impl.optimizers.make_optimizer

            def factory(parameters, train_spec, mode="tuned"):
                return built(real(parameters, spec(train_spec), mode))

            modules = (pytorch_impl.optimizers, pytorch_impl.train)
        else:
            real = keras_impl.optimizers.make_optimizer

            def factory(train_spec):
                return built(real(spec(train_spec)))

            modules = (keras_impl.optimizers, keras_impl.train)
        for module in modules:
            monkeypatch.setattr(module, "make_optimizer", factory)

    return inject


def torch_group(**options):
    def change(optimizer):
        optimizer.param_groups[0].update(options)
        return optimizer

    return change


def keras_late_schedule(optimizer):
    # The learning rate drops 10x after 1,000 steps: only a long enough horizon sees it.
    rate = float(optimizer.learning_rate)
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([1_000], [rate, rate / 10])
    return type(optimizer).from_config({**optimizer.get_config(), "learning_rate": schedule})


def keras_regression_mean_loss(monkeypatch):
    # MSELoss(reduction="sum") ported as Keras's default mean.
    monkeypatch.setattr(
        keras_impl.regression,
        "sum_squared_error",
        lambda prediction, target: keras.ops.mean(keras.ops.square(prediction - target)),
    )


def torch_regression_relu_dropped(monkeypatch):
    # The hidden activation left out of the torch port (a linear net).
    monkeypatch.setattr(pytorch_impl.regression, "ACTIVATIONS", {"relu": torch.nn.Identity})


SCE = with_train(SMALL, loss="softmax_categorical_crossentropy")
# A combination the spec allows that no built-in model has: RMSprop with momentum (Keras
# runs the aligned RMSpropTorchFormula in lockstep), softmax + categorical cross-entropy,
# tanh and dropout.
RMSPROP = dataclasses.replace(
    with_train(
        SMALL,
        optimizer="rmsprop",
        learning_rate=0.001,
        momentum=0.9,
        epsilon=1e-7,
        loss="softmax_categorical_crossentropy",
    ),
    model=dataclasses.replace(SMALL.model, activation="tanh", dropout_rate=0.3),
)
TWO_LAYER = catalog.MODELS["two_layer_net"]
DYNAMIC = catalog.MODELS["dynamic_net"]
# Horizons: the quick profile's run of SMALL is a few dozen steps; LONG runs 2,400.
LONG = with_train(SMALL, epochs=150)
NESTEROV = with_train(SMALL, optimizer="sgd", learning_rate=0.05, momentum=0.9, nesterov=True)
MOMENTUM = with_train(SMALL, optimizer="sgd", learning_rate=0.05, momentum=0.9)
BUGS = [
    ("keras_bias_zeros", "init", SMALL, keras_bias_zeros),
    ("torch_kernel_glorot", "init", SMALL, torch_kernel_glorot),
    ("keras_dropout_keep_rate", "dropout", SMALL, keras_dropout_keep_rate),
    ("keras_dropout_rate_off", "dropout", SMALL, keras_dropout_rate_off),
    ("torch_dropout_unscaled", "dropout", SMALL, torch_dropout_unscaled),
    ("keras_dropout_missing", "dropout", SMALL, keras_dropout_missing),
    ("torch_label_smoothing", "gradients", SMALL, torch_label_smoothing),
    ("keras_softmax_before_logits_loss", "gradients", SMALL, keras_softmax_before_logits_loss),
    ("keras_cce_on_logits", "gradients", SCE, keras_cce_on_logits),
    ("keras_epoch_ignores_batch_size", "study_path", SMALL, keras_epoch_ignores_batch_size),
    ("torch_epoch_ignores_order", "study_path", SMALL, torch_epoch_ignores_order),
    ("keras_epoch_drops_last_batch", "study_path", SMALL, keras_epoch_drops_last_batch),
    ("torch_eval_in_training_mode", "forward", SMALL, torch_eval_in_training_mode),
    (
        "keras_adam_swapped_for_rmsprop",
        "stock_optimizer",
        SMALL,
        optimizer_bug("keras", spec=lambda t: dataclasses.replace(t, optimizer="rmsprop")),
    ),
    (
        "torch_learning_rate_10_percent_high",
        "stock_optimizer",
        SMALL,
        optimizer_bug(
            "torch", spec=lambda t: dataclasses.replace(t, learning_rate=t.learning_rate * 1.1)
        ),
    ),
    (
        "torch_beta_2_10_percent_low",
        "stock_optimizer",
        SMALL,
        optimizer_bug("torch", spec=lambda t: dataclasses.replace(t, beta_2=t.beta_2 * 0.9)),
    ),
    (
        "torch_weight_decay",
        "stock_optimizer",
        SMALL,
        optimizer_bug("torch", built=torch_group(weight_decay=1e-4)),
    ),
    (
        "keras_late_schedule",
        "stock_optimizer",
        LONG,
        optimizer_bug("keras", built=keras_late_schedule),
    ),
    (
        "keras_nesterov_dropped",
        "stock_optimizer",
        NESTEROV,
        optimizer_bug("keras", spec=lambda t: dataclasses.replace(t, nesterov=False)),
    ),
    ("keras_regression_mean_loss", "study_path", TWO_LAYER, keras_regression_mean_loss),
    ("torch_regression_relu_dropped", "forward", DYNAMIC, torch_regression_relu_dropped),
    (
        "torch_regression_momentum_dropped",
        "stock_optimizer",
        DYNAMIC,
        optimizer_bug("torch", spec=lambda t: dataclasses.replace(t, momentum=0.0)),
    ),
    (
        "torch_dampening",
        "stock_optimizer",
        MOMENTUM,
        optimizer_bug("torch", built=torch_group(dampening=0.1)),
    ),
]


@pytest.mark.parametrize(
    ("experiment", "levels"),
    [
        (SMALL, (*LEVELS, "stock_optimizer")),
        (SCE, LEVELS),
        (LONG, ("stock_optimizer",)),
        (NESTEROV, ("stock_optimizer", "study_path")),
        (MOMENTUM, ("stock_optimizer",)),
        (RMSPROP, (*LEVELS, "optimizer", "stock_optimizer", "lockstep")),
        (TWO_LAYER, ("structure", "weights", "init", "forward", "stock_optimizer", "study_path")),
        (DYNAMIC, ("structure", "weights", "init", "forward", "stock_optimizer", "study_path")),
    ],
    ids=[
        "small",
        "softmax_cce",
        "long",
        "nesterov",
        "momentum",
        "rmsprop_momentum",
        "two_layer_net",
        "dynamic_net",
    ],
)
def test_the_unpatched_tree_passes(experiment, levels):
    result = run_levels(experiment, levels)
    failed = {c["name"]: result["details"][c["name"]] for c in result["checks"] if not c["passed"]}
    assert result["passed"], failed


@pytest.mark.parametrize(
    ("level", "experiment", "inject"),
    [bug[1:] for bug in BUGS],
    ids=[bug[0] for bug in BUGS],
)
def test_parity_fails_on_an_injected_bug_at_its_level(level, experiment, inject, monkeypatch):
    inject(monkeypatch)
    result = run_levels(experiment, levels=(level,))
    (check,) = result["checks"]
    assert check["name"] == level and not check["passed"], result["details"]
    assert not result["passed"]
    if level != "forward":
        # The level names where the two part (the forward level reports its gap).
        assert result["details"][level]["first_failure"], result["details"][level]
