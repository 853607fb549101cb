"""The faithful and ablation studies' tables: published vs measured, and the ladder.

Stage: report. Published figures come from `OUT/published.json` (written by the runner
from `compare.spec.published.PUBLISHED`); measured ones from the run results. Both
tables are pandas frames that the report renders and that tests check; nothing here is
typed in.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from compare.report import tables


def _measured(run: dict, metric: str, epoch: int | None):
    """A run's value of `metric` at `epoch` (None: the end of training)."""
    if epoch is None:
        return run.get(metric)
    epochs = run.get("epochs", [])
    if epoch > len(epochs):
        return None
    return epochs[epoch - 1].get(metric)


def published_vs_measured(published: dict, runs: list[dict]) -> pd.DataFrame:
    """One row per published figure: the figure, and the measured mean over seeds with
    its 95% interval (columns measured_*). "speed" claims get the measured ratio of
    torch's to keras's steady epoch seconds instead."""
    ok = [r for r in runs if r.get("status") == "ok"]
    rows = []
    for experiment, entry in published.items():
        mine = [r for r in ok if r["experiment"] == experiment]
        for figure in entry["figures"]:
            row = {
                "experiment": experiment,
                "dataset": entry.get("dataset"),
                "source": entry.get("source"),
                **figure,
                "seeds": 0,
                "measured_mean": None,
                "measured_low": None,
                "measured_high": None,
            }
            if figure["metric"] == "speed":
                row.update(_speed_ratio(mine))
            else:
                values = [
                    _measured(r, figure["metric"], figure["epoch"])
                    for r in mine
                    if r["framework"] == figure["framework"]
                ]
                values = [v for v in values if v is not None]
                if values:
                    mean, low, high = tables.mean_ci(values)
                    row.update(
                        seeds=len(values), measured_mean=mean, measured_low=low, measured_high=high
                    )
            rows.append(row)
    # object dtype: epochs stay integers (or None) rather than becoming floats.
    return pd.DataFrame(rows, dtype=object)


def _speed_ratio(runs: list[dict]) -> dict:
    """Median steady epoch seconds, torch over keras (> 1: keras is faster)."""
    seconds = {
        framework: [
            (r.get("timing") or {}).get("steady_epoch_seconds")
            for r in runs
            if r["framework"] == framework
        ]
        for framework in ("torch", "keras")
    }
    seconds = {k: [v for v in vs if v is not None] for k, vs in seconds.items()}
    if not seconds["torch"] or not seconds["keras"]:
        return {}
    ratio = float(np.median(seconds["torch"]) / np.median(seconds["keras"]))
    return {
        "metric": "speed (torch / keras steady epoch seconds)",
        "seeds": min(len(seconds["torch"]), len(seconds["keras"])),
        "measured_mean": ratio,
    }


def ladder(rungs: list[tuple[str, str | None]], runs: list[dict]) -> pd.DataFrame:
    """The ablation ladder: per rung (experiment, the difference it removed), both
    frameworks' mean test accuracy and median steady epoch seconds, the gaps
    (torch - keras), and how much of the first rung's gap each rung closed.

    Rungs without results on both sides are left out.
    """
    summary = tables.summary_frame(tables.runs_frame(runs))
    if summary.empty:
        return pd.DataFrame()
    plain = summary[summary["implementation"] == summary["framework"]]
    rows = []
    for experiment, removed in rungs:
        sides = plain[plain["experiment"] == experiment].set_index("framework")
        if not {"torch", "keras"} <= set(sides.index):
            continue
        torch_side, keras_side = sides.loc["torch"], sides.loc["keras"]
        rows.append(
            {
                "experiment": experiment,
                "removed": removed,
                "seeds": int(min(torch_side["seeds"], keras_side["seeds"])),
                "torch_accuracy": torch_side["test_accuracy_mean"],
                "keras_accuracy": keras_side["test_accuracy_mean"],
                "accuracy_gap": torch_side["test_accuracy_mean"] - keras_side["test_accuracy_mean"],
                "torch_epoch_seconds": torch_side["steady_epoch_seconds"],
                "keras_epoch_seconds": keras_side["steady_epoch_seconds"],
                "speed_gap_seconds": torch_side["steady_epoch_seconds"]
                - keras_side["steady_epoch_seconds"],
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    for gap in ("accuracy_gap", "speed_gap_seconds"):
        closed = -frame[gap].diff()  # the previous rung's gap minus this one's
        frame[f"{gap}_closed"] = closed
        first = frame[gap].iloc[0]
        frame[f"{gap}_closed_share"] = closed / first if first else np.nan
    return frame
