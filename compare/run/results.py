"""Run result files: where they live, whether one is finished, reading them all.

Stage: run. One JSON file per (experiment, implementation, seed) under `OUT/runs/`,
written atomically (`compare.files`); what a result holds is `compare.run.protocol`.
"""

from __future__ import annotations

import hashlib
import pathlib
import re

from compare import files


def safe_name(name: str) -> str:
    """A file-name-safe form of an experiment name, unique per name."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "experiment"
    if cleaned != name:
        cleaned = f"{cleaned[:40]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return cleaned


def run_path(out: pathlib.Path, experiment: str, implementation: str, seed: int) -> pathlib.Path:
    """`implementation` is its one spelling (`compare.spec.identity`)."""
    return out / "runs" / safe_name(experiment) / f"{implementation}-seed{seed}.json"


def is_done(path: pathlib.Path, spec_hash: str) -> bool:
    """True when a finished result for this exact spec exists (rerun skips it)."""
    try:
        result = files.read_json(path)
    except (OSError, ValueError):
        return False
    return result.get("spec_hash") == spec_hash and result.get("status") == "ok"


def load_runs(out: pathlib.Path) -> list[dict]:
    """Every result file under OUT/runs, sorted by experiment, framework, seed."""
    runs = []
    for path in sorted((out / "runs").glob("*/*.json")):
        try:
            runs.append(files.read_json(path))
        except (OSError, ValueError):
            continue  # cannot happen with atomic writes; never let one file hide the rest
    return sorted(runs, key=lambda r: (r["experiment"], r["framework"], r["seed"]))
