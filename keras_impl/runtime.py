"""Keras runtime set-up: threads, seed, device, determinism, and what the result records."""

from __future__ import annotations

import os

from compare import devices

FRAMEWORK = "keras"


def configure(threads: int, seed: int, device: str, deterministic: bool = False) -> dict:
    """Pin threads, seed the RNG, choose the device and determinism; return what was set.

    `device` is "cpu", "gpu" or "auto" ("auto" falls back to the CPU with a notice).
    `deterministic` turns on the framework's deterministic kernels (`--deterministic`).
    """
    import tensorflow as tf

    # Parity: TensorFlow's thread pools must be sized before its runtime starts
    # (it raises afterwards), so this runs before any other TensorFlow call.
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    import keras
    from tensorflow.python.framework import config as tf_config

    keras.utils.set_random_seed(seed)
    if deterministic:
        # Parity: TensorFlow has no switch back off; a worker runs one configuration.
        tf.config.experimental.enable_op_determinism()
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    chosen, notice = devices.resolve(
        device, "TensorFlow", has_gpu, hint="tensorflow-cpu is installed; see `make setup GPU=1`"
    )
    return {
        "framework": FRAMEWORK,
        "device": chosen,
        "device_notice": notice,
        "gpu_visible": has_gpu,
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        "keras_backend": keras.backend.backend(),
        "threads": {
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        },
        "flags": {"TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")},
        "deterministic": {
            "requested": deterministic,
            # Read back from TensorFlow (no public getter exists in 2.21).
            "enable_op_determinism": tf_config.is_op_determinism_enabled(),
        },
    }


def synchronize() -> None:
    """Wait for queued device work (fit/predict return finished results on the CPU)."""
