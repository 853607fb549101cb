"""The report: partial results, escaping, and the page in a real headless Chromium."""

from __future__ import annotations

import json
import pathlib
import shutil

import pytest
from conftest import ROOT, run_cli

from compare import files
from compare.report import build as report
from compare.run import results

ARTIFACTS = ROOT / "test-artifacts"
XSS = "<script>alert(1)</script>"


def test_partial_results_show_failures_and_missing_runs(quick_study, tmp_path):
    out = tmp_path / "partial"
    shutil.copytree(quick_study / "runs", out / "runs")
    shutil.copy(quick_study / "study.json", out / "study.json")
    failed_path = out / "runs" / "mlp" / "keras-seed1.json"
    failed = json.loads(failed_path.read_text())
    failed.update(status="diverged", reason="training loss is nan in epoch 2", failed_epoch=2)
    files.write_json_atomic(failed_path, failed)
    (out / "runs" / "mlp" / "torch-seed1.json").unlink()

    html = report.write_report(out).read_text()
    # results.json stays strict JSON (no NaN) with a failed run in it.
    json.loads((out / "results.json").read_text(), parse_constant=pytest.fail)
    assert "Runs that did not finish" in html
    assert "training loss is nan in epoch 2" in html and "diverged" in html
    assert "mlp / torch / seed 1" in html  # planned but missing
    # What exists is still shown: one ok seed per framework.
    context = report.build_context(out, results.load_runs(out))
    assert {(r["implementation"], r["seeds"]) for r in context["overview"]} == {
        ("torch", 1),
        ("keras", 1),
    }


def test_untrusted_strings_are_escaped(tmp_path):
    study = tmp_path / "xss.toml"
    study.write_text(
        f'name = "{XSS}"\nseeds = 1\n[[experiment]]\nname = "mlp {XSS}"\nbase = "mlp"\n'
        "[experiment.model]\nhidden_sizes = [8]\n"
    )
    out = tmp_path / "out"
    run = run_cli(
        "run",
        "--study",
        str(study),
        "--profile",
        "quick",
        "--frameworks",
        "torch",
        "--set",
        "train.epochs=1",
        "--out",
        str(out),
        "--no-progress",
    )
    assert run.returncode == 0, run.stderr
    html = report.write_report(out).read_text()
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def _chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for binary in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
        if not pathlib.Path(binary).exists():
            pytest.fail(f"{binary} is missing: `make test` installs chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1200,900",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


def test_report_in_headless_chromium(quick_study, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException

    html_path = report.write_report(quick_study)
    driver = _chromium()
    try:
        driver.get(html_path.resolve().as_uri())
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt]);"
        )
        assert len(images) >= 3
        assert all(complete and width > 0 for complete, width, _ in images), images
        rows = driver.execute_script(
            "return Array.from(document.querySelectorAll('#overview-table tbody tr'))"
            ".map(r => [r.dataset.model, r.dataset.implementation]);"
        )
        assert sorted(rows) == [["mlp", "keras"], ["mlp", "torch"]]
        # Narrow window: the page must not need horizontal scrolling as a whole.
        driver.set_window_size(420, 900)
        width = driver.execute_script("return document.documentElement.scrollWidth;")
        assert width <= 420 + 20
        driver.set_window_size(1200, 900)
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text  # noqa: B018 - an alert would mean injected script
        ARTIFACTS.mkdir(exist_ok=True)
        height = driver.execute_script("return document.body.scrollHeight;")
        driver.set_window_size(1200, min(height + 100, 8000))
        assert driver.save_screenshot(str(ARTIFACTS / "report.png"))
    finally:
        driver.quit()


def test_api_overhead_pairs_keras_on_torch_with_native_torch():
    """Keras on its torch backend against native PyTorch, found by the one spelling of
    each implementation (a misspelt name would drop the section silently)."""
    row = {"first_epoch_seconds": 2.0, "steady_epoch_seconds": 1.0}
    overview = [
        {"experiment": "mlp", "implementation": "torch", **row},
        {**row, "experiment": "mlp", "implementation": "keras_torch", "steady_epoch_seconds": 1.5},
        {"experiment": "mlp", "implementation": "keras", **row},
    ]
    (pair,) = report.api_overhead(overview)
    assert pair["experiment"] == "mlp" and pair["steady_ratio"] == pytest.approx(1.5)


