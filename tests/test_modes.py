"""Execution modes and the benchmark's arithmetic: modes change time, never results."""

from __future__ import annotations

import collections
import json
import pathlib
import shutil

import numpy as np
import pytest
from conftest import run_cli

from compare import files
from compare.bench import bench, roofline
from compare.report import build as report
from compare.run import plan, results
from compare.spec import catalog, studies
from compare.spec.identity import Implementation
from keras_impl import execution as keras_execution
from pytorch_impl import execution as torch_execution


@pytest.mark.parametrize("other", ["idiomatic", "compiled"])
def test_other_modes_match_tuned_results(other, quick_study, tmp_path):
    out = tmp_path / other
    run = run_cli(
        "run",
        "--models",
        "mlp",
        "--profile",
        "quick",
        "--seeds",
        "1",
        "--modes",
        other,
        "--out",
        str(out),
        "--no-progress",
    )
    assert run.returncode == 0, run.stderr
    for framework in ("torch", "keras"):
        theirs = json.loads((out / "runs/mlp" / f"{framework}-{other}-seed0.json").read_text())
        tuned = json.loads((quick_study / "runs/mlp" / f"{framework}-seed0.json").read_text())
        assert (theirs["mode"], tuned["mode"]) == (other, "tuned")
        assert theirs["split_manifest_hash"] == tuned["split_manifest_hash"]
        # Same batches in the same order: only kernels (fused optimizer, XLA, Inductor)
        # may differ.
        np.testing.assert_allclose(
            [e["train_loss"] for e in theirs["epochs"]],
            [e["train_loss"] for e in tuned["epochs"]],
            rtol=1e-3,
        )
        assert abs(theirs["test_accuracy"] - tuned["test_accuracy"]) <= 0.01
        assert set(theirs["phase_seconds"]) >= {
            "imports",
            "data",
            "build",
            "first_epoch",
            "steady_epochs",
            "evaluation",
        }
    labels = {Implementation.of(r).name for r in results.load_runs(out)}
    assert labels == {f"torch-{other}", f"keras-{other}"}


def test_epoch_products_of_the_headline_mlp():
    model = catalog.MODELS["mlp"].model
    layers = roofline.dense_layers(model)
    assert layers == [(784, 256), (256, 64), (64, 10)]
    products = roofline.epoch_products(layers, examples=130, batch_size=64)
    # 2 full batches and one of 2; the first layer needs no input gradient.
    assert products[(64, 784, 256)] == 2 and products[(2, 784, 256)] == 1
    assert products[(784, 64, 256)] == 2 and products[(784, 2, 256)] == 1
    assert (64, 256, 784) not in products and products[(64, 64, 256)] == 2
    assert sum(products.values()) == 3 * (3 + 3 + 2)


def test_gemm_measurement_is_positive_and_adds_up():
    products = collections.Counter({(8, 16, 4): 3, (16, 8, 4): 2})
    measured = roofline.measure(products, repeats=2, inner=5)
    assert measured["epoch_flops"] == 2 * 8 * 16 * 4 * 5
    rows = measured["per_shape"]
    assert measured["epoch_gemm_seconds"] == pytest.approx(
        sum(r["seconds"] * r["count"] for r in rows)
    )
    assert all(r["seconds"] > 0 and r["backend"] in ("numpy", "torch") for r in rows)


def test_bench_pins_numpy_blas_to_the_runs_thread_count():
    import threadpoolctl
    import torch

    torch_threads = torch.get_num_threads()
    with threadpoolctl.threadpool_limits():  # BLAS limits restored after the test
        try:
            bench.pin_threads(1)
            info = threadpoolctl.threadpool_info()
            blas = [pool for pool in info if pool["user_api"] == "blas"]
            assert blas and all(pool["num_threads"] == 1 for pool in blas)
            assert torch.get_num_threads() == 1
        finally:
            torch.set_num_threads(torch_threads)


def test_noise_floor_replays_the_products_and_gives_their_spread():
    floor = roofline.noise_floor(collections.Counter({(8, 16, 4): 3}), replays=4)
    seconds = floor["replay_seconds"]
    assert len(seconds) == 4 and min(seconds) > 0
    assert floor["spread"] == pytest.approx(max(seconds) / min(seconds)) and floor["spread"] >= 1


