"""Report figures (seaborn/matplotlib), returned as PNG bytes for embedding."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

PALETTE = {"torch": "#ee4c2c", "keras": "#1f77b4"}


def to_png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def curves(epochs: pd.DataFrame, experiment: str) -> bytes:
    """Train/validation loss and validation accuracy per epoch, both frameworks,
    with a band over seeds (seaborn's 95% interval)."""
    frame = epochs[epochs["experiment"] == experiment]
    long = frame.melt(
        id_vars=["framework", "seed", "epoch"],
        value_vars=["train_loss", "val_loss", "val_accuracy"],
        var_name="metric",
    )
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
            hue="framework",
            palette=PALETTE,
            errorbar=("ci", 95),
            ax=axis,
            marker="o",
            markersize=3,
        )
        axis.set_title(title)
        axis.set_ylabel("")
    figure.tight_layout()
    return to_png(figure)


def epoch_times(epochs: pd.DataFrame, experiment: str) -> bytes:
    """Distribution of steady-state epoch seconds (first epoch excluded)."""
    frame = epochs[(epochs["experiment"] == experiment) & (epochs["epoch"] > 1)]
    figure, axis = plt.subplots(figsize=(5, 3))
    if frame.empty:
        axis.text(0.5, 0.5, "only one epoch: no steady state", ha="center", va="center")
        axis.set_axis_off()
    else:
        sns.boxplot(
            data=frame, x="framework", y="epoch_seconds", hue="framework", palette=PALETTE, ax=axis
        )
        axis.set_ylabel("steady epoch seconds")
    figure.tight_layout()
    return to_png(figure)
