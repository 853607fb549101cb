"""The faithful and ablation studies' tables: published vs measured, and the ladder.

Stage: report. Published figures come from `OUT/published.json` (written by the runner
from `compare.spec.published.PUBLISHED`); measured ones from the run results. Both
tables are pandas frames that the report renders and that tests check; nothing here is
typed in.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

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
    its 95% interval (columns measured_*), the seeds' range, and where the published
    figure falls among the seeds (`published_percentile`: the share of seeds that
    measured less or the same, in %). "speed" claims get the measured ratio of
    torch's to keras's steady epoch seconds instead (exclusive runs only)."""
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
                "measured_min": None,
                "measured_max": None,
                "published_percentile": None,
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
                        seeds=len(values),
                        measured_mean=mean,
                        measured_low=low,
                        measured_high=high,
                        measured_min=min(values),
                        measured_max=max(values),
                    )
                    if isinstance(figure.get("value"), int | float):
                        row["published_percentile"] = float(
                            stats.percentileofscore(values, figure["value"], kind="weak")
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
            if r["framework"] == framework and tables.is_timed(r)
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


def logit_relu_spread(runs: list[dict]) -> pd.DataFrame:
    """What drives the seed-to-seed spread of a model with a ReLU on its logits: per
    (experiment, implementation), each seed's dead logits at the start and at the end
    of training (a class whose logit is zero on every training image) against its test
    accuracy, with Spearman's rank correlation for each; and the spread (std over seeds)
    of every experiment of the same name family, so the same model without that ReLU
    shows whether the spread goes."""
    ok = [r for r in runs if r.get("status") == "ok" and r.get("test_accuracy") is not None]
    with_relu = {r["experiment"] for r in ok if "dead_logits_at_init" in r}
    family = {r["experiment"] for r in ok if any(r["experiment"].startswith(e) for e in with_relu)}
    rows = []
    for experiment in sorted(family):
        for impl in sorted({tables.implementation(r) for r in ok if r["experiment"] == experiment}):
            mine = sorted(
                (
                    r
                    for r in ok
                    if r["experiment"] == experiment and tables.implementation(r) == impl
                ),
                key=lambda r: r["seed"],
            )
            accuracy = [r["test_accuracy"] for r in mine]
            dead = [r.get("dead_logits_at_init") for r in mine]
            dead_end = [r.get("dead_logits_at_end") for r in mine]
            row = {
                "experiment": experiment,
                "implementation": impl,
                "seeds": len(mine),
                "accuracy_std": float(np.std(accuracy, ddof=1)) if len(mine) > 1 else None,
                "accuracy_min": min(accuracy),
                "accuracy_max": max(accuracy),
                "dead_logits": dead if experiment in with_relu else None,
                "dead_logits_at_end": dead_end if experiment in with_relu else None,
                "spearman_rho": None,
                "spearman_p": None,
                "spearman_rho_end": None,
                "spearman_p_end": None,
            }
            for counts, suffix in ((dead, ""), (dead_end, "_end")):
                # Runs from before a count was recorded have none: left out of the test.
                pairs = [(d, a) for d, a in zip(counts, accuracy, strict=True) if d is not None]
                # Two seeds give no p-value, constant counts or accuracies no rho (NaN).
                if experiment in with_relu and len(pairs) >= 3 and len({d for d, _ in pairs}) > 1:
                    rho, p_value = stats.spearmanr(*zip(*pairs, strict=True))
                    if np.isfinite(rho) and np.isfinite(p_value):
                        row[f"spearman_rho{suffix}"] = float(rho)
                        row[f"spearman_p{suffix}"] = float(p_value)
            rows.append(row)
    return pd.DataFrame(rows, dtype=object)
