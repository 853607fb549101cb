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
  framework has fewer than EQUIVALENCE_MIN_SEEDS seeds, whatever the numbers say;
- why: the verdict in words; seeds_needed: for an inconclusive verdict, the seeds per
  framework at which an interval of the observed spread would decide (it lies inside
  the margin, or outside it), if the observed difference held; null when the observed
  difference sits on the margin (no seed count decides it) or nothing is missing.

Regression nets have no accuracy: their verdict is step-by-step agreement
(`compare.run.regression.agreement`); `board` puts both kinds on one list, one line per model.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from statsmodels.stats import weightstats

from compare.run import regression
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
    interval = f"90 % interval [{100 * ci_low:+.2f}, {100 * ci_high:+.2f}] pp"
    bounds = f"±{100 * margin:.2f} pp"
    needed = None
    if min(n_torch, n_keras) < EQUIVALENCE_MIN_SEEDS:
        outcome = f"inconclusive (n < {EQUIVALENCE_MIN_SEEDS})"
        why = f"{min(n_torch, n_keras)} seeds on a side; the verdict needs {EQUIVALENCE_MIN_SEEDS}"
        needed = EQUIVALENCE_MIN_SEEDS
    elif p_value < EQUIVALENCE_ALPHA:
        outcome = "equivalent"
        why = f"{interval} inside the margin {bounds} (TOST p = {p_value:.3g})"
    elif ci_low > margin or ci_high < -margin:
        outcome = "different"
        why = f"{interval} entirely outside the margin {bounds}"
    else:
        outcome = "inconclusive"
        needed = seeds_needed(torch_accuracy, keras_accuracy, margin)
        why = f"{interval} crosses the margin {bounds}" + (
            f"; at this spread about {needed} seeds per framework would decide"
            if needed
            else "; the observed difference sits on the margin: more seeds will not decide"
        )
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
        "why": why,
        "seeds_needed": needed,
    }


def seeds_needed(torch_accuracy, keras_accuracy, margin: float, limit: int = 1000) -> int | None:
    """The seeds per framework at which the 90 % Welch interval around the observed
    difference, with the observed spreads, would lie inside +-margin (or outside it,
    when the observed difference lies outside); None when none up to `limit` would."""
    difference = abs(np.mean(torch_accuracy) - np.mean(keras_accuracy))
    variance = np.var(torch_accuracy, ddof=1) + np.var(keras_accuracy, ddof=1)
    room = abs(margin - difference)
    if room == 0:
        return None
    for n in range(2, limit + 1):
        half_width = stats.t.ppf(1 - EQUIVALENCE_ALPHA, 2 * n - 2) * np.sqrt(variance / n)
        if half_width < room:
            return n
    return None


def verdicts(runs: list[dict], margin: float) -> list[dict]:
    """One row per experiment, in order of appearance, from finished (`ok`) run results."""
    accuracies: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        if run.get("test_accuracy") is None and "regression" in run:
            continue  # a regression net: no accuracy (see `board`)
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


def regression_verdicts(agreement: list[dict]) -> list[dict]:
    """One row per regression net from its per-seed agreement rows: "agree" when every
    seed agreed step by step with torch (and each side with NumPy where it exists)."""
    by_experiment: dict[str, list[dict]] = {}
    for row in agreement:
        by_experiment.setdefault(row["experiment"], []).append(row)
    verdicts = []
    for experiment, rows in by_experiment.items():
        compared = [row for row in rows if row.get("agrees") is not None]
        failing = [row["seed"] for row in compared if regression.failed_checks(row)]
        if not compared:
            outcome, why = "not compared", "no seed ran on both frameworks"
        elif failing:
            outcome = "disagree"
            why = (
                f"seeds {failing} differ step by step beyond the tolerance (from each other, "
                "in depths, or from NumPy)"
            )
        else:
            worst = max(row["torch_vs_keras"] for row in compared)
            outcome = "agree"
            why = (
                f"{len(compared)} seeds, every step: largest relative loss gap {worst:.2g}, "
                "same depths"
            )
        verdicts.append(
            {"experiment": experiment, "kind": "regression", "verdict": outcome, "why": why}
        )
    return verdicts


def board(analysis_: dict, agreement: list[dict], parity_of) -> list[dict]:
    """The report's first table: one line per model, the classifiers' TOST verdicts and
    the regression nets' agreement, each with its parity status (`parity_of(name)`)."""
    rows = [{**row, "kind": "classifier"} for row in analysis_["verdicts"]]
    rows += regression_verdicts(agreement)
    for row in rows:
        row["parity"] = parity_of(row["experiment"])
    return rows
