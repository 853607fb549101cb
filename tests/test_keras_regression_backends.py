"""The regression nets on every Keras backend: per-step losses as native PyTorch's.

keras_impl.regression is written on keras.ops and takes its gradients from the
backend's `value_and_gradients` (keras_impl.backends), so each net trains on tensorflow,
jax and torch. From the shared start of compare.run.regression (data, initial weights,
depths), it must follow native PyTorch step by step, and the NumPy reference where there
is one. A process holds one Keras backend, so each backend trains in a subprocess with
KERAS_BACKEND set.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

from compare.run import regression
from compare.spec import catalog
from pytorch_impl import regression as torch_regression

BACKENDS = ("tensorflow", "jax", "torch")
NETS = ("two_layer_net", "two_layer_net_custom_relu", "dynamic_net")
# dynamic_net's first 40 depths (seed 0) hold each of 0..3, and 0 eight times: a
# momentum update of the middle layer where it got no gradient would show.
STEPS, SEED = 40, 0


def train(impl, name: str, steps: int, seed: int) -> list[float]:
    """Per-step losses of `impl` (a regression module) on the net's first `steps` steps,
    taken as the run loop takes them. Self-contained: the subprocesses run its source."""
    import dataclasses

    from compare.run import regression
    from compare.spec import catalog

    experiment = catalog.MODELS[name]
    train_spec = dataclasses.replace(experiment.train, epochs=steps)
    experiment = dataclasses.replace(experiment, train=train_spec)
    x, y = regression.make_data(experiment.data, seed)
    model = impl.build_model(experiment.model, x.shape[1], y.shape[1])
    impl.set_weights(model, regression.initial_weights(experiment, seed))
    trainer = impl.Trainer(model, experiment.train, device="cpu")
    return [trainer.step(x, y, depth) for depth in regression.depth_sequence(experiment, seed)]


# Prints {net: per-step losses} of Keras on the backend KERAS_BACKEND names.
ON_BACKEND = f"""
import json
from keras_impl import regression as keras_regression
{inspect.getsource(train)}
print(json.dumps({{name: train(keras_regression, name, {STEPS}, {SEED}) for name in {NETS!r}}}))
"""


@pytest.fixture(scope="module")
def keras_runs() -> dict[str, tuple[int, str, str]]:
    """{backend: (return code, stdout, stderr)} of ON_BACKEND. The three run at once:
    each spends most of its time importing, on one core."""
    processes = {
        backend: subprocess.Popen(
            [sys.executable, "-c", ON_BACKEND],
            cwd=ROOT,
            env={**os.environ, "KERAS_BACKEND": backend},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for backend in BACKENDS
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


@pytest.fixture(scope="module")
def references() -> dict[str, list]:
    """{net: [native PyTorch's per-step losses, the NumPy reference's or None]}."""
    references = {}
    for name in NETS:
        experiment = catalog.MODELS[name]
        experiment = dataclasses.replace(
            experiment, train=dataclasses.replace(experiment.train, epochs=STEPS)
        )
        references[name] = [
            train(torch_regression, name, STEPS, SEED),
            regression.numpy_reference(experiment, SEED),
        ]
    return references


@pytest.mark.parametrize("backend", BACKENDS)
def test_keras_regression_nets_follow_torch_on_every_backend(backend, keras_runs, references):
    returncode, stdout, stderr = keras_runs[backend]
    assert returncode == 0, stderr[-3000:]
    keras_losses = json.loads(stdout.strip().splitlines()[-1])
    for name, (torch_losses, numpy_losses) in references.items():
        for against, losses in (("torch", torch_losses), ("numpy", numpy_losses)):
            if losses is None:
                continue  # no NumPy reference implements this net
            check = regression.compare_losses(keras_losses[name], losses)
            assert len(keras_losses[name]) == STEPS and check["compared_steps"] == STEPS, name
            assert check["agrees"], f"{name} on {backend} against {against}: {check}"
