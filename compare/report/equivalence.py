"""Are the two frameworks' test accuracies equivalent? A TOST verdict per experiment.

Stage: report.

For each experiment, the test accuracies of its finished seeds (one run per seed and
framework) are compared with statsmodels' two one-sided tests (Welch, unequal
variances) against the study's margin, +-`equivalence_margin` (a fraction: 0.01 = one
percentage point). `OUT/equivalence.json` holds `verdicts`, one row per experiment:

- experiment; n_torch, n_keras: finished seeds per framework;
- mean_torch, mean_keras: mean test accuracy; difference = mean_torch - mean_keras;
- ci_low, ci_high: the (1 - 2 alpha) = 90 % Welch interval of the difference, the one
  TOST puts inside the margin (null when a framework has fewer than 2 seeds);
- margin; p_value: TOST p-value of "the difference lies outside +-margin";
- verdict: "equivalent" (p_value < alpha), "different" (the whole interval lies
  outside the margin), "inconclusive" (neither), or "inconclusive (n < 5)" when a
  framework has fewer than EQUIVALENCE_MIN_SEEDS seeds, whatever the numbers say.
"""

from __future__ import annotations

import numpy as np
from statsmodels.stats import weightstats

from compare.spec.identity import Implementation
from compare.spec.schema import EQUIVALENCE_ALPHA, EQUIVALENCE_MIN_SEEDS

SCHEMA = "keras-vs-pytorch/equivalence/v1"


def _number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def verdict(experiment: str, torch_accuracy, keras_accuracy, margin: float) -> dict:
    """One row: TOST of mean(torch) - mean(keras) within +-margin, with its interval."""
    torch_accuracy = np.asarray(torch_accuracy, dtype=float)
    keras_accuracy = np.asarray(keras_accuracy, dtype=float)
    n_torch, n_keras = len(torch_accuracy), len(keras_accuracy)
    mean_torch = torch_accuracy.mean() if n_torch else np.nan
    mean_keras = keras_accuracy.mean() if n_keras else np.nan
    difference = mean_torch - mean_keras
    ci_low = ci_high = p_value = np.nan
    if n_torch >= 2 and n_keras >= 2:
        if torch_accuracy.std() == 0 and keras_accuracy.std() == 0:
            # No spread at all (t is undefined): the difference is known exactly.
            ci_low = ci_high = difference
            p_value = 0.0 if abs(difference) < margin else 1.0
        else:
            p_value, _lower, _upper = weightstats.ttost_ind(
                torch_accuracy, keras_accuracy, -margin, margin, usevar="unequal"
            )
            compared = weightstats.CompareMeans.from_data(torch_accuracy, keras_accuracy)
            ci_low, ci_high = compared.tconfint_diff(alpha=2 * EQUIVALENCE_ALPHA, usevar="unequal")
    if min(n_torch, n_keras) < EQUIVALENCE_MIN_SEEDS:
        outcome = f"inconclusive (n < {EQUIVALENCE_MIN_SEEDS})"
    elif p_value < EQUIVALENCE_ALPHA:
        outcome = "equivalent"
    elif ci_low > margin or ci_high < -margin:
        outcome = "different"
    else:
        outcome = "inconclusive"
    return {
        "experiment": experiment,
        "n_torch": n_torch,
        "n_keras": n_keras,
        "mean_torch": _number(mean_torch),
        "mean_keras": _number(mean_keras),
        "difference": _number(difference),
        "ci_low": _number(ci_low),
        "ci_high": _number(ci_high),
        "margin": margin,
        "p_value": _number(p_value),
        "verdict": outcome,
    }


def verdicts(runs: list[dict], margin: float) -> list[dict]:
    """One row per experiment, in order of appearance, from finished (`ok`) run results."""
    accuracies: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        by_framework = accuracies.setdefault(run["experiment"], {"torch": [], "keras": []})
        if (
            run.get("status") == "ok"
            and run["framework"] in by_framework
            and Implementation.of(run).is_reference
        ):
            by_framework[run["framework"]].append(run["test_accuracy"])
    return [
        verdict(experiment, values["torch"], values["keras"], margin)
        for experiment, values in accuracies.items()
    ]


def analysis(runs: list[dict], margin: float) -> dict:
    """The equivalence analysis of a study's current runs (OUT/equivalence.json)."""
    return {
        "schema": SCHEMA,
        "alpha": EQUIVALENCE_ALPHA,
        "min_seeds": EQUIVALENCE_MIN_SEEDS,
        "margin": margin,
        "verdicts": verdicts(runs, margin),
    }
