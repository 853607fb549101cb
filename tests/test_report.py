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