def _full_study_results(template_dir: pathlib.Path, out: pathlib.Path) -> None:
    """Results shaped like a default study's (every catalog model, 5 seeds, Keras on
    three backends for the headline, two regression nets), plus parity defaults per
    backend and a benchmark, built from the quick study's real files: no training."""
    import numpy as np

    from compare.spec import catalog
    from compare.spec.identity import Implementation

    template = json.loads((template_dir / "runs" / "mlp" / "torch-seed0.json").read_text())
    rng = np.random.default_rng(0)
    for name, experiment in catalog.MODELS.items():
        regression = experiment.model.architecture in ("two_layer_net", "dynamic_net")
        implementations = [("torch", None), ("keras", "tensorflow")]
        if name == "mlp":
            implementations += [("keras", "jax"), ("keras", "torch")]
        for framework, backend in implementations:
            for seed in range(5):
                run = json.loads(json.dumps(template))
                run.update(
                    experiment=name,
                    framework=framework,
                    keras_backend=backend,
                    seed=seed,
                    spec=experiment.to_dict(),
                    spec_hash=experiment.spec_hash(),
                    exclusive=seed == 0,
                    worker_run_index=seed,
                )
                if regression:
                    losses = list(np.geomspace(30_000, 1e-3, 6) * (1 + 1e-7 * seed))
                    run.update(test_accuracy=None, test_loss=None, final_loss=losses[-1])
                    run["epochs"] = [
                        {"epoch": i + 1, "train_loss": loss, "val_loss": None,
                         "val_accuracy": None, "epoch_seconds": 0.01}
                        for i, loss in enumerate(losses)
                    ]  # fmt: skip
                    run["regression"] = {"depths": [1] * 6, "reference": None}
                    for key in ("test_predictions", "test_labels"):
                        run.pop(key, None)
                else:
                    run["test_accuracy"] = 0.85 + 0.004 * rng.standard_normal()
                variant = Implementation(framework, backend, "tuned").name
                results.run_path(out, name, variant, seed).parent.mkdir(parents=True, exist_ok=True)
                files.write_json_atomic(results.run_path(out, name, variant, seed), run)
    words = "a long default described in words, as the parity check reads it " * 2
    rows = [
        {
            "what": f"default number {i}",
            "torch": words,
            "keras": words,
            "study": words,
            "keras_by_backend": {b: f"{b}: {words}" for b in ("tensorflow", "jax", "torch")},
        }
        for i in range(4)
    ]
    files.write_json_atomic(out / "parity.json", {"models": {}, "defaults": rows})


def test_report_layout_fits_1280px_and_leads_with_the_verdict(quick_study, tmp_path):
    out = tmp_path / "full"
    _full_study_results(quick_study, out)
    html_path = report.write_report(out)
    html = html_path.read_text()
    assert "{'" not in html  # no Python dict printed (the defaults table is in words)
    assert 'id="ladder"' not in html  # one rung: the section does not apply
    driver = _chromium()
    try:
        driver.set_window_size(1280, 900)
        driver.get(html_path.resolve().as_uri())
        page = driver.execute_script("return document.documentElement.clientWidth;")
        assert driver.execute_script("return document.documentElement.scrollWidth;") <= page
        overflowing = driver.execute_script(
            "return Array.from(document.querySelectorAll('.table-wrap'))"
            ".filter(w => w.scrollWidth > w.clientWidth + 1)"
            ".map(w => w.querySelector('table').id);"
        )
        assert overflowing == []
        # The verdict board comes first, one line per model, then the forest plot.
        first = driver.execute_script("return document.querySelector('h2').id;")
        assert first == "verdict"
        board = driver.execute_script(
            "return Array.from(document.querySelectorAll('#verdict-table tbody tr'))"
            ".map(r => [r.dataset.model, r.dataset.verdict]);"
        )
        assert sorted(m for m, _ in board) == sorted(catalog_names())
        verdicts = dict(board)
        assert verdicts["two_layer_net"] == "agree"
        assert verdicts["mlp"] in ("equivalent", "different", "inconclusive")
        forest = driver.execute_script(
            "const i = document.getElementById('forest-plot'); return i && i.naturalWidth;"
        )
        assert forest and forest > 0
        ARTIFACTS.mkdir(exist_ok=True)
        assert driver.save_screenshot(str(ARTIFACTS / "report-verdict.png"))
    finally:
        driver.quit()


