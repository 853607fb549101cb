"""GPU code paths, checked on the CPU: the device rule, placement, hiding, GPU records.

No GPU is needed: what a GPU machine would report is mocked, and nothing allocates
CUDA memory.
"""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import types

import numpy as np
import pytest
import torch

import keras_impl
import pytorch_impl
from compare.errors import UserError
from compare.report import build as report
from compare.run import devices, plan, runner
from compare.spec import catalog, identity
from keras_impl import backends as keras_backends
from keras_impl import runtime as keras_runtime
from pytorch_impl import optimizers as torch_optimizers
from pytorch_impl import runtime as torch_runtime
from pytorch_impl import train as torch_train

# --- the device rule ----------------------------------------------------------------


@pytest.mark.parametrize("requested", ["gpu", "auto"])
def test_a_visible_gpu_is_used(requested):
    device, notice = identity.choose_device(requested, "PyTorch", gpu_visible=True)
    assert device == "gpu"
    assert notice == (
        "" if requested == "gpu" else "--device auto: PyTorch sees a GPU, so this run uses it"
    )


def test_gpu_without_a_visible_gpu_is_a_one_line_user_error():
    with pytest.raises(UserError) as error:
        identity.choose_device("gpu", "Keras (jax backend)", gpu_visible=False, hint="CPU jaxlib")
    message = str(error.value)
    assert "\n" not in message
    assert "Keras (jax backend) sees no GPU (CPU jaxlib)" in message
    assert "use --device cpu or auto" in message


def test_auto_without_a_visible_gpu_uses_the_cpu_and_says_so():
    assert identity.choose_device("auto", "PyTorch", gpu_visible=False) == (
        "cpu",
        "--device auto: PyTorch sees no GPU, so this run uses the CPU",
    )


def test_cpu_stays_on_the_cpu_when_a_gpu_is_visible():
    assert identity.choose_device("cpu", "PyTorch", gpu_visible=True) == ("cpu", "")


# --- what nvidia-smi adds to a GPU record -------------------------------------------


def _fake_nvidia_smi(monkeypatch, stdout: str | None):
    def run(command, **kwargs):
        if stdout is None:
            raise FileNotFoundError(command[0])
        return subprocess.CompletedProcess(command, 0, stdout=stdout, stderr="")

    monkeypatch.setattr(devices.subprocess, "run", run)


def test_gpu_record_takes_driver_and_missing_memory_from_nvidia_smi(monkeypatch):
    _fake_nvidia_smi(monkeypatch, "NVIDIA A, 1024, 550.1\nNVIDIA B, [N/A], 550.1\n")
    record = devices.gpu_record("NVIDIA A", None, "12.4", compute_capability="9.0")
    assert record == {
        "name": "NVIDIA A",
        "memory_total_mb": 1024.0,
        "driver_version": "550.1",
        "cuda_version": "12.4",
        "compute_capability": "9.0",
    }
    # The framework's own memory figure wins; an unknown one stays None.
    assert devices.gpu_record("NVIDIA A", 2048.0, None)["memory_total_mb"] == 2048.0
    assert devices.gpu_record("NVIDIA B", None, None)["memory_total_mb"] is None


def test_gpu_record_without_nvidia_smi_has_no_driver(monkeypatch):
    _fake_nvidia_smi(monkeypatch, None)
    record = devices.gpu_record("NVIDIA A", None, "12.4")
    assert record["driver_version"] is None and record["memory_total_mb"] is None


# --- PyTorch: placement follows the run's device ------------------------------------


@pytest.fixture
def torch_settings(monkeypatch):
    """configure() changes process-wide torch settings: this session keeps its own."""
    for name in (
        "manual_seed",
        "set_num_threads",
        "set_num_interop_threads",
        "use_deterministic_algorithms",
    ):
        monkeypatch.setattr(torch, name, lambda *args, **kwargs: None)
    # Flags held by torch's C++ side: monkeypatch cannot restore these, so saved here.
    flags = (
        (torch.backends.cudnn, "deterministic"),
        (torch.backends.cudnn, "allow_tf32"),
        (torch.backends.cuda.matmul, "allow_tf32"),
    )
    saved = [getattr(module, name) for module, name in flags]
    yield
    for (module, name), value in zip(flags, saved, strict=True):
        setattr(module, name, value)


@pytest.mark.parametrize("requested", ["gpu", "auto"])
def test_torch_runs_on_cuda_without_tf32_when_a_gpu_is_seen(monkeypatch, torch_settings, requested):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    settings = torch_runtime.configure(1, 0, requested)
    assert settings["device"] == "gpu"
    assert torch_runtime.torch_device(settings["device"]) == torch.device("cuda")
    assert settings["flags"]["tf32_matmul"] is False
    assert settings["flags"]["tf32_cudnn"] is False


def test_torch_cpu_run_leaves_gpu_settings_alone(monkeypatch, torch_settings):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cudnn_tf32 = torch.backends.cudnn.allow_tf32
    settings = torch_runtime.configure(1, 0, "cpu")
    assert settings["device"] == "cpu" and settings["device_notice"] == ""
    assert torch_runtime.torch_device(settings["device"]) == torch.device("cpu")
    assert settings["flags"]["tf32_cudnn"] == cudnn_tf32