def _fake_run(framework, mode, seed, steady):
    return {
        "framework": framework,
        "mode": mode,
        "seed": seed,
        "status": "ok",
        "test_accuracy": 0.8,
        "epochs": [{"epoch_seconds": 9.0}] + [{"epoch_seconds": s} for s in steady],
    }


def test_bench_table_ratios_and_report_section(quick_study, tmp_path):
    runs = [
        _fake_run("torch", "idiomatic", 0, [4.0, 4.4]),
        _fake_run("torch", "tuned", 0, [1.0, 1.1]),
        _fake_run("keras", "idiomatic", 0, [3.0, 3.0]),
        _fake_run("keras", "tuned", 0, [1.5, 1.5]),
    ]
    table = bench.summarize(runs, gemm_seconds=0.5, examples=1000).set_index("implementation")
    assert table.loc["torch", "steady_epoch_seconds"] == pytest.approx(1.05)
    assert table.loc["torch", "gemm_multiple"] == pytest.approx(2.1)
    assert table.loc["torch", "ratio_to_own_idiomatic"] == pytest.approx(1.05 / 4.2)
    assert table.loc["keras", "ratio_to_idiomatic_torch"] == pytest.approx(1.5 / 4.2)
    assert table.loc["torch-idiomatic", "within_run_spread"] == pytest.approx(1.1)
    assert table.loc["keras", "samples_per_second"] == pytest.approx(1000 / 1.5)
    assert "x GEMM" in bench.format_table(table.reset_index())

    out = tmp_path / "with-bench"
    shutil.copytree(quick_study / "runs", out / "runs")
    files.write_json_atomic(
        out / "bench" / "bench.json",
        files.finite_or_none(
            {
                "threads": 2,
                "epochs": 3,
                "repeats": 1,
                "roofline": {"epoch_gemm_seconds": 0.5, "epoch_flops": 2e9, "per_shape": []},
                "noise_floor": {
                    "before": {"replay_seconds": [0.5, 0.6], "spread": 1.2},
                    "after": {"replay_seconds": [0.5, 0.55], "spread": 1.1},
                },
                "table": table.reset_index().to_dict("records"),
                "thread_sweep": [
                    {"implementation": "torch", "threads": 1, "steady_epoch_seconds": 2.0},
                    {"implementation": "torch", "threads": 2, "steady_epoch_seconds": 1.2},
                ],
                "harness": {"wall_seconds": 100.0, "overhead_seconds": 2.0},
            }
        ),
    )
    html = report.write_report(out).read_text()
    assert 'id="bench-table"' in html and "thread scaling" in html and "(2.0 %)" in html
    assert "spread (max/min) of 1.20 before the runs and\n1.10 after" in html


def test_plan_names_every_backend_and_mode_apart():
    study = studies.select_models(studies.builtin_study("default"), ["mlp"])
    options = plan.Options(
        seeds=1,
        profile="quick",
        modes=("tuned", "idiomatic"),
        keras_backends=("tensorflow", "jax", "torch"),
    )
    planned = plan.plan(study, options)
    assert sorted(run.variant for run in planned) == sorted(
        [
            "torch",
            "torch-idiomatic",
            "keras",
            "keras-idiomatic",
            "keras_jax",
            "keras_jax-idiomatic",
            "keras_torch",
            "keras_torch-idiomatic",
        ]
    )
    assert len({run.path(pathlib.Path("out")) for run in planned}) == len(planned)
    fake = {"framework": "keras", "keras_backend": "torch", "mode": "idiomatic"}
    assert Implementation.of(fake).name == "keras_torch-idiomatic"
    assert not Implementation.of(fake).is_reference
    # Keras refuses steps_per_execution > 1 on its torch backend.
    assert keras_execution.options("tuned", "torch") == {"jit_compile": False}
    assert keras_execution.options("idiomatic", "jax") == {}
    assert keras_execution.options("compiled", "torch") == {"jit_compile": True}
    assert keras_execution.options("compiled", "tensorflow", dropout=True)["jit_compile"]
    assert torch_execution.options("compiled")["compile"]
    assert not torch_execution.options("tuned")["compile"]
    # XLA's dropout RNG is slow on the CPU: TensorFlow runs a dropout model without it.
    assert keras_execution.options("tuned", "tensorflow", dropout=True)["jit_compile"] is False
    assert keras_execution.options("tuned", "jax", dropout=True)["jit_compile"] is True