def catalog_names() -> list[str]:
    from compare.spec import catalog

    return list(catalog.MODELS)


def test_published_percentile_and_the_logit_relu_spread():
    from compare.report import ablation

    def run(experiment, seed, accuracy, dead=None):
        record = {"experiment": experiment, "framework": "torch", "mode": "tuned", "seed": seed,
                  "status": "ok", "test_accuracy": accuracy, "epochs": []}  # fmt: skip
        if dead is not None:
            record["dead_logits_at_init"] = dead
        return record

    runs = [run("mlp_512", s, 0.60 - 0.05 * d, dead=d) for s, d in enumerate([0, 1, 2, 1, 0])]
    runs += [run("mlp_512_no_logit_relu", s, 0.70 + 0.001 * s) for s in range(5)]
    published = {
        "mlp_512": {"figures": [{"framework": "torch", "metric": "test_accuracy",
                                 "epoch": None, "value": 0.56, "text": "56 %"}]}
    }  # fmt: skip
    (row,) = ablation.published_vs_measured(published, runs).to_dict("records")
    assert row["published_percentile"] == pytest.approx(60.0)  # 3 of 5 seeds at or below
    assert (row["measured_min"], row["measured_max"]) == pytest.approx((0.5, 0.6))
    spread = {r["experiment"]: r for r in ablation.logit_relu_spread(runs).to_dict("records")}
    assert spread["mlp_512"]["dead_logits"] == [0, 1, 2, 1, 0]
    assert spread["mlp_512"]["spearman_rho"] == pytest.approx(-1.0)
    assert spread["mlp_512_no_logit_relu"]["dead_logits"] is None
    assert spread["mlp_512_no_logit_relu"]["accuracy_std"] < spread["mlp_512"]["accuracy_std"]
    # Two seeds (a quick study): no p-value exists, so no correlation is shown (it crashed
    # the report when Spearman's NaN p-value reached the template).
    (two,) = ablation.logit_relu_spread(runs[:2]).to_dict("records")
    assert two["spearman_rho"] is None and two["spearman_p"] is None


def test_epoch_time_chart_takes_only_runs_that_ran_alone(quick_study, monkeypatch):
    runs = results.load_runs(quick_study)
    for run in runs:
        run["exclusive"] = run["seed"] == 0  # seed 1 overlapped another run
    plotted = []
    monkeypatch.setattr(
        report.figures, "epoch_times", lambda frame: plotted.append(frame) or b"png"
    )
    from compare.report import tables

    report.model_section("mlp", runs, tables.epochs_frame(runs), None)
    (frame,) = plotted
    assert set(frame["seed"]) == {0} and set(frame["implementation"]) == {"torch", "keras"}


def test_timing_comes_from_one_kind_of_node_and_each_kind_is_listed_apart(quick_study, tmp_path):
    # As a Ray study on mixed hardware writes them: seed 0 of each side on a fast node
    # kind, seed 1 on another; all runs exclusive.
    out = tmp_path / "out"
    shutil.copytree(quick_study, out)
    for path in (out / "runs").glob("*/*.json"):
        run = files.read_json(path)
        fast = run["seed"] == 0
        run["exclusive"] = True
        run["node"] = {
            "hostname": "a1" if fast else "b1",
            "cpu_model": "Fast CPU" if fast else "Slow CPU",
            "cpu_count": 64 if fast else 2,
        }
        run["timing"]["steady_epoch_seconds"] = 1.0 if fast else 9.0
        files.write_json_atomic(path, run)
    from compare.report import tables

    runs = results.load_runs(out)
    rows = tables.runs_frame(runs)
    # A tie (one timed run per kind and side): the first by name.
    assert tables.reference_node_type(rows) == "Fast CPU, 64 cores"
    summary = tables.summary_frame(rows)
    assert set(summary["steady_epoch_seconds"]) == {1.0} and set(summary["timed_runs"]) == {1}
    by_node = tables.timing_by_node(rows)
    assert set(by_node["node_type"]) == {"Fast CPU, 64 cores", "Slow CPU, 2 cores"}
    assert set(by_node["hosts"]) == {"a1", "b1"}
    assert len(by_node) == 4  # two kinds x two implementations, never pooled

    report.write_report(out)
    html = (out / "index.html").read_text()
    assert 'id="timing-by-node-table"' in html
    assert "the epoch times here are from\n<b>Fast CPU, 64 cores</b> only" in html

    # One kind of node: no such table, and the overview's rule is the same.
    assert tables.timing_by_node(tables.runs_frame(results.load_runs(quick_study))).empty


