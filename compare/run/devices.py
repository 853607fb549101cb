"""What a GPU run records of its GPU: each framework's own view, completed by nvidia-smi.

Stage: run. The rule for which device a run uses is `compare.spec.identity.choose_device`
(each implementation's `configure` applies it to what its library sees).

A run on the GPU records the GPU in its result: the worker passes what the framework
says of it (`gpu_info` of the implementation contract) to `gpu_record`. With `auto`, the
two frameworks can end up on different devices; each result says which it used.
"""

from __future__ import annotations

import subprocess


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
