"""Keras runtime: threads, seed, device, determinism, float precision; what runs record.

Keras runs on the backend named by KERAS_BACKEND when it is first imported
(tensorflow, jax or torch); each setting below goes to that backend's library, through
one small function per backend, so the rest of keras_impl stays backend-neutral.

Keras places its work on the backend's GPU by itself whenever the backend sees one. So
the danger is the other way round: a CPU run (`--device cpu`) must hide the GPU from
the backend before its runtime starts (`HIDE_GPU`). On the GPU, TF32 is turned off
(`FLOAT32`) and the GPU is described in the run's result (`gpu_info`).
"""

from __future__ import annotations

import contextlib
import os

from compare import devices

FRAMEWORK = "keras"
BACKENDS = ("tensorflow", "jax", "torch")
# Parity: XLA has no CPU thread-count flag. This one makes its Eigen kernels (matmul,
# convolution) single-threaded; with more threads XLA sizes its pool from the CPUs the
# process may use. Read when XLA's CPU client starts (first computation), not at import.
JAX_SINGLE_THREAD_FLAGS = "--xla_cpu_multi_thread_eigen=false"


def backend() -> str:
    """The backend Keras runs on in this process."""
    import keras

    return keras.backend.backend()


def _configure_tensorflow(threads: int, deterministic: bool) -> dict:
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

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


def _configure_jax(threads: int, deterministic: bool) -> dict:
    import jax
    from jax._src import xla_bridge

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


def _configure_torch(threads: int, deterministic: bool) -> dict:
    import torch

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


CONFIGURE = {
    "tensorflow": _configure_tensorflow,
    "jax": _configure_jax,
    "torch": _configure_torch,
}


def configure(threads: int, seed: int, device: str, deterministic: bool = False) -> dict:
    """Pin threads, seed the RNG, choose the device and determinism; return what was set.

    `device` is "cpu", "gpu" or "auto" (compare/devices.py decides); for "cpu" the GPU
    is hidden from the backend first.
    `deterministic` turns on the backend's deterministic kernels (`--deterministic`).
    """
    name = backend()
    # Before anything else: TensorFlow raises, and XLA ignores its flags, once started.
    gpu_hidden_by = HIDE_GPU[name]() if device == "cpu" else None
    settings = CONFIGURE[name](threads, deterministic)
    import keras

    # Seeds Python, NumPy, Keras and the backend's own generator (torch's global one
    # on the torch backend: the parity suite reseeds torch after this).
    keras.utils.set_random_seed(seed)
    chosen, notice = devices.resolve(
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
        "flags": {**settings["flags"], **FLOAT32[name](chosen == "gpu")},
        "deterministic": {"requested": deterministic, **settings["deterministic"]},
    }


# --- the GPU: hidden for a CPU run, full float32 on it, what it is --------------------


def _hide_gpu_tensorflow() -> str:
    import tensorflow as tf

    # Listing devices does not start TensorFlow's runtime; it must not have started.
    if tf.config.list_physical_devices("GPU"):
        tf.config.set_visible_devices([], "GPU")
    return "tf.config.set_visible_devices([], 'GPU')"


def _hide_gpu_jax() -> str:
    import jax
    from jax._src import xla_bridge

    # Read when XLA's clients start (first computation), not at import; the GPU client
    # is then never made, nor its memory preallocated.
    if not xla_bridge.backends_are_initialized():
        jax.config.update("jax_platforms", "cpu")
    elif jax.default_backend() != "cpu":
        raise RuntimeError("JAX already runs on the GPU: set JAX_PLATFORMS=cpu before it starts")
    return "jax_platforms=cpu"


def _hide_gpu_torch() -> str:
    from keras.src.backend.torch import core

    # Keras on torch picks its device once, when keras is imported (KERAS_TORCH_DEVICE,
    # else CUDA whenever torch sees a GPU), before this runs. Nothing is placed yet:
    # reset the choice to what KERAS_TORCH_DEVICE=cpu would have made it.
    core.DEFAULT_DEVICE = "cpu"
    return "Keras torch device cpu (as KERAS_TORCH_DEVICE=cpu)"


