"""Starting weights built by PyTorch and loaded by both frameworks (the transfer model).

Stage: run. The transfer model starts from torchvision's DenseNet-121: its seeded random
initialisation, or the ImageNet checkpoint torchvision reads from the torch hub cache.
Keras cannot draw the first, cannot read the second, and a worker imports one framework
only; so a torch process builds the model once per (model spec, seed, checkpoint),
seeded exactly as the runner seeds a torch run (`configure`, then `build_model`), and
writes its weights in the canonical layout to the cache. Every run of either framework
loads them from there (each file verified by its SHA-256, as the prepared data), so
both sides start from the same weights, bit for bit.

"auto" features are decided here too, before a run is planned: "imagenet" when
torchvision's checkpoint file is in the torch hub cache, else "random" (nothing is ever
downloaded), so each run's spec, and its hash, says which it trained from.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import importlib.metadata
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from compare import network
from compare.data.fashion_mnist import cache_dir
from compare.run import contract, environment
from compare.spec import parse
from compare.spec.schema import ExperimentSpec, ModelSpec

# torchvision's DenseNet121_Weights.IMAGENET1K_V1 file name (tests check it against
# torchvision's own URL); its hash prefix is checked by torchvision when it downloads.
CHECKPOINT = "densenet121-a639ec97.pth"
# Bump when what a cache entry holds changes: old entries are then never read.
VERSION = 1


def shares_start(model_spec: ModelSpec) -> bool:
    """Whether the model's starting weights come from here, not from each framework."""
    return model_spec.architecture == "densenet121"


def torch_hub_dir() -> pathlib.Path:
    """`torch.hub.get_dir()` without importing torch: $TORCH_HOME/hub, else
    $XDG_CACHE_HOME/torch/hub, else ~/.cache/torch/hub (torch.hub's documented order)."""
    cache = os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    home = os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch")))
    return pathlib.Path(home) / "hub"


def checkpoint_path() -> pathlib.Path:
    """Where torchvision reads the ImageNet checkpoint from (and would download it to)."""
    return torch_hub_dir() / "checkpoints" / CHECKPOINT


def resolve_features(experiment: ExperimentSpec) -> ExperimentSpec:
    """The experiment with model.features "auto" decided for this machine."""
    model = experiment.model
    if not shares_start(model) or model.features != "auto":
        return experiment
    features = "imagenet" if checkpoint_path().is_file() else "random"
    return dataclasses.replace(experiment, model=dataclasses.replace(model, features=features))


def _sha256_file(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(model_spec: ModelSpec, seed: int) -> str:
    """The cache entry of a (model spec, seed): the spec, the seed, the torch and
    torchvision versions (their initialisation draws), and the checkpoint's bytes."""
    identity = {
        "version": VERSION,
        "model": dataclasses.asdict(model_spec),
        "seed": seed,
        "torch": importlib.metadata.version("torch"),
        "torchvision": importlib.metadata.version("torchvision"),
    }
    if model_spec.features == "imagenet":
        if not checkpoint_path().is_file():
            raise FileNotFoundError(
                f"model.features = 'imagenet' needs torchvision's checkpoint at "
                f"{checkpoint_path()} (never downloaded here): copy it there, or set "
                "model.features = 'random'"
            )
        identity["checkpoint_sha256"] = _sha256_file(checkpoint_path())
    blob = json.dumps(identity, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def _read(directory: pathlib.Path) -> list[np.ndarray] | None:
    """The cached weights in `directory` when they match their recorded SHA-256."""
    try:
        meta = json.loads((directory / "meta.json").read_text())
        if _sha256_file(directory / "weights.npz") != meta["sha256"]:
            return None
        with np.load(directory / "weights.npz") as arrays:
            return [arrays[f"arr_{index}"] for index in range(meta["count"])]
    except (OSError, ValueError, KeyError):
        return None


def _write(directory: pathlib.Path, weights: list[np.ndarray], meta: dict) -> None:
    """Write next to `directory`, then rename into place: a reader sees all or nothing."""
    staging = pathlib.Path(tempfile.mkdtemp(dir=directory.parent, prefix=".staging-"))
    try:
        np.savez(staging / "weights.npz", *weights)
        meta = {**meta, "count": len(weights), "sha256": _sha256_file(staging / "weights.npz")}
        (staging / "meta.json").write_text(json.dumps(meta, indent=1))
        if directory.exists():
            shutil.rmtree(directory)  # a damaged entry (it failed verification)
        os.rename(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def prepared(model_spec: ModelSpec, seed: int) -> list[np.ndarray]:
    """The canonical starting weights of (model_spec, seed): from the cache, else built
    by torch in a child process (this one may have Keras loaded) and cached. Workers
    asking at once wait for one build (a lock per entry)."""
    directory = cache_dir() / "initial-weights" / cache_key(model_spec, seed)
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        weights = _read(directory)
        if weights is None:
            _build_in_torch(model_spec, seed, directory)
            weights = _read(directory)
    if weights is None:
        raise RuntimeError(f"the starting weights in {directory} do not verify after a build")
    return weights


def _build_in_torch(model_spec: ModelSpec, seed: int, directory: pathlib.Path) -> None:
    """Run `main` in a fresh Python process (torch only, one thread)."""
    spec = json.dumps(dataclasses.asdict(model_spec))
    command = [sys.executable, "-m", "compare.run.initial_weights", spec, str(seed), str(directory)]
    path = os.pathsep.join(filter(None, [str(environment.ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"building the starting weights in torch failed: {done.stderr[-2000:]}")


def main(argv: list[str]) -> int:
    """Build the model with torch, seeded as a torch run is, and cache its weights."""
    spec, seed, directory = argv
    network.forbid_network()  # torchvision reads the checkpoint; it must never fetch it
    model_spec = parse.from_dict(ModelSpec, json.loads(spec))
    torch_impl = contract.load("torch")
    torch_impl.configure(1, int(seed), "cpu")
    weights = torch_impl.get_weights(torch_impl.build_model(model_spec))
    _write(pathlib.Path(directory), weights, {"model": json.loads(spec), "seed": int(seed)})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
