"""Result files -> tidy pandas tables, and the per-model summaries the report shows.

`runs_frame` has one row per run, `epochs_frame` one row per run and epoch (this is
`results.csv`). Statistics use scipy, not hand-written formulas.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

RUN_COLUMNS = [
    "experiment",
    "framework",
    "seed",
    "status",
    "reason",
    "profile",
    "device",
    "threads",
    "spec_hash",
    "split_manifest_hash",
    "parameter_count",
    "test_loss",
    "test_accuracy",
    "first_epoch_seconds",
    "steady_epoch_seconds",
    "steady_epoch_min_seconds",
    "steady_epoch_max_seconds",
    "samples_per_second",
    "time_to_target_seconds",
    "wall_seconds",
]
EPOCH_COLUMNS = ["epoch", "train_loss", "val_loss", "val_accuracy", "epoch_seconds"]


def runs_frame(runs: list[dict]) -> pd.DataFrame:
    rows = []
    for run in runs:
        row = {key: run.get(key) for key in RUN_COLUMNS}
        row.update(run.get("timing") or {})
        rows.append({key: row.get(key) for key in RUN_COLUMNS})
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def epochs_frame(runs: list[dict]) -> pd.DataFrame:
    """Tidy: one row per (run, epoch); run-level columns repeated for filtering."""
    keys = ["experiment", "framework", "seed", "status", "spec_hash", "split_manifest_hash"]
    rows = []
    for run in runs:
        for epoch in run.get("epochs", []):
            rows.append(
                {**{k: run.get(k) for k in keys}, **{k: epoch.get(k) for k in EPOCH_COLUMNS}}
            )
    return pd.DataFrame(rows, columns=keys + EPOCH_COLUMNS)


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval; the interval is the mean alone for n < 2."""
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if len(values) == 0:
        return (np.nan, np.nan, np.nan)
    mean = float(values.mean())
    if len(values) < 2:
        return (mean, mean, mean)
    low, high = stats.t.interval(confidence, len(values) - 1, loc=mean, scale=stats.sem(values))
    if not np.isfinite(low):  # identical values: zero spread
        low = high = mean
    return (mean, float(low), float(high))


def summary_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (experiment, framework) over successful seeds."""
    ok = runs[runs["status"] == "ok"]
    rows = []
    for (experiment, framework), group in ok.groupby(["experiment", "framework"], sort=False):
        accuracy, low, high = mean_ci(group["test_accuracy"])
        rows.append(
            {
                "experiment": experiment,
                "framework": framework,
                "seeds": len(group),
                "test_accuracy_mean": accuracy,
                "test_accuracy_std": float(group["test_accuracy"].std(ddof=1))
                if len(group) > 1
                else 0.0,
                "test_accuracy_ci_low": low,
                "test_accuracy_ci_high": high,
                "test_loss_mean": float(group["test_loss"].mean()),
                "steady_epoch_seconds": float(group["steady_epoch_seconds"].median())
                if group["steady_epoch_seconds"].notna().any()
                else np.nan,
                "first_epoch_seconds": float(group["first_epoch_seconds"].median()),
                "samples_per_second": float(group["samples_per_second"].median())
                if group["samples_per_second"].notna().any()
                else np.nan,
                "time_to_target_seconds": float(group["time_to_target_seconds"].median())
                if group["time_to_target_seconds"].notna().any()
                else np.nan,
                "parameter_count": int(group["parameter_count"].iloc[0]),
            }
        )
    return pd.DataFrame(rows)
