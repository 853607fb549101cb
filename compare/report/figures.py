"""Report figures (seaborn/matplotlib), returned as PNG bytes for embedding.

Stage: report.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from compare.data.fashion_mnist import CLASS_NAMES  # noqa: E402

FRAMEWORK_COLORS = {"torch": "#ee4c2c", "keras": "#1f77b4"}


def palette(implementations) -> dict:
    """Framework colours for the two plain implementations, seaborn's for the rest."""
    names = sorted(set(implementations))
    extra = iter(sns.color_palette("tab10", len(names) + 2)[2:])
    return {name: FRAMEWORK_COLORS.get(name) or next(extra) for name in names}


def to_png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def curves(epochs: pd.DataFrame) -> bytes:
    """Train/validation loss and validation accuracy per epoch, every implementation on
    one chart, with a band over seeds (seaborn's 95% interval)."""
    long = epochs.melt(
        id_vars=["implementation", "seed", "epoch"],
        value_vars=["train_loss", "val_loss", "val_accuracy"],
        var_name="metric",
    )
    colors = palette(epochs["implementation"])
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    titles = {
        "train_loss": "train loss",
        "val_loss": "validation loss",
        "val_accuracy": "validation accuracy",
    }
    for axis, (metric, title) in zip(axes, titles.items(), strict=True):
        sns.lineplot(
            data=long[long["metric"] == metric],
            x="epoch",
            y="value",
            hue="implementation",
            palette=colors,
            errorbar=("ci", 95),
            ax=axis,
            marker="o",
            markersize=3,
        )
        axis.set_title(title)
        axis.set_ylabel("")
    figure.tight_layout()
    return to_png(figure)


def loss_per_step(epochs: pd.DataFrame) -> bytes:
    """Training loss per full-batch step on a log scale (the regression nets' loss falls
    by many decades), every implementation on one chart, a band over seeds."""
    figure, axis = plt.subplots(figsize=(6, 3.4))
    sns.lineplot(
        data=epochs,
        x="epoch",
        y="train_loss",
        hue="implementation",
        palette=palette(epochs["implementation"]),
        errorbar=("ci", 95),
        ax=axis,
    )
    axis.set_yscale("log")
    axis.set_xlabel("step")
    axis.set_ylabel("sum of squared errors")
    figure.tight_layout()
    return to_png(figure)


def epoch_times(epochs: pd.DataFrame) -> bytes:
    """Distribution of steady-state epoch seconds (the first epoch is excluded)."""
    frame = epochs[epochs["epoch"] > 1]
    figure, axis = plt.subplots(figsize=(5, 3))
    if frame.empty:
        axis.text(0.5, 0.5, "one epoch only: no steady state", ha="center", va="center")
        axis.set_axis_off()
    else:
        sns.boxplot(
            data=frame,
            x="implementation",
            y="epoch_seconds",
            hue="implementation",
            palette=palette(frame["implementation"]),
            ax=axis,
        )
        axis.set_ylabel("steady epoch seconds")
        axis.set_xlabel("")
    figure.tight_layout()
    return to_png(figure)


def confusion_matrices(matrices: dict[str, np.ndarray]) -> bytes:
    """Row-normalised confusion matrices side by side."""
    figure, axes = plt.subplots(1, len(matrices), figsize=(5.2 * len(matrices), 4.6))
    axes = np.atleast_1d(axes)
    for axis, (impl, matrix) in zip(axes, matrices.items(), strict=True):
        sns.heatmap(
            matrix,
            ax=axis,
            vmin=0,
            vmax=1,
            cmap="Blues",
            annot=True,
            fmt=".2f",
            annot_kws={"size": 6},
            cbar=False,
            square=True,
            xticklabels=CLASS_NAMES,
            yticklabels=CLASS_NAMES,
        )
        axis.set_title(impl)
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        axis.tick_params(labelsize=7)
    figure.tight_layout()
    return to_png(figure)


def thread_scaling(sweep: pd.DataFrame) -> bytes:
    """Steady epoch seconds against the pinned thread count, per implementation."""
    figure, axis = plt.subplots(figsize=(5, 3.2))
    sns.lineplot(
        data=sweep,
        x="threads",
        y="steady_epoch_seconds",
        hue="implementation",
        palette=palette(sweep["implementation"]),
        marker="o",
        ax=axis,
    )
    axis.set_xticks(sorted(sweep["threads"].unique()))
    axis.set_ylabel("steady epoch seconds")
    axis.set_ylim(bottom=0)
    figure.tight_layout()
    return to_png(figure)


def forest(verdicts: list[dict], margin: float) -> bytes:
    """Forest plot: per model, the test-accuracy difference torch - keras (pp) with its
    90 % interval, against the +-margin band: the picture of an equivalence test (an
    interval inside the band is equivalence, one wholly outside it is a difference)."""
    rows = [v for v in verdicts if v.get("difference") is not None]
    figure, axis = plt.subplots(figsize=(8, 0.42 * len(rows) + 1.2))
    axis.axvspan(-100 * margin, 100 * margin, color="#2ca02c", alpha=0.15, label="margin")
    axis.axvline(0, color="#555", linewidth=0.8)
    colors = {"equivalent": "#1b7a2e", "different": "#b00020"}
    for position, row in enumerate(rows):
        color = colors.get(row["verdict"], "#777")
        center = 100 * row["difference"]
        if row.get("ci_low") is not None:
            low, high = 100 * row["ci_low"], 100 * row["ci_high"]
            axis.plot([low, high], [position, position], color=color, linewidth=2.2)
        axis.plot(center, position, "o", color=color, markersize=6)
    axis.set_yticks(range(len(rows)), [row["experiment"] for row in rows])
    axis.invert_yaxis()
    axis.set_xlabel("test accuracy difference, torch - keras (percentage points), 90 % interval")
    axis.legend(loc="lower right", fontsize=8)
    axis.grid(axis="x", alpha=0.3)
    return to_png(figure)
