"""Keras on JAX: threads, determinism, the GPU, synchronisation, float64, gradients,
an optimizer's steps.

The same functions as every module in keras_impl.backends (its docstring lists them).
"""

from __future__ import annotations

import contextlib
import os

import jax
import keras
import numpy as np
from jax._src import xla_bridge

# Parity: XLA has no CPU thread-count flag. This one makes its Eigen kernels (matmul,
# convolution) single-threaded; with more threads XLA sizes its pool from the CPUs the
# process may use. Read when XLA's CPU client starts (first computation), not at import.
JAX_SINGLE_THREAD_FLAGS = "--xla_cpu_multi_thread_eigen=false"


def configure(threads: int, deterministic: bool) -> dict:
    if threads == 1 and not xla_bridge.backends_are_initialized():
        flags = _xla_flags()
        if JAX_SINGLE_THREAD_FLAGS not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} {JAX_SINGLE_THREAD_FLAGS}".strip()
    # Added only before XLA starts, so the flag in the environment is the flag in effect.
    if JAX_SINGLE_THREAD_FLAGS in _xla_flags():
        intra_op = 1
    else:
        intra_op = f"XLA default: one per usable CPU ({len(os.sched_getaffinity(0))})"
    return {
        "library_version": jax.__version__,
        "gpu_visible": any(d.platform == "gpu" for d in jax.devices()),
        "gpu_hint": "the CPU build of jaxlib is installed; jax[cuda12] is the GPU one",
        "threads": {"intra_op": intra_op, "inter_op": "XLA's own"},
        "flags": {"XLA_FLAGS": _xla_flags(), "jax_enable_x64": bool(jax.config.jax_enable_x64)},
        # Parity: XLA on the CPU is deterministic run to run; it has no switch to turn on
        # (its GPU flag, --xla_gpu_deterministic_ops, is read only by GPU clients).
        "deterministic": {"xla_cpu": "always (no switch)"},
    }


def _xla_flags() -> str:
    return os.environ.get("XLA_FLAGS", "")


@contextlib.contextmanager
def intra_op_threads(count: int | None):
    # XLA reads its thread flag once, when its CPU client starts (see configure).
    current = 1 if JAX_SINGLE_THREAD_FLAGS in _xla_flags() else len(os.sched_getaffinity(0))
    if count not in (None, current):
        raise RuntimeError(f"XLA's CPU thread pool is fixed at start ({current} threads)")
    yield current


# --- the GPU: hidden for a CPU run, full float32 on it, what it is --------------------


def hide_gpu() -> str:
    # Read when XLA's clients start (first computation), not at import; the GPU client
    # is then never made, nor its memory preallocated.
    if not xla_bridge.backends_are_initialized():
        jax.config.update("jax_platforms", "cpu")
    elif jax.default_backend() != "cpu":
        raise RuntimeError("JAX already runs on the GPU: set JAX_PLATFORMS=cpu before it starts")
    return "jax_platforms=cpu"


def float32(on_gpu: bool) -> dict:
    if on_gpu:
        # Parity: XLA's default precision runs float32 dots and convolutions in TF32 on
        # Ampere and newer GPUs; "highest" is full float32, as on the torch side.
        jax.config.update("jax_default_matmul_precision", "highest")
    return {"jax_default_matmul_precision": jax.config.jax_default_matmul_precision}


def gpu_info() -> dict:
    gpu = jax.devices("gpu")[0]
    return {
        "name": gpu.device_kind,
        "memory_total_mb": None,  # JAX says only how much its allocator may take
        "cuda_version": gpu.client.platform_version,  # the GPU client's, as JAX words it
        "compute_capability": getattr(gpu, "compute_capability", None),
    }


def synchronize() -> None:
    # JAX dispatches asynchronously, on the CPU too: wait for every array still pending.
    jax.block_until_ready(jax.live_arrays())


# --- float64 ---------------------------------------------------------------------------


def float64_available() -> bool:
    # Parity: no; keras.ops narrows 64-bit results to 32 bits here (optimizers._float64_available).
    return False


def float64_scope(enabled: bool):
    """Parity: JAX computes in float32 unless x64 is on (float64 arrays are silently
    narrowed); the other backends need nothing."""
    return jax.enable_x64(True) if enabled else contextlib.nullcontext()


# --- gradients and compiled steps ------------------------------------------------------


def value_and_gradients(model, loss_of):
    """jax.value_and_grad of loss_of; zeros (not None) for a variable it does not reach."""
    non_trainable = [v.value for v in model.non_trainable_variables]

    # JAX differentiates pure functions: the model is called statelessly on the values.
    def loss_at(trainable):
        def call(*inputs, **kwargs):
            outputs, _ = model.stateless_call(trainable, non_trainable, *inputs, **kwargs)
            return outputs

        return loss_of(call)

    return jax.value_and_grad(loss_at)([v.value for v in model.trainable_variables])


def compile_step(step, variables):
    """`step` compiled with jax.jit, on its first call for each input shape.

    jax.jit compiles pure functions, and a step assigns Keras variables (the optimizer's
    update): the compiled function takes every variable's value in and gives the new
    values out (keras.StatelessScope collects them), which are assigned after it.
    `variables`: every Keras variable the step reads or assigns.
    """

    @jax.jit
    def pure(values, *args):
        state = list(zip(variables, values, strict=True))
        with keras.StatelessScope(state_mapping=state) as scope:
            outputs = step(*args)
        return outputs, [scope.get_current_value(v) for v in variables]

    def compiled(*args):
        outputs, values = pure([v.value for v in variables], *args)
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)
        return outputs

    return compiled


def run_optimizer(optimizer, variable, gradients, jit_compile: bool):
    """Every step's value of `variable` (steps, n) as NumPy: the rows of `gradients` one a
    step through `optimizer.stateless_apply` (as Keras's JAX trainer applies them) in one
    jitted jax.lax.scan; the final values are assigned back. Compiled whatever
    `jit_compile` says: Keras on JAX always jits its train step."""

    def step(state, gradient):
        value, optimizer_values = state
        [value], optimizer_values = optimizer.stateless_apply(optimizer_values, [gradient], [value])
        return (value, optimizer_values), value

    @jax.jit
    def run(state, gradients):
        return jax.lax.scan(step, state, gradients)

    state = (variable.value, [v.value for v in optimizer.variables])
    (value, optimizer_values), trajectory = run(state, jax.numpy.asarray(gradients))
    variable.assign(value)
    for optimizer_variable, optimizer_value in zip(
        optimizer.variables, optimizer_values, strict=True
    ):
        optimizer_variable.assign(optimizer_value)
    return np.asarray(trajectory)