def test_parity_is_shown_only_beside_runs_of_the_spec_backend_and_mode_it_checked(quick_study):
    from compare.spec import studies

    runs = results.load_runs(quick_study)
    keras = next(r for r in runs if r["framework"] == "keras")
    identity = studies.parity_identity(keras["spec"])
    entry = {"passed": True, "parity_identity": identity, "keras_backend": "tensorflow"}
    parity = {"models": {"mlp/keras": entry}}
    assert report.parity_status(parity, keras) == "pass"
    assert report.parity_status({"models": {"mlp/keras": {**entry, "passed": False}}}, keras) == (
        "FAIL"
    )
    # parity.json from another spec of the model (or from before identities): stale.
    other = {"models": {"mlp/keras": {**entry, "parity_identity": "x"}}}
    assert report.parity_status(other, keras) == "stale"
    stale = {"models": {"mlp/keras": {k: v for k, v in entry.items() if k != "parity_identity"}}}
    assert report.parity_status(stale, keras) == "stale"
    # The same spec on a quick profile is the same model and recipe: no longer, no shorter.
    longer = {**keras["spec"], "train": {**keras["spec"]["train"], "epochs": 20}}
    assert studies.parity_identity(longer) == identity
    changed = {**keras["spec"], "train": {**keras["spec"]["train"], "learning_rate": 0.1}}
    assert studies.parity_identity(changed) != identity
    # Another backend or mode than the entry's: not checked, never the TensorFlow verdict.
    assert report.parity_status(parity, {**keras, "keras_backend": "jax"}) == "not checked"
    assert report.parity_status(parity, {**keras, "mode": "compiled"}) == "not checked"

    statuses = report.parity_statuses(parity, runs)
    assert statuses[("mlp", "keras")] == "pass" and statuses[("mlp", "torch")] == "pass"
    failing = {"models": {"mlp/keras": {**entry, "passed": False}}}
    assert report.parity_statuses(failing, runs)[("mlp", "torch")] == "FAIL"
    assert report.worst(["pass", "stale", "not checked"]) == "stale"


def test_the_pairs_section_states_the_densenet_finding(quick_study, tmp_path):
    # pairs.json as `python -m compare parity --zoo --out OUT` writes it (two backends).
    out = tmp_path / "pairs"
    shutil.copytree(quick_study / "runs", out / "runs")
    shutil.copy(quick_study / "study.json", out / "study.json")
    where = "forward: features.norm0 (BatchNorm2d) / conv1_bn (BatchNormalization): 6.5e-04"

    def row(port, passed, backend_failure=None):
        return {
            "pair": "densenet121",
            "port": port,
            "passed": passed,
            "failed_at": None if passed else "forward",
            "as_expected": True,
            "first_failure": backend_failure,
            "seconds": 1.0,
        }

    entry = {
        "keras_backend": "tensorflow",
        "passed": True,
        "checks": [{"name": "forward", "passed": True}],
        "details": {},
    }
    files.write_json_atomic(
        out / "pairs.json",
        {
            "schema": "keras-vs-pytorch/parity/v1",
            "passed": True,
            "models": {"densenet121:correct/keras": entry},
            "zoo": {
                backend: [row("correct", True), row("keras_applications_epsilon", False, where)]
                for backend in ("tensorflow", "torch")
            },
        },
    )
    html = report.write_report(out).read_text()
    assert 'id="pairs-table"' in html and 'id="densenet-finding"' in html
    assert "the pair fails at forward: forward: features.norm0 (BatchNorm2d)" in html
    assert "it passes on\ntensorflow, torch" in html
    # Without pairs.json, no section.
    (out / "pairs.json").unlink()
    assert 'id="pairs-table"' not in report.write_report(out).read_text()
