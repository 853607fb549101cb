"""Keras on torch: threads, determinism, the GPU, synchronisation, float64, gradients,
an optimizer's steps.

The same functions as every module in keras_impl.backends (its docstring lists them).
"""

from __future__ import annotations

import contextlib
import os

import keras
import numpy as np
import torch


def configure(threads: int, deterministic: bool) -> dict:
    # Parity: Keras on torch and native torch share one torch runtime: in one process
    # (the parity suite) the last caller's thread count holds for both.
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # the interop pool is sized once per process
        torch.set_num_interop_threads(threads)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    return {
        "library_version": torch.__version__,
        "gpu_visible": torch.cuda.is_available(),
        "gpu_hint": "torch.cuda.is_available() is False",
        "threads": {
            "intra_op": torch.get_num_threads(),
            "inter_op": torch.get_num_interop_threads(),
        },
        "flags": {"mkldnn_enabled": torch.backends.mkldnn.is_available()},
        "deterministic": {
            "use_deterministic_algorithms": torch.are_deterministic_algorithms_enabled()
        },
    }


@contextlib.contextmanager
def intra_op_threads(count: int | None):
    # As native torch (pytorch_impl.runtime): torch resizes its pool at any time.
    previous = torch.get_num_threads()
    torch.set_num_threads(count or previous)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)


# --- the GPU: hidden for a CPU run, full float32 on it, what it is --------------------


def hide_gpu() -> str:
    from keras.src.backend.torch import core

    # Keras on torch picks its device once, when keras is imported (KERAS_TORCH_DEVICE,
    # else CUDA whenever torch sees a GPU), before this runs. Nothing is placed yet:
    # reset the choice to what KERAS_TORCH_DEVICE=cpu would have made it.
    core.DEFAULT_DEVICE = "cpu"
    return "Keras torch device cpu (as KERAS_TORCH_DEVICE=cpu)"


def float32(on_gpu: bool) -> dict:
    if on_gpu:
        # Parity: as native torch (pytorch_impl.runtime): cuBLAS and cuDNN without TF32.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return {
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
    }


def gpu_info() -> dict:
    # Parity: as native PyTorch describes it (pytorch_impl.runtime.gpu_info): one torch.
    properties = torch.cuda.get_device_properties(torch.cuda.current_device())
    return {
        "name": properties.name,
        "memory_total_mb": properties.total_memory / 2**20,
        "cuda_version": torch.version.cuda,
        "compute_capability": f"{properties.major}.{properties.minor}",
        "cudnn_version": torch.backends.cudnn.version(),
    }


def synchronize() -> None:
    # CPU kernels run eagerly; CUDA ones are queued, once CUDA has been started.
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()


# --- float64 ---------------------------------------------------------------------------


def float64_available() -> bool:
    # Parity: no; keras.ops narrows 64-bit results to 32 bits here (optimizers._float64_available).
    return False


def float64_scope(enabled: bool):
    """Float64 needs no switch on torch."""
    return contextlib.nullcontext()


# --- gradients and compiled steps ------------------------------------------------------


def value_and_gradients(model, loss_of):
    """loss_of(model), then torch.autograd.grad; None for a variable the loss does not reach."""
    loss = loss_of(model)
    parameters = [v.value for v in model.trainable_variables]
    # torch.autograd.grad leaves the parameters' .grad untouched (no state to reset).
    return loss, torch.autograd.grad(loss, parameters, allow_unused=True)


def compile_step(step, variables):
    """`step` as it is: eager, as Keras's own torch training loop runs by default."""
    return step


def run_optimizer(optimizer, variable, gradients, jit_compile: bool):
    """Every step's value of `variable` (steps, n) as NumPy: `optimizer.apply` fed the rows
    of `gradients` one a step, eagerly, as Keras's torch trainer steps (`jit_compile`,
    torch.compile for Keras, is not applied to the optimizer here)."""
    trajectory = np.empty(gradients.shape, np.float32)
    for step, gradient in enumerate(gradients):
        optimizer.apply([keras.ops.convert_to_tensor(gradient)], [variable])
        trajectory[step] = keras.ops.convert_to_numpy(variable.value)
    return trajectory