def _tiny_mlp():
    spec = catalog.MODELS["mlp"]
    return dataclasses.replace(spec.model, hidden_sizes=(8,)), spec.train


def test_torch_trainer_on_the_cpu_is_the_same_computation_as_before(monkeypatch):
    """device "cpu" (the default) keeps the loop it replaced, bit for bit: batches
    sliced from the epoch's tensors, one step each, the loss summed on a float64
    tensor."""
    model_spec, train_spec = _tiny_mlp()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 784), dtype=np.float32)
    y = rng.integers(0, 10, 200)
    torch.manual_seed(0)
    model = pytorch_impl.build_model(model_spec)
    reference = copy.deepcopy(model)

    trainer = pytorch_impl.Trainer(model, train_spec, device="cpu")
    loss = trainer.train_epoch(x, y)

    optimizer = torch_optimizers.make_optimizer(reference.parameters(), train_spec)
    total = torch.zeros((), dtype=torch.float64)
    inputs, labels = torch.from_numpy(x), torch.from_numpy(y)
    for start in range(0, len(x), train_spec.batch_size):
        batch_x = inputs[start : start + train_spec.batch_size]
        batch_y = labels[start : start + train_spec.batch_size]
        step_loss = torch_train.loss_fn(reference(batch_x), batch_y, train_spec.loss)
        optimizer.zero_grad(set_to_none=True)
        step_loss.backward()
        optimizer.step()
        total += step_loss.detach() * len(batch_x)

    assert trainer.device == torch.device("cpu")
    assert loss == float(total) / len(x)
    for ours, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        assert ours.device.type == "cpu" and torch.equal(ours, theirs)
    with torch.inference_mode():
        expected = reference.eval()(inputs[:50]).numpy()
    logits = pytorch_impl.predict(model, x[:50], batch_size=50)
    assert isinstance(logits, np.ndarray) and np.array_equal(logits, expected)


def test_torch_trainer_for_a_gpu_run_moves_the_model_to_cuda(monkeypatch):
    model_spec, train_spec = _tiny_mlp()
    model = pytorch_impl.build_model(model_spec)
    moved_to = []

    def to(device):  # records the move instead of allocating CUDA memory
        moved_to.append(device)
        return model

    monkeypatch.setattr(model, "to", to)
    trainer = pytorch_impl.Trainer(model, train_spec, device="gpu")
    assert moved_to == [torch.device("cuda")] and trainer.device == torch.device("cuda")


def test_torch_gpu_info_is_none_on_the_cpu_and_describes_the_gpu_otherwise(monkeypatch):
    assert pytorch_impl.gpu_info("cpu") is None
    properties = types.SimpleNamespace(name="NVIDIA A", total_memory=80 * 2**30, major=9, minor=0)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: properties)
    monkeypatch.setattr(devices, "nvidia_smi", lambda: [{"driver_version": "550.1"}])
    record = devices.gpu_record(**pytorch_impl.gpu_info("gpu"))
    assert record["name"] == "NVIDIA A" and record["memory_total_mb"] == 80 * 1024
    assert record["driver_version"] == "550.1" and record["cuda_version"] == torch.version.cuda
    assert record["compute_capability"] == "9.0"


# --- Keras: a CPU run hides the GPU from the backend; a GPU run turns TF32 off ----------


def test_tensorflow_cpu_run_hides_the_gpus_tensorflow_lists(monkeypatch):
    import tensorflow as tf

    calls = []
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind: ["GPU:0"])
    monkeypatch.setattr(tf.config, "set_visible_devices", lambda *args: calls.append(args))
    hidden_by = keras_backends.module("tensorflow").hide_gpu()
    assert hidden_by == "tf.config.set_visible_devices([], 'GPU')"
    assert calls == [([], "GPU")]


def test_jax_cpu_run_starts_only_the_cpu_platform(monkeypatch):
    import jax
    from jax._src import xla_bridge

    updates = []
    monkeypatch.setattr(jax.config, "update", lambda *args: updates.append(args))
    monkeypatch.setattr(xla_bridge, "backends_are_initialized", lambda: False)
    assert keras_backends.module("jax").hide_gpu() == "jax_platforms=cpu"
    assert updates == [("jax_platforms", "cpu")]
    # Too late once JAX runs on the GPU: an error, not a silent GPU run.
    monkeypatch.setattr(xla_bridge, "backends_are_initialized", lambda: True)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    with pytest.raises(RuntimeError, match="JAX_PLATFORMS=cpu"):
        keras_backends.module("jax").hide_gpu()


def test_keras_on_torch_cpu_run_resets_the_device_keras_chose_at_import(monkeypatch):
    from keras.src.backend.torch import core

    monkeypatch.setattr(core, "DEFAULT_DEVICE", "cuda")
    assert "KERAS_TORCH_DEVICE=cpu" in keras_backends.module("torch").hide_gpu()
    assert core.DEFAULT_DEVICE == "cpu" and core.get_device() == "cpu"


