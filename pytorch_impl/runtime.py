"""PyTorch runtime set-up: threads, seed, device, precision, and what the result records."""

from __future__ import annotations

import contextlib

from compare.errors import UserError

FRAMEWORK = "torch"


def configure(threads: int, seed: int, device: str) -> dict:
    """Pin threads, seed the RNG and choose the device; return what was set.

    `device` is "cpu", "gpu" or "auto" ("auto" falls back to the CPU).
    """
    import torch

    # Seeded first: when the interop pool already runs (parity in a test session), the
    # thread setting below raises, and the seed must be in place regardless.
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)
    has_gpu = torch.cuda.is_available()
    if device == "gpu" and not has_gpu:
        raise UserError(
            "--device gpu: PyTorch sees no CUDA GPU (torch.cuda.is_available() is False); "
            "use --device cpu or auto"
        )
    # The CPU is the only device the runner drives for now; a GPU run needs the
    # synchronisation and placement work of the GPU issue first.
    if device == "gpu":
        raise UserError("--device gpu is not supported yet: use --device cpu or auto")
    return {
        "framework": FRAMEWORK,
        "device": "cpu",
        "gpu_visible": has_gpu,
        "versions": {"torch": torch.__version__},
        "threads": {
            "intra_op": torch.get_num_threads(),
            "inter_op": torch.get_num_interop_threads(),
        },
        "flags": {"mkldnn_enabled": torch.backends.mkldnn.is_available()},
    }


def synchronize() -> None:
    """Wait for queued device work (a no-op on the CPU, where PyTorch is eager)."""


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
