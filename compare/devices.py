"""Which device a run uses: one rule for both frameworks, given what each one sees.

`--device cpu` runs on the CPU; each implementation's `runtime.configure` keeps its
library off any GPU it could see. `--device gpu` runs on the GPU, and is a user error
when the framework sees none. `--device auto` runs on the GPU when the framework sees
one and on the CPU otherwise, and says which in a notice that the result records and
the runner prints (with `auto`, the two frameworks can end up on different devices).

A run on the GPU records the GPU in its result (`gpu_record`, filled by each
implementation's `runtime.gpu_info`).
"""

from __future__ import annotations

import subprocess

from compare.errors import UserError

DEVICES = ("auto", "cpu", "gpu")


def resolve(requested: str, library: str, gpu_visible: bool, hint: str = "") -> tuple[str, str]:
    """(device, notice) for a run of `library`; notice is "" when there is nothing to say.

    `hint` says why the library sees no GPU, e.g. which package is installed.
    """
    if requested not in DEVICES:
        raise UserError(f"unknown device '{requested}' (choose one of: {', '.join(DEVICES)})")
    if requested == "gpu":
        if not gpu_visible:
            raise UserError(
                f"--device gpu: {library} sees no GPU{f' ({hint})' if hint else ''}; "
                "use --device cpu or auto"
            )
        return "gpu", ""
    if requested == "auto":
        if gpu_visible:
            return "gpu", f"--device auto: {library} sees a GPU, so this run uses it"
        return "cpu", f"--device auto: {library} sees no GPU, so this run uses the CPU"
    return "cpu", ""


def nvidia_smi() -> list[dict]:
    """Every GPU as `nvidia-smi` lists it: name, memory_total_mb, driver_version.

    [] where nvidia-smi is missing or fails. Its order need not be CUDA's, so callers
    match GPUs by name, not by index.
    """
    query = "--query-gpu=name,memory.total,driver_version"
    try:
        listing = subprocess.run(
            ["nvidia-smi", query, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in listing.strip().splitlines():
        fields = [field.strip() for field in line.rsplit(",", 2)]
        if len(fields) != 3:
            continue
        name, memory, driver = fields
        try:
            memory_total_mb = float(memory)
        except ValueError:  # "[N/A]"
            memory_total_mb = None
        gpus.append({"name": name, "memory_total_mb": memory_total_mb, "driver_version": driver})
    return gpus


def gpu_record(
    name: str, memory_total_mb: float | None, cuda_version: str | None, **details
) -> dict:
    """A run's `gpu` field: what the framework says of its GPU, plus nvidia-smi's driver.

    `memory_total_mb` None (the framework does not say): nvidia-smi's figure for a GPU
    of the same name. `details` are framework-specific extras (compute capability...).
    """
    listed = nvidia_smi()
    if memory_total_mb is None:
        memory_total_mb = next(
            (gpu["memory_total_mb"] for gpu in listed if gpu["name"] == name), None
        )
    return {
        "name": name,
        "memory_total_mb": memory_total_mb,
        "driver_version": listed[0]["driver_version"] if listed else None,
        "cuda_version": cuda_version,
        **details,
    }


def torch_gpu_record() -> dict:
    """The `gpu` field of a run on torch's current CUDA device: native PyTorch and Keras on
    its torch backend share torch's runtime, so they describe the GPU the same way."""
    import torch

    properties = torch.cuda.get_device_properties(torch.cuda.current_device())
    return gpu_record(
        properties.name,
        properties.total_memory / 2**20,
        torch.version.cuda,
        compute_capability=f"{properties.major}.{properties.minor}",
        cudnn_version=torch.backends.cudnn.version(),
    )
