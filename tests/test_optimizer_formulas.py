"""The stock optimizers, built as the study builds them, against their documented updates.

Each side's `optimizer_trajectory` runs the optimizer its `make_optimizer` builds on the
probe of compare.parity.formulas (gradients grouped by scale, 1e-8 to 1); the float32
trajectory must follow the float64 replay of that framework's documented update within
ParitySpec's stock_optimizer tolerances. Keras runs on this process's backend
(TensorFlow) and, in one subprocess each, on JAX and torch. Then each bug a factory can
make (the wrong optimizer, a hyperparameter off, weight decay or a schedule added, a
momentum term dropped) is injected by wrapping `make_optimizer`, and the comparison
must fail.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import subprocess
import sys

import keras
import pytest
from conftest import ROOT

from keras_impl import optimizers as keras_optimizers
from pytorch_impl import optimizers as torch_optimizers

STEPS, N_PER_SCALE, SEED = 2_000, 8, 0
# TrainSpec fields per configuration (the study's learning rates: SGD 0.003-0.5, Adam
# 0.003, RMSprop 1e-3).
CONFIGS = {
    "sgd": {"optimizer": "sgd", "learning_rate": 0.01},
    "sgd_momentum": {"optimizer": "sgd", "learning_rate": 0.01, "momentum": 0.9},
    "sgd_nesterov": {"optimizer": "sgd", "learning_rate": 0.01, "momentum": 0.9, "nesterov": True},
    "adam": {"optimizer": "adam", "learning_rate": 0.003},
    "rmsprop": {"optimizer": "rmsprop", "learning_rate": 0.001},
    "rmsprop_momentum": {"optimizer": "rmsprop", "learning_rate": 0.001, "momentum": 0.9},
}
# Keras's aligned optimizers, which re-implement torch's update.
KERAS_ALIGNED = {
    "adam_torch_formula": {**CONFIGS["adam"], "adam_formula": "torch"},
    "rmsprop_torch_formula": {**CONFIGS["rmsprop"], "rmsprop_formula": "torch"},
    "rmsprop_momentum_torch_formula": {**CONFIGS["rmsprop_momentum"], "rmsprop_formula": "torch"},
}
CONFIGS_OF = {"torch": CONFIGS, "keras": {**CONFIGS, **KERAS_ALIGNED}}
MODULES = {"torch": torch_optimizers, "keras": keras_optimizers}


def against_reference(
    framework: str, configs: dict, steps: int, n_per_scale: int, seed: int, against: str = ""
) -> dict:
    """{config name: compare_to_reference's result} for `framework`'s stock optimizer on
    the probe, against `against`'s documented update (default: its own).
    Self-contained: the backend subprocesses run its source."""
    import importlib

    from compare.parity import formulas
    from compare.spec.schema import ParitySpec, TrainSpec

    module = importlib.import_module(
        {"torch": "pytorch_impl.optimizers", "keras": "keras_impl.optimizers"}[framework]
    )
    parity = ParitySpec()
    gradients = formulas.probe_gradients(steps, n_per_scale, seed=seed)
    groups = formulas.probe_groups(n_per_scale)
    checkpoints = tuple(s for s in (1, 10, 100, 1_000, 10_000) if s < steps) + (steps,)
    results = {}
    for name, fields in configs.items():
        train_spec = TrainSpec(**fields)
        start = formulas.probe_start(n_per_scale, train_spec.learning_rate, seed=seed)
        stock = module.optimizer_trajectory(train_spec, "tuned", start, gradients, checkpoints)
        reference = formulas.reference_trajectory(
            against or framework, train_spec, start, gradients, checkpoints
        )
        results[name] = formulas.compare_to_reference(
            stock,
            reference,
            start,
            groups,
            parity.stock_optimizer_rtol,
            parity.stock_optimizer_atol,
        )
    return results


def _check(framework: str, fields: dict, against: str = "") -> dict:
    return against_reference(framework, {"one": fields}, STEPS, N_PER_SCALE, SEED, against)["one"]


# ---- the stock optimizers follow their documented updates -------------------------------


@pytest.mark.parametrize(
    "framework, name", [(f, name) for f, configs in CONFIGS_OF.items() for name in configs]
)
def test_stock_optimizer_follows_its_documented_update(framework, name):
    result = _check(framework, CONFIGS_OF[framework][name])
    assert result["passed"], f"{framework} {name}: {result['summary']}"
    # Not vacuously: float32 differs from the float64 replay by its rounding.
    assert result["max_abs_diff"] > 0, result["summary"]


@pytest.mark.parametrize("name", ["adam", "rmsprop", "rmsprop_momentum"])
def test_the_probe_tells_the_frameworks_updates_apart(name):
    """Keras's stock Adam and RMSprop fail against torch's update (epsilon's placement)."""
    result = _check("keras", CONFIGS[name], against="torch")
    assert not result["passed"], result["summary"]


def test_the_two_sgd_conventions_are_one_update():
    """torch's first momentum buffer is g, Keras's velocity starts at 0 (so is -lr g after
    one step): the same update, so Keras's SGD passes against torch's."""
    result = _check("keras", CONFIGS["sgd_nesterov"], against="torch")
    assert result["passed"], result["summary"]


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_the_longest_study_run_stays_on_its_update(framework):
    """Adam over 30 epochs of 860 steps (the study's longest run): float32 rounding does
    not accumulate past the tolerance (worst 0.05 x allowed, as after 2,000 steps)."""
    result = against_reference(framework, {"adam": CONFIGS["adam"]}, 25_800, N_PER_SCALE, SEED)
    assert result["adam"]["passed"], result["adam"]["summary"]


# On each other Keras backend, every configuration in one subprocess.
ON_BACKEND = f"""
import json
{inspect.getsource(against_reference)}
results = against_reference("keras", {CONFIGS_OF["keras"]!r}, {STEPS}, {N_PER_SCALE}, {SEED})
print(json.dumps({{n: [r["passed"], r["worst_ratio"], r["summary"]] for n, r in results.items()}}))
"""


@pytest.fixture(scope="module")
def other_backends() -> dict[str, tuple[int, str, str]]:
    """{backend: (return code, stdout, stderr)} of ON_BACKEND on jax and torch, run at once
    (each spends most of its time importing)."""
    processes = {
        backend: subprocess.Popen(
            [sys.executable, "-c", ON_BACKEND],
            cwd=ROOT,
            env={**os.environ, "KERAS_BACKEND": backend},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for backend in ("jax", "torch")
    }
    runs = {}
    for backend, process in processes.items():
        try:
            stdout, stderr = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        runs[backend] = (process.returncode, stdout, stderr)
    return runs


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_keras_stock_optimizers_follow_their_updates_on_every_backend(backend, other_backends):
    returncode, stdout, stderr = other_backends[backend]
    assert returncode == 0, stderr[-3000:]
    results = json.loads(stdout.strip().splitlines()[-1])
    assert set(results) == set(CONFIGS_OF["keras"])
    for name, (passed, _, summary) in results.items():
        assert passed, f"keras on {backend}, {name}: {summary}"


# ---- injected bugs: each makes the comparison fail ------------------------------------


def _spec_bug(**changes):
    """A factory reading the spec wrong: `changes` maps a field to its wrong value, a
    function of the spec."""

    def change(train_spec):
        values = {field: value(train_spec) for field, value in changes.items()}
        return dataclasses.replace(train_spec, **values)

    return change, None


def _torch_group_bug(**changes):
    """A torch factory setting a param_group option the spec does not ask for."""

    def change(optimizer):
        optimizer.param_groups[0].update(changes)
        return optimizer

    return None, change


def _keras_config_bug(**changes):
    """A Keras factory passing an argument the spec does not ask for."""

    def change(optimizer):
        values = {k: v(optimizer) if callable(v) else v for k, v in changes.items()}
        return type(optimizer).from_config({**optimizer.get_config(), **values})

    return None, change


def _late_schedule(optimizer):
    """Keras: the learning rate drops 10x after 1,000 steps."""
    learning_rate = float(optimizer.learning_rate)
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        [1_000], [learning_rate, learning_rate / 10]
    )


# bug: (the frameworks and base configurations it applies to, (how it changes the spec
# the factory is given, how it changes the optimizer the factory built)).
BUGS = {
    "adam_swapped_for_rmsprop": (
        ("torch", "keras"),
        ("adam",),
        _spec_bug(optimizer=lambda t: "rmsprop"),
    ),
    "adam_swapped_for_sgd": (("torch", "keras"), ("adam",), _spec_bug(optimizer=lambda t: "sgd")),
    "rmsprop_swapped_for_adam": (
        ("torch", "keras"),
        ("rmsprop",),
        _spec_bug(optimizer=lambda t: "adam"),
    ),
    "learning_rate_10_percent_high": (
        ("torch", "keras"),
        ("sgd", "adam", "rmsprop"),
        _spec_bug(learning_rate=lambda t: t.learning_rate * 1.1),
    ),
    "beta_1_10_percent_low": (
        ("torch", "keras"),
        ("adam",),
        _spec_bug(beta_1=lambda t: t.beta_1 * 0.9),
    ),
    "beta_2_10_percent_low": (
        ("torch", "keras"),
        ("adam",),
        _spec_bug(beta_2=lambda t: t.beta_2 * 0.9),
    ),
    "rho_10_percent_low": (("torch", "keras"), ("rmsprop",), _spec_bug(rho=lambda t: t.rho * 0.9)),
    "epsilon_10x": (
        ("torch", "keras"),
        ("adam", "rmsprop"),
        _spec_bug(epsilon=lambda t: t.epsilon * 10),
    ),
    "nesterov_dropped": (
        ("torch", "keras"),
        ("sgd_nesterov",),
        _spec_bug(nesterov=lambda t: False),
    ),
    "momentum_dropped": (
        ("torch", "keras"),
        ("sgd_momentum", "rmsprop_momentum"),
        _spec_bug(momentum=lambda t: 0.0),
    ),
    "torch_weight_decay": (
        ("torch",),
        ("sgd", "adam", "rmsprop"),
        _torch_group_bug(weight_decay=1e-4),
    ),
    "torch_dampening": (("torch",), ("sgd_momentum",), _torch_group_bug(dampening=0.1)),
    "keras_weight_decay": (
        ("keras",),
        ("sgd", "adam", "rmsprop"),
        _keras_config_bug(weight_decay=1e-4),
    ),
    # torch has none to inject: its schedules are separate objects the training loop steps.
    "keras_late_schedule": (
        ("keras",),
        ("sgd", "adam", "rmsprop"),
        _keras_config_bug(learning_rate=_late_schedule),
    ),
}
BUG_CASES = [
    (bug, framework, base)
    for bug, (frameworks, bases, _) in BUGS.items()
    for framework in frameworks
    for base in bases
]


def _inject(monkeypatch, framework: str, bug: str) -> None:
    """Wrap the module's make_optimizer (the one optimizer_trajectory calls) with `bug`."""
    module = MODULES[framework]
    factory = module.make_optimizer
    change_spec, change_optimizer = BUGS[bug][2]
    change_spec = change_spec or (lambda train_spec: train_spec)
    change_optimizer = change_optimizer or (lambda optimizer: optimizer)
    if framework == "torch":

        def buggy(parameters, train_spec, mode):
            return change_optimizer(factory(parameters, change_spec(train_spec), mode))
    else:

        def buggy(train_spec):
            return change_optimizer(factory(change_spec(train_spec)))

    monkeypatch.setattr(module, "make_optimizer", buggy)


@pytest.mark.parametrize("bug, framework, base", BUG_CASES)
def test_an_injected_bug_fails_the_comparison(monkeypatch, bug, framework, base):
    _inject(monkeypatch, framework, bug)
    result = _check(framework, CONFIGS[base])
    assert not result["passed"], f"{bug} on {framework} {base} went unnoticed: {result['summary']}"
