"""Keras runtime: threads, seed, device, determinism, float precision; what runs record.

Keras runs on the backend named by KERAS_BACKEND when it is first imported
(tensorflow, jax or torch); each setting below goes to that backend's library, through
its module in keras_impl.backends, so the rest of keras_impl stays backend-neutral.

Keras places its work on the backend's GPU by itself whenever the backend sees one. So
the danger is the other way round: a CPU run (`--device cpu`) must hide the GPU from
the backend before its runtime starts (`hide_gpu`). On the GPU, TF32 is turned off
(`float32`) and the GPU is described in the run's result (`gpu_info`).
"""

from __future__ import annotations

import contextlib

from compare.spec.identity import choose_device
from keras_impl import backends

FRAMEWORK = "keras"
BACKENDS = backends.NAMES


def backend() -> str:
    """The backend Keras runs on in this process."""
    import keras

    return keras.backend.backend()


def configure(threads: int, seed: int, device: str, deterministic: bool = False) -> dict:
    """Pin threads, seed the RNG, choose the device and determinism; return what was set.

    `device` is "cpu", "gpu" or "auto" (`compare.spec.identity.choose_device` decides);
    for "cpu" the GPU is hidden from the backend first.
    `deterministic` turns on the backend's deterministic kernels (`--deterministic`).
    """
    name = backend()
    library = backends.module(name)
    # Before anything else: TensorFlow raises, and XLA ignores its flags, once started.
    gpu_hidden_by = library.hide_gpu() if device == "cpu" else None
    settings = library.configure(threads, deterministic)
    import keras

    # A run starts clean in a worker that already ran others: Keras's session (layer
    # names, the global seed generator, compiled functions) is cleared, then everything
    # is seeded: Python, NumPy, Keras and the backend's own generator (torch's global
    # one on the torch backend: the parity suite reseeds torch after this).
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    chosen, notice = choose_device(
        device, f"Keras ({name} backend)", settings["gpu_visible"], hint=settings["gpu_hint"]
    )
    return {
        "framework": FRAMEWORK,
        "device": chosen,
        "device_notice": notice,
        "gpu_visible": settings["gpu_visible"],
        "gpu_hidden_by": gpu_hidden_by,
        "versions": {name: settings["library_version"], "keras": keras.__version__},
        "keras_backend": name,
        "keras_backend_version": settings["library_version"],
        "threads": settings["threads"],
        "flags": {**settings["flags"], **library.float32(chosen == "gpu")},
        "deterministic": {"requested": deterministic, **settings["deterministic"]},
    }


def intra_op_threads(count: int | None):
    """A context: the block runs on `count` intra-op threads (None: unchanged); it yields
    the count in effect. TensorFlow and XLA fix their pools at start: RuntimeError there."""
    return backends.module(backend()).intra_op_threads(count)


def gpu_info(device: str) -> dict | None:
    """What the backend says of the GPU a run on `device` uses (`compare.run.devices.
    gpu_record`'s arguments); None on the CPU. The worker adds the driver."""
    return backends.module(backend()).gpu_info() if device == "gpu" else None


def synchronize() -> None:
    """Wait for the backend's queued device work, so a clock read after it is honest."""
    backends.module(backend()).synchronize()


@contextlib.contextmanager
def float_precision(dtype: str):
    """Models built inside the block hold `dtype` ("float32", "float64") parameters.

    The study trains in float32; the parity suite also replays training in float64 to
    separate the update rules from float32 rounding.
    """
    import keras

    # Layers take their dtype from the global dtype policy, which Keras fixes from
    # floatx on first use: both must change.
    previous = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        with backends.module(backend()).float64_scope(dtype == "float64"):
            yield
    finally:
        keras.config.set_floatx(previous[0])
        keras.config.set_dtype_policy(previous[1])
