"""The quick profile end to end: both frameworks, result files, report, resume."""

from __future__ import annotations

import json

import pandas as pd
from conftest import run_cli


def test_quick_study_writes_results_and_report(tmp_path):
    out = tmp_path / "out"
    result = run_cli(
        "run", "--profile", "quick", "--seeds", "1", "--out", str(out), "--no-progress"
    )
    assert result.returncode == 0, result.stderr
    runs = {p.stem: json.loads(p.read_text()) for p in (out / "runs" / "mlp").glob("*.json")}
    assert set(runs) == {"torch-seed0", "keras-seed0"}
    for run in runs.values():
        assert run["status"] == "ok"
        assert len(run["epochs"]) == 2
        assert 0.5 < run["test_accuracy"] <= 1.0
        assert run["parameter_count"] == 218_058
        assert run["threads"] >= 1 and run["runtime"]["threads"]["intra_op"] == run["threads"]
        for key in ("imports", "data", "build", "first_epoch", "evaluation"):
            assert run["phase_seconds"][key] >= 0
    torch_run, keras_run = runs["torch-seed0"], runs["keras-seed0"]
    assert torch_run["split_manifest_hash"] == keras_run["split_manifest_hash"]
    assert torch_run["spec_hash"] == keras_run["spec_hash"]

    report = run_cli("report", "--out", str(out))
    assert report.returncode == 0, report.stderr
    html = (out / "index.html").read_text()
    assert "data:image/png;base64," in html and "<script" not in html
    csv = pd.read_csv(out / "results.csv")
    assert len(csv) == 4 and set(csv["framework"]) == {"torch", "keras"}
    assert json.loads((out / "results.json").read_text())["schema"].endswith("/v1")

    again = run_cli("run", "--profile", "quick", "--seeds", "1", "--out", str(out), "--no-progress")
    assert again.returncode == 0
    assert "0 ran ok, 2 already done" in again.stderr
