"""The quick profile end to end: both frameworks, result files, report, resume."""

from __future__ import annotations

import json

import pandas as pd
from conftest import QUICK_MLP, run_cli


def test_quick_study_writes_complete_results(quick_study):
    runs = {
        p.stem: json.loads(p.read_text()) for p in (quick_study / "runs" / "mlp").glob("*.json")
    }
    assert set(runs) == {"torch-seed0", "keras-seed0", "torch-seed1", "keras-seed1"}
    for run in runs.values():
        assert run["status"] == "ok"
        assert len(run["epochs"]) == 2
        assert 0.5 < run["test_accuracy"] <= 1.0
        assert run["parameter_count"] == 218_058
        assert run["runtime"]["threads"]["intra_op"] == run["threads"]
        assert run["peak_memory_mb"] > 0
        for key in ("imports", "data", "build", "first_epoch", "evaluation"):
            assert run["phase_seconds"][key] >= 0
        assert len(run["test_predictions"]) == len(run["test_labels"]) == 1_000
    for seed in (0, 1):
        torch_run, keras_run = runs[f"torch-seed{seed}"], runs[f"keras-seed{seed}"]
        assert torch_run["split_manifest_hash"] == keras_run["split_manifest_hash"]
        assert torch_run["spec_hash"] == keras_run["spec_hash"]
    # Different seeds train differently (init and shuffle order are seeded).
    assert runs["torch-seed0"]["epochs"] != runs["torch-seed1"]["epochs"]


def test_report_files(quick_study):
    report = run_cli("report", "--out", str(quick_study))
    assert report.returncode == 0, report.stderr
    html = (quick_study / "index.html").read_text()
    assert "data:image/png;base64," in html and "<script" not in html
    assert "http://" not in html and "https://" not in html  # nothing external
    csv = pd.read_csv(quick_study / "results.csv")
    assert len(csv) == 8 and set(csv["framework"]) == {"torch", "keras"}
    assert set(csv.columns) >= {
        "experiment",
        "framework",
        "seed",
        "epoch",
        "train_loss",
        "val_loss",
        "val_accuracy",
        "epoch_seconds",
    }
    payload = json.loads((quick_study / "results.json").read_text())
    assert payload["schema"] == "keras-vs-pytorch/results/v1"
    assert len(payload["runs"]) == 4 and len(payload["summary"]) == 2


def test_rerun_skips_finished_runs(quick_study):
    again = run_cli(*QUICK_MLP, "--out", str(quick_study))
    assert again.returncode == 0
    assert "0 ran ok, 4 already done" in again.stderr
