"""Same framework, seed and thread count: two runs give bitwise-identical results.

Each framework runs the headline MLP on the quick profile twice through the CLI, into
two directories (one model: the whole catalog would take minutes for the same proof),
and the per-epoch losses and accuracies and the test predictions must be equal to the
last bit (JSON keeps a float's shortest exact repr, so equal text is equal bits).
"""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

COMPARED = ("train_loss", "val_loss", "val_accuracy")


def quick_run(out, framework: str) -> dict:
    result = run_cli(
        "run",
        "--models",
        "mlp",
        "--profile",
        "quick",
        "--seeds",
        "1",
        "--frameworks",
        framework,
        "--threads",
        "1",
        "--out",
        str(out),
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    return json.loads((out / "runs" / "mlp" / f"{framework}-seed0.json").read_text())


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_same_seed_and_threads_give_identical_bits(tmp_path, framework):
    first, second = quick_run(tmp_path / "a", framework), quick_run(tmp_path / "b", framework)
    assert first["status"] == second["status"] == "ok" and len(first["epochs"]) == 2
    for one, two in zip(first["epochs"], second["epochs"], strict=True):
        for key in COMPARED:
            assert one[key].hex() == two[key].hex(), (key, one[key], two[key])
    assert first["test_loss"].hex() == second["test_loss"].hex()
    assert first["test_predictions"] == second["test_predictions"]
