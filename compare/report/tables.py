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
    "node_type",
    "hostname",
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
    "node_type",
]


def implementation(run: dict) -> str:
    """The label a run is compared under: framework, Keras backend, execution mode."""
    return Implementation.of(run).name


def _node(run: dict) -> dict:
    """The machine a run ran on (`node`; results from before #16: their environment)."""
    return run.get("node") or run.get("environment") or {}


def node_type(run: dict) -> str:
    """The kind of machine a run ran on: CPU model, cores and GPU. Timing is compared
    within one kind."""
    node = _node(run)
    text = f"{node.get('cpu_model') or 'unknown CPU'}, {node.get('cpu_count') or '?'} cores"
    gpu = run.get("gpu")
    return f"{text}, {gpu.get('name') or 'unknown GPU'}" if gpu else text


def _run_row(run: dict) -> dict:
    row = {key: run.get(key) for key in RUN_COLUMNS}
    row["node_type"] = node_type(run)
    row["hostname"] = _node(run).get("hostname")
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
        head["node_type"] = node_type(run)
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
    "them while no other run of the study ran on their node: `exclusive` in the result), "
    "and only from one kind of node (CPU model, cores, GPU): epoch times measured on "
    "different hardware are never compared."
)


def reference_node_type(runs: pd.DataFrame) -> str | None:
    """The node type the report's timing comes from: the one with the most timed ok runs
    (ties: the first by name); None when no run may be timed."""
    ok = runs[runs["status"] == "ok"]
    counts = timed(ok)["node_type"].value_counts()
    if counts.empty:
        return None
    return sorted(counts.index, key=lambda name: (-counts[name], name))[0]


def is_timed(run: dict) -> bool:
    """Whether a run's timing may be reported (`TIMING_RULE`); results from before #15
    ran one at a time: they count as exclusive."""
    value = run.get("exclusive")
    return True if value is None or pd.isna(value) else bool(value)


def timed(group: pd.DataFrame, node: str | None = None) -> pd.DataFrame:
    """The rows of `group` (a runs or epochs frame) whose timing may be reported: the
    exclusive ones, and with `node`, only those of that node type."""
    keep = [is_timed({"exclusive": value}) for value in group["exclusive"]]
    if node is not None:
        keep = [k and t == node for k, t in zip(keep, group["node_type"], strict=True)]
    return group[keep]


def summary_frame(
    runs: pd.DataFrame, order: list[str] | None = None, node: str | None = None
) -> pd.DataFrame:
    """Per (experiment, implementation) over successful seeds, headline first; timing
    over the exclusive runs of node type `node` (None: the reference) only (`TIMING_RULE`)."""
    ok = runs[runs["status"] == "ok"]
    node = node or reference_node_type(runs)
    rows = []
    for (experiment, impl), group in ok.groupby(["experiment", "implementation"], sort=False):
        accuracy, low, high = mean_ci(group["test_accuracy"])
        alone = timed(group, node)
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


def timing_by_node(runs: pd.DataFrame) -> pd.DataFrame:
    """Median epoch times per (experiment, implementation, node type), over the timed
    ok runs: what a study on mixed hardware measured on each kind of node. Empty when
    every timed run ran on one kind."""
    alone = timed(runs[runs["status"] == "ok"])
    if alone["node_type"].nunique() < 2:
        return pd.DataFrame()
    keys = ["experiment", "implementation", "node_type"]
    frame = alone.groupby(keys, sort=False).agg(
        timed_runs=("seed", "size"),
        hosts=("hostname", lambda names: ", ".join(sorted({n for n in names if n}))),
        first_epoch_seconds=("first_epoch_seconds", _median),
        steady_epoch_seconds=("steady_epoch_seconds", _median),
        samples_per_second=("samples_per_second", _median),
    )
    return frame.reset_index().sort_values(keys, kind="stable").reset_index(drop=True)


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
