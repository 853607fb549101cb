"""Run result files: where they live, how they are written (atomically), how read.

One JSON file per (experiment, framework, seed) under `OUT/runs/`. A file is written
to a temporary name in the same directory, flushed, fsynced and renamed, so a crash
at any moment leaves either the old complete file or the new complete file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import pathlib
import re
import tempfile

from compare import modes

SCHEMA_VERSION = 1
FRAMEWORKS = ("torch", "keras")
# Keras 3's backends; TensorFlow is the default (the classic Keras vs PyTorch pairing).
KERAS_BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT_KERAS_BACKEND = "tensorflow"


def variant(framework: str, keras_backend: str | None = None, mode: str | None = None) -> str:
    """A run's implementation as a file-name part: `torch`, `keras`, `keras_jax`,
    `torch-idiomatic`. The defaults (TensorFlow backend, tuned mode) add nothing, so the
    plain names mean the classic pairing."""
    name = framework
    if framework == "keras" and keras_backend not in (None, DEFAULT_KERAS_BACKEND):
        name += f"_{keras_backend}"
    if mode not in (None, modes.DEFAULT_MODE):
        name += f"-{mode}"
    return name


def implementation_label(run: dict) -> str:
    """How the report names a run's implementation: `torch`, `keras[jax]`,
    `torch (idiomatic)`."""
    label = run["framework"]
    backend = run.get("keras_backend") or (run.get("runtime") or {}).get("keras_backend")
    if run["framework"] == "keras" and backend not in (None, DEFAULT_KERAS_BACKEND):
        label += f"[{backend}]"
    if run.get("mode") not in (None, modes.DEFAULT_MODE):
        label += f" ({run['mode']})"
    return label


def is_reference_pair(run: dict) -> bool:
    """Native PyTorch vs Keras on TensorFlow, both in the default mode: the pairing the
    equivalence verdict is about."""
    return implementation_label(run) in FRAMEWORKS


def safe_name(name: str) -> str:
    """A file-name-safe form of an experiment name, unique per name."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "experiment"
    if cleaned != name:
        cleaned = f"{cleaned[:40]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return cleaned


def run_path(out: pathlib.Path, experiment: str, variant: str, seed: int) -> pathlib.Path:
    return out / "runs" / safe_name(experiment) / f"{variant}-seed{seed}.json"


def finite_or_none(value):
    """`value` with every NaN/inf float replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite_or_none(item) for item in value]
    return value


def write_json_atomic(path: pathlib.Path, payload) -> None:
    """Write JSON so that readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "w") as handle:
            # Strict JSON: NaN/inf are not JSON; writers turn them into null first.
            json.dump(payload, handle, indent=1, sort_keys=True, allow_nan=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_json(path: pathlib.Path):
    with open(path) as handle:
        return json.load(handle)


def is_done(path: pathlib.Path, spec_hash: str) -> bool:
    """True when a finished result for this exact spec exists (rerun skips it)."""
    try:
        result = read_json(path)
    except (OSError, ValueError):
        return False
    return result.get("spec_hash") == spec_hash and result.get("status") == "ok"


def load_runs(out: pathlib.Path) -> list[dict]:
    """Every result file under OUT/runs, sorted by experiment, framework, seed."""
    runs = []
    for path in sorted((out / "runs").glob("*/*.json")):
        try:
            runs.append(read_json(path))
        except (OSError, ValueError):
            continue  # cannot happen with atomic writes; never let one file hide the rest
    return sorted(runs, key=lambda r: (r["experiment"], r["framework"], r["seed"]))
