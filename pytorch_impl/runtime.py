"""PyTorch runtime set-up: threads, seed, device, and what the result records."""

from __future__ import annotations

from compare.errors import UserError

FRAMEWORK = "torch"


def configure(threads: int, seed: int, device: str) -> dict:
    """Pin threads, seed the RNG and choose the device; return what was set.

    `device` is "cpu", "gpu" or "auto" ("auto" falls back to the CPU).
    """
    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)
    torch.manual_seed(seed)
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
