"""Keras on TensorFlow: threads, determinism, the GPU, synchronisation, float64, gradients,
an optimizer's steps.

The same functions as every module in keras_impl.backends (its docstring lists them).
"""

from __future__ import annotations

import contextlib
import os

import tensorflow as tf
from tensorflow.python.framework import config as tf_config


def configure(threads: int, deterministic: bool) -> dict:
    # Parity: TensorFlow's thread pools must be sized before its runtime starts
    # (it raises afterwards), so this runs before any other TensorFlow call.
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    if deterministic:
        # Parity: TensorFlow has no switch back off; a worker runs one configuration.
        tf.config.experimental.enable_op_determinism()
    return {
        "library_version": tf.__version__,
        "gpu_visible": bool(tf.config.list_physical_devices("GPU")),
        "gpu_hint": "tensorflow-cpu is installed; see `make setup GPU=1`",
        "threads": {
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        },
        "flags": {
            "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        },
        # Read back from TensorFlow (no public getter exists in 2.21).
        "deterministic": {"enable_op_determinism": tf_config.is_op_determinism_enabled()},
    }


@contextlib.contextmanager
def intra_op_threads(count: int | None):
    # TensorFlow sizes its pools once, when its runtime starts (see configure).
    current = tf.config.threading.get_intra_op_parallelism_threads()
    if count not in (None, current):
        raise RuntimeError(f"TensorFlow's intra-op pool is fixed at start ({current} threads)")
    yield current


# --- the GPU: hidden for a CPU run, full float32 on it, what it is --------------------


def hide_gpu() -> str:
    # Listing devices does not start TensorFlow's runtime; it must not have started.
    if tf.config.list_physical_devices("GPU"):
        tf.config.set_visible_devices([], "GPU")
    return "tf.config.set_visible_devices([], 'GPU')"


def float32(on_gpu: bool) -> dict:
    if on_gpu:
        # Parity: TensorFlow runs float32 matmuls and convolutions in TF32 on Ampere
        # and newer GPUs by default; PyTorch is told not to (pytorch_impl.runtime).
        tf.config.experimental.enable_tensor_float_32_execution(False)
    return {"tf32_execution": tf.config.experimental.tensor_float_32_execution_enabled()}


def gpu_info() -> dict:
    gpu = tf.config.get_visible_devices("GPU")[0]
    details = tf.config.experimental.get_device_details(gpu)
    build = tf.sysconfig.get_build_info()
    capability = details.get("compute_capability")
    return {
        "name": details.get("device_name", gpu.name),
        "memory_total_mb": None,  # TensorFlow does not say
        "cuda_version": build.get("cuda_version"),
        "compute_capability": ".".join(map(str, capability)) if capability else None,
        "cudnn_version": build.get("cudnn_version"),
    }


def synchronize() -> None:
    # Waits for every device's queued ops (a no-op where nothing is queued, the CPU).
    tf.test.experimental.sync_devices()


# --- float64 ---------------------------------------------------------------------------


def float64_available() -> bool:
    # keras.ops keeps float64 as float64 on TensorFlow (optimizers._float64_available).
    return True


def float64_scope(enabled: bool):
    """Float64 needs no switch on TensorFlow."""
    return contextlib.nullcontext()


# --- gradients and compiled steps ------------------------------------------------------


def value_and_gradients(model, loss_of):
    """loss_of(model) under a tape; None for a variable the loss does not reach."""
    with tf.GradientTape() as tape:
        loss = loss_of(model)
    return loss, tape.gradient(loss, model.trainable_variables)


def compile_step(step, variables):
    """`step` traced into a graph on its first call, run as that graph afterwards (the
    graph reads and assigns the variables itself).

    Python control flow is fixed when tf.function traces: a step whose Python differs
    (the regression nets' depth) needs one compiled step per variant.
    """
    return tf.function(step)


def run_optimizer(optimizer, variable, gradients, jit_compile: bool):
    """Every step's value of `variable` (steps, n) as NumPy: `optimizer.apply` fed the rows
    of `gradients` one a step, all the steps in one graph (a tf.while_loop; XLA-compiled
    if `jit_compile`), since one graph call per step cost ~0.6 ms (2 cores)."""
    gradients = tf.convert_to_tensor(gradients, tf.float32)

    @tf.function(jit_compile=jit_compile)
    def run(gradients):
        trajectory = tf.TensorArray(tf.float32, size=tf.shape(gradients)[0])

        def body(step, trajectory):
            optimizer.apply([gradients[step]], [variable])
            return step + 1, trajectory.write(step, tf.convert_to_tensor(variable.value))

        _, trajectory = tf.while_loop(
            lambda step, _: step < tf.shape(gradients)[0], body, (tf.constant(0), trajectory)
        )
        return trajectory.stack()

    return run(gradients).numpy()
