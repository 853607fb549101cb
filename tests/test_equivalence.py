"""The TOST equivalence verdict: its three outcomes, its seed rule, and the file it writes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from compare import files
from compare.errors import UserError
from compare.report import equivalence
from compare.run import plan, results
from compare.spec import studies
from compare.spec.schema import EQUIVALENCE_MIN_SEEDS

RNG = np.random.default_rng(0)
MARGIN = 0.01


def accuracies(mean: float, spread: float, n: int = 6) -> np.ndarray:
    return mean + RNG.normal(0.0, spread, n)


def test_verdicts():
    close = equivalence.verdict("a", accuracies(0.850, 0.002), accuracies(0.851, 0.002), MARGIN)
    assert close["verdict"] == "equivalent" and close["p_value"] < 0.05
    assert -MARGIN < close["ci_low"] < close["difference"] < close["ci_high"] < MARGIN

    far = equivalence.verdict("b", accuracies(0.85, 0.002), accuracies(0.80, 0.002), MARGIN)
    assert far["verdict"] == "different" and far["ci_low"] > MARGIN

    noisy = equivalence.verdict("c", accuracies(0.85, 0.03), accuracies(0.85, 0.03), MARGIN)
    assert noisy["verdict"] == "inconclusive"


def test_fewer_than_five_seeds_is_never_equivalent():
    few = EQUIVALENCE_MIN_SEEDS - 1
    row = equivalence.verdict("a", [0.85] * few, [0.85] * few, MARGIN)
    assert row["verdict"] == "inconclusive (n < 5)" and row["difference"] == 0.0
    one = equivalence.verdict("b", [0.85], [], MARGIN)
    assert one["verdict"] == "inconclusive (n < 5)" and one["ci_low"] is None


def test_p_value_is_the_larger_of_two_one_sided_welch_tests():
    torch_accuracy, keras_accuracy = accuracies(0.850, 0.004), accuracies(0.846, 0.006)
    row = equivalence.verdict("a", torch_accuracy, keras_accuracy, MARGIN)
    # Independently, with scipy: H0 difference <= -margin, and H0 difference >= +margin.
    lower = stats.ttest_ind(
        torch_accuracy + MARGIN, keras_accuracy, equal_var=False, alternative="greater"
    ).pvalue
    upper = stats.ttest_ind(
        torch_accuracy - MARGIN, keras_accuracy, equal_var=False, alternative="less"
    ).pvalue
    assert row["p_value"] == pytest.approx(max(lower, upper), rel=1e-9)


def test_report_computes_equivalence_from_the_result_files(tmp_path):
    study = studies.select_models(studies.builtin_study("default"), ["mlp"])
    options = plan.Options(seeds=5, out=tmp_path, profile="quick")
    planned = plan.plan(study, options)
    for run in planned:
        accuracy = 0.85 + 0.001 * run.seed + (0.002 if run.framework == "torch" else 0.0)
        files.write_json_atomic(
            run.path(tmp_path),
            {
                "experiment": run.experiment.name,
                "framework": run.framework,
                "seed": run.seed,
                "status": "ok",
                "spec_hash": run.experiment.spec_hash(),
                "test_accuracy": accuracy,
            },
        )
    written = equivalence.analysis(results.load_runs(tmp_path), study.equivalence_margin)
    assert written["schema"] == equivalence.SCHEMA
    (row,) = written["verdicts"]
    assert row["experiment"] == "mlp" and row["n_torch"] == row["n_keras"] == 5
    assert row["difference"] == pytest.approx(0.002)
    assert row["verdict"] == "equivalent" and row["margin"] == 0.01


def test_study_file_margin(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text('equivalence_margin = 0.02\n[[experiment]]\nname = "a"\nbase = "mlp"\n')
    assert studies.load_study_file(path).equivalence_margin == 0.02
    path.write_text('equivalence_margin = 2\n[[experiment]]\nname = "a"\nbase = "mlp"\n')
    with pytest.raises(UserError, match="equivalence_margin must be in"):
        studies.load_study_file(path)


def test_seeds_needed_is_where_the_interval_would_decide():
    # Its own generator: this draw is inconclusive at 6 seeds (the module's RNG would
    # depend on which tests ran before).
    rng = np.random.default_rng(3)
    torch_accuracy, keras_accuracy = (
        0.850 + rng.normal(0, 0.008, 6),
        0.848 + rng.normal(0, 0.008, 6),
    )
    needed = equivalence.seeds_needed(torch_accuracy, keras_accuracy, MARGIN)
    assert needed is not None and needed > 2
    # At `needed` seeds a side, with these spreads, the 90 % half-width leaves the
    # observed difference inside the margin; one seed fewer, it does not.
    variance = np.var(torch_accuracy, ddof=1) + np.var(keras_accuracy, ddof=1)
    difference = abs(torch_accuracy.mean() - keras_accuracy.mean())

    def half_width(n):
        return stats.t.ppf(0.95, 2 * n - 2) * np.sqrt(variance / n)

    assert half_width(needed) < MARGIN - difference <= half_width(needed - 1)
    row = equivalence.verdict("a", torch_accuracy, keras_accuracy, MARGIN)
    assert row["verdict"] == "inconclusive"
    assert row["seeds_needed"] == needed and f"about {needed} seeds" in row["why"]


def test_regression_nets_get_an_agreement_verdict_not_an_accuracy_row():
    runs = [
        {"experiment": "two_layer_net", "framework": fw, "seed": 0, "status": "ok",
         "test_accuracy": None, "regression": {}, "mode": "tuned"}
        for fw in ("torch", "keras")
    ]  # fmt: skip
    assert equivalence.verdicts(runs, MARGIN) == []
    agreement = [
        {"experiment": "two_layer_net", "seed": s, "agrees": s != 1, "same_depths": True,
         "torch_vs_keras": 1e-6}
        for s in range(3)
    ]  # fmt: skip
    (row,) = equivalence.regression_verdicts(agreement)
    assert row["verdict"] == "disagree" and "[1]" in row["why"]
    (row,) = equivalence.regression_verdicts([{**a, "agrees": True} for a in agreement])
    assert row["verdict"] == "agree"


def test_a_regression_net_that_disagrees_fails_the_study_and_says_where():
    from compare.run import regression

    def run(framework, losses, depths=(0, 1, 2), vs_numpy=True):
        return {
            "experiment": "dynamic_net", "framework": framework, "seed": 3, "status": "ok",
            "epochs": [{"train_loss": loss} for loss in losses],
            "regression": {"depths": list(depths), "agrees": vs_numpy,
                           "max_relative_difference": 0.0 if vs_numpy else 0.5},
        }  # fmt: skip

    same = [run("torch", [4.0, 2.0, 1.0]), run("keras", [4.0, 2.0, 1.0])]
    assert regression.disagreements(regression.agreement(same)) == []
    for broken, check in (
        ([run("torch", [4.0, 2.0, 1.0]), run("keras", [4.0, 2.4, 1.0])], "agrees"),
        ([run("torch", [4.0, 2.0, 1.0]), run("keras", [4.0, 2.0, 1.0], (0, 2, 2))], "same_depths"),
        ([run("torch", [4.0, 2.0, 1.0], vs_numpy=False), same[1]], "torch_agrees_with_numpy"),
    ):
        rows = regression.agreement(broken)
        (line,) = regression.disagreements(rows)
        assert line.startswith("dynamic_net/seed3: regression agreement failed") and check in line
        (verdict,) = equivalence.regression_verdicts(rows)
        assert verdict["verdict"] == "disagree" and "[3]" in verdict["why"]
