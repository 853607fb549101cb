"""Keras on the jax and torch backends: the same model as native PyTorch, and the
backend-specific pieces (configure, synchronize) behind one function each.

Keras fixes its backend at import, and this test session runs Keras on TensorFlow, so
each other backend is checked in a subprocess with KERAS_BACKEND set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from unittest import mock

import pytest

import keras_impl
import pytorch_impl
from keras_impl import runtime
from keras_impl.backends import jax as jax_backend
from tests.conftest import ROOT

# Builds the MLP and the CNN on this backend, checks Keras's own initial weights,
# round-trips weights, checks forward and gradients against native torch on 32 real test
# images and trains both through the study path; prints one JSON line.
CHECK_BACKEND = """
import json
import torch._dynamo  # before TensorFlow: see compare/parity_levels.py
from compare.data import split
from compare.parity import built, levels, training
from compare.parity import suite as parity
from compare.spec import catalog
from compare.spec import studies

from compare.errors import UserError
from compare.spec.schema import ParitySpec
import keras_impl as K

spec = ParitySpec(batch_size=32)
runtime = K.configure(1, spec.seed, "cpu")
try:
    K.configure(1, spec.seed, "gpu")
    gpu_error = None
except UserError as error:
    gpu_error = str(error)
out = {"runtime": runtime, "gpu_error": gpu_error, "models": {}}
for name in ("mlp", "cnn"):
    experiment = studies.apply_profile(catalog.MODELS[name], "quick")
    parity.configure(1, spec.seed)
    shared = split.load_shared(experiment.data)
    x, y = shared.x_test[: spec.batch_size], shared.y_test[: spec.batch_size]
    aligned, _ = parity.for_lockstep(experiment)
    checks = [built.check_init(experiment, spec)]
    torch_model, keras_model = levels.build_pair(experiment)
    weights = levels.T.get_weights(torch_model)
    checks += [
        levels.check_weights(experiment),
        levels.check_forward(torch_model, keras_model, x, spec),
        levels.check_gradients(aligned, weights, x, y, spec),
        training.check_study_path(aligned, weights, spec, "tuned"),
    ]
    out["models"][name] = {c.name: [c.passed, c.max_abs_diff] for c in checks}
print(json.dumps(out))
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_keras_on_backend_matches_native_torch(backend):
    done = subprocess.run(
        [sys.executable, "-c", CHECK_BACKEND],
        cwd=ROOT,
        env={**os.environ, "KERAS_BACKEND": backend},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    runtime_record = report["runtime"]
    assert runtime_record["keras_backend"] == backend
    assert runtime_record["versions"][backend] == runtime_record["keras_backend_version"]
    assert runtime_record["threads"]["intra_op"] == 1
    if backend == "jax":
        assert jax_backend.JAX_SINGLE_THREAD_FLAGS in runtime_record["flags"]["XLA_FLAGS"]
    assert f"Keras ({backend} backend) sees no GPU" in report["gpu_error"]
    for name, checks in report["models"].items():
        assert checks["weights"] == [True, 0.0], name
        for level in ("forward", "gradients"):
            passed, max_abs_diff = checks[level]
            # Passed, and not vacuously: two float32 implementations differ by rounding.
            assert passed and 0 < max_abs_diff < 1e-5, (name, level, checks)
        assert checks["init"][0] and checks["study_path"][0], (name, checks)


@pytest.mark.parametrize(
    ("backend", "target"),
    [
        ("tensorflow", "tensorflow.test.experimental.sync_devices"),
        ("jax", "jax.block_until_ready"),
    ],
)
def test_synchronize_calls_the_backend_function(backend, target):
    with (
        mock.patch.object(runtime, "backend", return_value=backend),
        mock.patch(target) as waited,
    ):
        keras_impl.synchronize()
    waited.assert_called_once()


@pytest.mark.parametrize("impl", [keras_impl, pytorch_impl], ids=["keras-torch", "torch"])
def test_torch_synchronize_waits_for_cuda_only_once_started(impl):
    with (
        mock.patch.object(runtime, "backend", return_value="torch"),
        mock.patch("torch.cuda.synchronize") as waited,
    ):
        with mock.patch("torch.cuda.is_initialized", return_value=False):
            impl.synchronize()
        waited.assert_not_called()
        with mock.patch("torch.cuda.is_initialized", return_value=True):
            impl.synchronize()
        waited.assert_called_once()
