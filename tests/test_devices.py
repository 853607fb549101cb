"""GPU code paths, checked on the CPU: the device rule, placement, hiding, GPU records.

No GPU is needed: what a GPU machine would report is mocked, and nothing allocates
CUDA memory.
"""

from __future__ import annotations

import subprocess

import pytest

from compare import devices
from compare.errors import UserError

# --- the device rule ----------------------------------------------------------------


@pytest.mark.parametrize("requested", ["gpu", "auto"])
def test_a_visible_gpu_is_used(requested):
    device, notice = devices.resolve(requested, "PyTorch", gpu_visible=True)
    assert device == "gpu"
    assert notice == (
        "" if requested == "gpu" else "--device auto: PyTorch sees a GPU, so this run uses it"
    )


def test_gpu_without_a_visible_gpu_is_a_one_line_user_error():
    with pytest.raises(UserError) as error:
        devices.resolve("gpu", "Keras (jax backend)", gpu_visible=False, hint="CPU jaxlib")
    message = str(error.value)
    assert "\n" not in message
    assert "Keras (jax backend) sees no GPU (CPU jaxlib)" in message
    assert "use --device cpu or auto" in message


def test_auto_without_a_visible_gpu_uses_the_cpu_and_says_so():
    assert devices.resolve("auto", "PyTorch", gpu_visible=False) == (
        "cpu",
        "--device auto: PyTorch sees no GPU, so this run uses the CPU",
    )


def test_cpu_stays_on_the_cpu_when_a_gpu_is_visible():
    assert devices.resolve("cpu", "PyTorch", gpu_visible=True) == ("cpu", "")


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
