"""The environment fingerprint stored with every run: what ran where, with what.

Stage: run.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import pathlib
import platform
import subprocess

PACKAGES = ("numpy", "torch", "torchvision", "tensorflow-cpu", "tensorflow", "keras", "jax")
ENV_FLAGS = (
    "OMP_NUM_THREADS",
    "TF_ENABLE_ONEDNN_OPTS",
    "TF_XLA_FLAGS",
    "XLA_FLAGS",
    "KERAS_BACKEND",
    "CUDA_VISIBLE_DEVICES",
    "JAX_PLATFORMS",
    "KERAS_TORCH_DEVICE",
    "TF_DETERMINISTIC_OPS",
)
ROOT = pathlib.Path(__file__).resolve().parents[2]  # the repository: compare/run/ -> ../..


def cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*args: str) -> str:
    """stdout of `git ARGS` in the project root; raises if git fails."""
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=5, check=True
    ).stdout.strip()


def git_commit() -> str | None:
    try:
        commit = _git("rev-parse", "--short=12", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def package_versions() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def node() -> dict:
    """The machine a run ran on (its GPU, if any, is the result's `gpu`): the report
    compares timing only between runs of the same kind of node."""
    return {"hostname": platform.node(), "cpu_model": cpu_model(), "cpu_count": os.cpu_count()}


def fingerprint() -> dict:
    return {
        **node(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "env_flags": {name: os.environ.get(name) for name in ENV_FLAGS},
        "git_commit": git_commit(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