@pytest.fixture
def fake_backend(monkeypatch):
    """keras_runtime.configure on a backend that sees a GPU, with every step recorded
    and no process-wide setting touched."""
    calls = []
    settings = {
        "library_version": "0",
        "gpu_visible": True,
        "gpu_hint": "",
        "threads": {},
        "flags": {},
        "deterministic": {},
    }
    fake = types.SimpleNamespace(
        hide_gpu=lambda: calls.append("hide") or "hid",
        configure=lambda *args: calls.append("configure") or settings,
        float32=lambda on_gpu: calls.append(("float32", on_gpu)) or {},
    )
    monkeypatch.setattr(keras_runtime, "backend", lambda: "fake")
    monkeypatch.setattr(keras_backends, "module", lambda name: fake)
    import keras

    monkeypatch.setattr(keras.utils, "set_random_seed", lambda seed: None)
    return calls


@pytest.mark.parametrize(
    ("requested", "device", "steps", "hidden_by"),
    [
        ("cpu", "cpu", ["hide", "configure", ("float32", False)], "hid"),
        ("auto", "gpu", ["configure", ("float32", True)], None),
        ("gpu", "gpu", ["configure", ("float32", True)], None),
    ],
)
def test_keras_configure_hides_the_gpu_first_for_a_cpu_run(
    fake_backend, requested, device, steps, hidden_by
):
    settings = keras_runtime.configure(1, 0, requested)
    assert settings["device"] == device and settings["gpu_hidden_by"] == hidden_by
    assert fake_backend == steps


def test_keras_gpu_runs_turn_tf32_off_on_every_backend(monkeypatch, torch_settings):
    import jax
    import tensorflow as tf

    calls = []
    monkeypatch.setattr(tf.config.experimental, "enable_tensor_float_32_execution", calls.append)
    monkeypatch.setattr(jax.config, "update", lambda *args: calls.append(args))
    for backend in keras_backends.NAMES:
        keras_backends.module(backend).float32(False)
    assert calls == []  # a CPU run changes nothing
    flags = {}
    for backend in keras_backends.NAMES:
        flags.update(keras_backends.module(backend).float32(True))
    assert calls == [False, ("jax_default_matmul_precision", "highest")]
    assert flags["tf32_matmul"] is False and flags["tf32_cudnn"] is False


def test_keras_gpu_info_is_none_on_the_cpu():
    assert keras_impl.gpu_info("cpu") is None


def test_keras_gpu_info_per_backend(monkeypatch):
    import jax
    import tensorflow as tf

    physical = types.SimpleNamespace(name="/physical_device:GPU:0")
    monkeypatch.setattr(tf.config, "get_visible_devices", lambda kind: [physical])
    monkeypatch.setattr(
        tf.config.experimental,
        "get_device_details",
        lambda gpu: {"device_name": "NVIDIA A", "compute_capability": (9, 0)},
    )
    monkeypatch.setattr(
        tf.sysconfig, "get_build_info", lambda: {"cuda_version": "12.5", "cudnn_version": "9"}
    )
    record = keras_backends.module("tensorflow").gpu_info()
    assert (record["name"], record["cuda_version"], record["compute_capability"]) == (
        "NVIDIA A",
        "12.5",
        "9.0",
    )
    gpu = types.SimpleNamespace(
        device_kind="NVIDIA A", client=types.SimpleNamespace(platform_version="cuda 12050")
    )
    monkeypatch.setattr(jax, "devices", lambda kind: [gpu])
    record = keras_backends.module("jax").gpu_info()
    assert (record["name"], record["cuda_version"]) == ("NVIDIA A", "cuda 12050")


# --- the runner's probe and the report ------------------------------------------------


def test_gpu_probe_asks_each_keras_backend(monkeypatch):
    probed = []
    monkeypatch.setattr(runner, "_probe_device", lambda *args: probed.append(args))
    options = plan.Options(device="gpu", keras_backends=("tensorflow", "jax"))
    runner.probe_devices(options)
    assert probed == [
        ("torch", None, "gpu"),
        ("keras", "tensorflow", "gpu"),
        ("keras", "jax", "gpu"),
    ]
    probed.clear()
    runner.probe_devices(dataclasses.replace(options, device="auto"))
    assert probed == []


def test_report_shows_the_gpu_of_each_implementation_that_used_one():
    gpu = {
        "name": "NVIDIA A",
        "memory_total_mb": 81920.0,
        "driver_version": "550.1",
        "cuda_version": "12.4",
        "compute_capability": "9.0",
    }
    runs = [
        {"framework": "torch", "mode": "tuned", "gpu": gpu},
        {"framework": "keras", "keras_backend": "tensorflow", "mode": "tuned", "gpu": None},
    ]
    assert report.gpu_rows(runs) == {
        "torch": "NVIDIA A; 81920 MiB; driver 550.1; CUDA 12.4; compute_capability 9.0"
    }
