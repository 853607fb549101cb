"""The regression nets' step-by-step agreement, for the report.

Stage: report. Per experiment and seed: each framework against the NumPy reference
(recorded by the run itself), torch against keras step by step, and whether both
followed the same depths. The tolerances are `ParitySpec`'s regression fields.
"""

from __future__ import annotations

from compare.run.regression import compare_losses


def agreement(runs: list[dict]) -> list[dict]:
    """Per regression experiment and seed: each framework against the NumPy reference,
    torch against keras step by step, and whether both followed the same depths."""
    by_key: dict[tuple[str, int], dict[str, dict]] = {}
    for run in runs:
        if run.get("status") == "ok" and "regression" in run:
            by_key.setdefault((run["experiment"], run["seed"]), {})[run["framework"]] = run
    rows = []
    for (experiment, seed), sides in sorted(by_key.items()):
        row = {"experiment": experiment, "seed": seed, "steps": None}
        for framework, run in sides.items():
            row[f"{framework}_final_loss"] = run.get("final_loss")
            row[f"{framework}_vs_numpy"] = run["regression"].get("max_relative_difference")
            row["steps"] = len(run["epochs"])
        if {"torch", "keras"} <= set(sides):
            torch_run, keras_run = sides["torch"], sides["keras"]
            losses = [[e["train_loss"] for e in r["epochs"]] for r in (keras_run, torch_run)]
            cross = compare_losses(*losses)
            row.update(
                torch_vs_keras=cross["max_relative_difference"],
                compared_steps=cross["compared_steps"],
                agrees=cross["agrees"],
                same_depths=torch_run["regression"]["depths"] == keras_run["regression"]["depths"],
            )
        rows.append(row)
    return rows