HIDE_GPU = {
    "tensorflow": _hide_gpu_tensorflow,
    "jax": _hide_gpu_jax,
    "torch": _hide_gpu_torch,
}


def _float32_tensorflow(on_gpu: bool) -> dict:
    import tensorflow as tf

    if on_gpu:
        # Parity: TensorFlow runs float32 matmuls and convolutions in TF32 on Ampere
        # and newer GPUs by default; PyTorch is told not to (pytorch_impl.runtime).
        tf.config.experimental.enable_tensor_float_32_execution(False)
    return {"tf32_execution": tf.config.experimental.tensor_float_32_execution_enabled()}


def _float32_jax(on_gpu: bool) -> dict:
    import jax

    if on_gpu:
        # Parity: XLA's default precision runs float32 dots and convolutions in TF32 on
        # Ampere and newer GPUs; "highest" is full float32, as on the torch side.
        jax.config.update("jax_default_matmul_precision", "highest")
    return {"jax_default_matmul_precision": jax.config.jax_default_matmul_precision}


def _float32_torch(on_gpu: bool) -> dict:
    import torch

    if on_gpu:
        # Parity: as native torch (pytorch_impl.runtime): cuBLAS and cuDNN without TF32.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return {
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
    }


FLOAT32 = {
    "tensorflow": _float32_tensorflow,
    "jax": _float32_jax,
    "torch": _float32_torch,
}


def _gpu_info_tensorflow() -> dict:
    import tensorflow as tf

    gpu = tf.config.get_visible_devices("GPU")[0]
    details = tf.config.experimental.get_device_details(gpu)
    build = tf.sysconfig.get_build_info()
    capability = details.get("compute_capability")
    return devices.gpu_record(
        details.get("device_name", gpu.name),
        None,  # TensorFlow does not say
        build.get("cuda_version"),
        compute_capability=".".join(map(str, capability)) if capability else None,
        cudnn_version=build.get("cudnn_version"),
    )


def _gpu_info_jax() -> dict:
    import jax

    gpu = jax.devices("gpu")[0]
    return devices.gpu_record(
        gpu.device_kind,
        None,  # JAX says only how much its allocator may take
        gpu.client.platform_version,  # the GPU client's CUDA version, as JAX words it
        compute_capability=getattr(gpu, "compute_capability", None),
    )


GPU_INFO = {
    "tensorflow": _gpu_info_tensorflow,
    "jax": _gpu_info_jax,
    "torch": devices.torch_gpu_record,
}


def gpu_info(device: str) -> dict | None:
    """The GPU a run on `device` uses (name, memory, driver, CUDA); None on the CPU."""
    return GPU_INFO[backend()]() if device == "gpu" else None


# --- synchronisation: one function per backend ---------------------------------------


def _synchronize_tensorflow() -> None:
    import tensorflow as tf

    # Waits for every device's queued ops (a no-op where nothing is queued, the CPU).
    tf.test.experimental.sync_devices()


def _synchronize_jax() -> None:
    import jax

    # JAX dispatches asynchronously, on the CPU too: wait for every array still pending.
    jax.block_until_ready(jax.live_arrays())


def _synchronize_torch() -> None:
    import torch

    # CPU kernels run eagerly; CUDA ones are queued, once CUDA has been started.
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()


SYNCHRONIZE = {
    "tensorflow": _synchronize_tensorflow,
    "jax": _synchronize_jax,
    "torch": _synchronize_torch,
}


def synchronize() -> None:
    """Wait for the backend's queued device work, so a clock read after it is honest."""
    SYNCHRONIZE[backend()]()


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
        with _jax_x64(dtype == "float64"):
            yield
    finally:
        keras.config.set_floatx(previous[0])
        keras.config.set_dtype_policy(previous[1])


@contextlib.contextmanager
def _jax_x64(enabled: bool):
    """Parity: JAX computes in float32 unless x64 is on (float64 arrays are silently
    narrowed); the other backends need nothing."""
    if not enabled or backend() != "jax":
        yield
        return
    import jax

    with jax.enable_x64(True):
        yield
