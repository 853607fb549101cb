"""Result files -> tidy pandas tables, and the per-model summaries the report shows.

Stage: report.

`runs_frame` has one row per run, `epochs_frame` one row per run and epoch (this is
`results.csv`). Statistics use scipy and scikit-learn, not hand-written formulas.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from sklearn import metrics as skmetrics

from compare.data.fashion_mnist import CLASS_NAMES
from compare.spec.catalog import HEADLINE
from compare.spec.identity import Implementation

RUN_COLUMNS = [
    "experiment",
    "implementation",
    "framework",
    "keras_backend",
    "mode",
    "seed",
    "status",
    "reason",
    "failed_epoch",
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
    "steady_epoch_spread",
    "samples_per_second",
    "time_to_target_seconds",
    "peak_memory_mb",
    "wall_seconds",
    "exclusive",
    "worker_run_index",
]
EPOCH_COLUMNS = ["epoch", "train_loss", "val_loss", "val_accuracy", "epoch_seconds"]
EPOCH_KEYS = [
    "experiment",
    "implementation",
    "framework",
    "seed",
    "status",
    "spec_hash",
    "split_manifest_hash",
    "exclusive",
]


def implementation(run: dict) -> str:
    """The label a run is compared under: framework, Keras backend, execution mode."""
    return Implementation.of(run).name


def _run_row(run: dict) -> dict:
    row = {key: run.get(key) for key in RUN_COLUMNS}
    row.update({k: v for k, v in (run.get("timing") or {}).items() if k in RUN_COLUMNS})
    row["implementation"] = implementation(run)
    row["keras_backend"] = run.get("keras_backend") or (run.get("runtime") or {}).get(
        "keras_backend"
    )
    return row


def runs_frame(runs: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([_run_row(run) for run in runs], columns=RUN_COLUMNS)


def epochs_frame(runs: list[dict]) -> pd.DataFrame:
    """Tidy: one row per (run, epoch); run-level columns repeated for filtering."""
    rows = []
    for run in runs:
        head = {key: run.get(key) for key in EPOCH_KEYS}
        head["implementation"] = implementation(run)
        for epoch in run.get("epochs", []):
            rows.append({**head, **{key: epoch.get(key) for key in EPOCH_COLUMNS}})
    return pd.DataFrame(rows, columns=EPOCH_KEYS + EPOCH_COLUMNS)


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval; the interval is the mean alone for n < 2."""
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if len(values) == 0:
        return (np.nan, np.nan, np.nan)
    mean = float(values.mean())
    if len(values) < 2 or np.ptp(values) == 0:
        return (mean, mean, mean)
    low, high = stats.t.interval(confidence, len(values) - 1, loc=mean, scale=stats.sem(values))
    return (mean, float(low), float(high))


def experiment_order(names, planned: list[str] | None = None) -> list[str]:
    """The headline MLP first, then the study's own order."""
    order = list(dict.fromkeys([*(planned or []), *names]))
    order = [name for name in order if name in set(names)]
    return sorted(order, key=lambda name: name != HEADLINE)


def _median(series: pd.Series) -> float:
    series = series.dropna()
    return float(series.median()) if len(series) else np.nan


# The rule the report's timing follows, shown with the figures.
TIMING_RULE = (
    "Timing is taken only from runs that had the machine to themselves (the runner ran "
    "them while no other run of the study ran: `exclusive` in the result)."
)


def is_timed(run: dict) -> bool:
    """Whether a run's timing may be reported (`TIMING_RULE`); results from before #15
    ran one at a time: they count as exclusive."""
    value = run.get("exclusive")
    return True if value is None or pd.isna(value) else bool(value)


def timed(group: pd.DataFrame) -> pd.DataFrame:
    """The rows of `group` (a runs or epochs frame) whose timing may be reported."""
    return group[[is_timed({"exclusive": value}) for value in group["exclusive"]]]


def summary_frame(runs: pd.DataFrame, order: list[str] | None = None) -> pd.DataFrame:
    """Per (experiment, implementation) over successful seeds, headline first; timing
    over the exclusive runs only (`TIMING_RULE`)."""
    ok = runs[runs["status"] == "ok"]
    rows = []
    for (experiment, impl), group in ok.groupby(["experiment", "implementation"], sort=False):
        accuracy, low, high = mean_ci(group["test_accuracy"])
        alone = timed(group)
        rows.append(
            {
                "experiment": experiment,
                "implementation": impl,
                "framework": group["framework"].iloc[0],
                "seeds": len(group),
                "test_accuracy_mean": accuracy,
                "test_accuracy_std": float(group["test_accuracy"].std(ddof=1))
                if len(group) > 1
                else 0.0,
                "test_accuracy_ci_low": low,
                "test_accuracy_ci_high": high,
                "test_loss_mean": float(group["test_loss"].mean()),
                "timed_runs": len(alone),
                "first_epoch_seconds": _median(alone["first_epoch_seconds"]),
                "steady_epoch_seconds": _median(alone["steady_epoch_seconds"]),
                "steady_epoch_spread": _median(alone["steady_epoch_spread"]),
                "samples_per_second": _median(alone["samples_per_second"]),
                "time_to_target_seconds": _median(alone["time_to_target_seconds"]),
                "time_to_target_reached": int(alone["time_to_target_seconds"].notna().sum()),
                "parameter_count": int(group["parameter_count"].iloc[0]),
                "peak_memory_mb": _median(group["peak_memory_mb"]),
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    rank = {name: i for i, name in enumerate(experiment_order(frame["experiment"], order))}
    frame["_rank"] = frame["experiment"].map(rank)
    # torch first within a model: it is the reference the differences are taken against.
    frame["_impl"] = frame["framework"] != "torch"
    frame = frame.sort_values(["_rank", "_impl", "implementation"], kind="stable")
    return frame.drop(columns=["_rank", "_impl"]).reset_index(drop=True)


def confusion(runs: list[dict]) -> np.ndarray:
    """Row-normalised confusion matrix of the test set, pooled over seeds."""
    labels = np.concatenate([r["test_labels"] for r in runs])
    predictions = np.concatenate([r["test_predictions"] for r in runs])
    return skmetrics.confusion_matrix(
        labels, predictions, labels=range(len(CLASS_NAMES)), normalize="true"
    )


def per_class_accuracy(runs_by_impl: dict[str, list[dict]]) -> pd.DataFrame:
    """Per-class test accuracy (= recall), mean over seeds, one column per implementation."""
    columns = {}
    for impl, runs in runs_by_impl.items():
        recalls = [
            skmetrics.recall_score(
                r["test_labels"],
                r["test_predictions"],
                labels=range(len(CLASS_NAMES)),
                average=None,
                zero_division=0.0,
            )
            for r in runs
        ]
        columns[impl] = np.mean(recalls, axis=0)
    return pd.DataFrame(columns, index=list(CLASS_NAMES))


def missing_runs(planned: list[dict], runs: list[dict]) -> list[dict]:
    """Planned runs without a result file (e.g. the study was interrupted)."""

    def key(entry):
        variant = Implementation.of(entry).name
        return (entry["experiment"], variant, entry["seed"])

    have = {key(r) for r in runs}
    return [p for p in planned if key(p) not in have]
