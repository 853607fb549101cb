"""PyTorch runtime: threads, seed, device, determinism, float precision; what runs record.

On the GPU (`device` "gpu"), the Trainer moves the model and its data to
`torch_device("gpu")`; `gpu_info` describes that GPU for the run's result.
"""

from __future__ import annotations

import contextlib
import os
import sys

from compare.spec.identity import choose_device

FRAMEWORK = "torch"


def backend() -> str:
    """The library that computes: torch itself (Keras has three; see keras_impl)."""
    return "torch"


def configure(threads: int, seed: int, device: str, deterministic: bool = False) -> dict:
    """Pin threads, seed the RNG, choose the device and determinism; return what was set.

    `device` is "cpu", "gpu" or "auto" (`compare.spec.identity.choose_device` decides).
    With "cpu" nothing is hidden: the model and data simply never move to CUDA.
    `deterministic` turns on the framework's deterministic kernels (`--deterministic`).
    """
    import torch

    # A run starts clean in a worker that already ran others: torch.compile's caches
    # go (a model compiled by an earlier run must not count against the recompile
    # limit), and the generator is reseeded.
    if "torch._dynamo" in sys.modules:
        torch._dynamo.reset()
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    # The interop pool is sized once per process: a second call raises once it runs.
    if torch.get_num_interop_threads() != threads:
        with contextlib.suppress(RuntimeError):  # already running (parity in a test session)
            torch.set_num_interop_threads(threads)
    if deterministic:
        # cuBLAS is deterministic only with this workspace setting, read when CUDA starts.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    has_gpu = torch.cuda.is_available()
    chosen, notice = choose_device(
        device, "PyTorch", has_gpu, hint="torch.cuda.is_available() is False"
    )
    if chosen == "gpu":
        # Parity: full float32 products on both sides. torch already defaults cuBLAS
        # to it, but lets cuDNN (convolutions) use TF32; TensorFlow and XLA use TF32 on
        # Ampere and newer unless told not to (keras_impl.runtime does).
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return {
        "framework": FRAMEWORK,
        "device": chosen,
        "device_notice": notice,
        "gpu_visible": has_gpu,
        "versions": {"torch": torch.__version__},
        "threads": {
            "intra_op": torch.get_num_threads(),
            "inter_op": torch.get_num_interop_threads(),
        },
        "flags": {
            "mkldnn_enabled": torch.backends.mkldnn.is_available(),
            # TF32 only matters on NVIDIA GPUs; recorded so a GPU run's precision is known.
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "tf32_cudnn": torch.backends.cudnn.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
        },
        "deterministic": {
            "requested": deterministic,
            "use_deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        },
    }


@contextlib.contextmanager
def intra_op_threads(count: int | None):
    """Run the block on `count` intra-op threads (None: as now); yields the count in effect.

    The parity suite reruns torch at another thread count to measure how far float32
    rounding alone moves it (another summation order, as another framework's kernels).
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count or previous)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)


def torch_device(device: str):
    """The torch.device of a run's device ("cpu" or "gpu", as `configure` chose it)."""
    import torch

    return torch.device("cuda" if device == "gpu" else "cpu")


def gpu_info(device: str) -> dict | None:
    """What torch says of the GPU a run on `device` uses (name, memory, CUDA, compute
    capability, cuDNN); None on the CPU. The worker adds the driver (nvidia-smi)."""
    if device != "gpu":
        return None
    import torch

    properties = torch.cuda.get_device_properties(torch.cuda.current_device())
    return {
        "name": properties.name,
        "memory_total_mb": properties.total_memory / 2**20,
        "cuda_version": torch.version.cuda,
        "compute_capability": f"{properties.major}.{properties.minor}",
        "cudnn_version": torch.backends.cudnn.version(),
    }


def synchronize() -> None:
    """Wait for queued device work, so a clock read after it is honest."""
    import torch

    # CPU kernels run eagerly; CUDA ones are queued, once CUDA has been started.
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()


@contextlib.contextmanager
def float_precision(dtype: str):
    """Models built inside the block hold `dtype` ("float32", "float64") parameters.

    The study trains in float32; the parity suite also replays training in float64 to
    separate the update rules from float32 rounding.
    """
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
