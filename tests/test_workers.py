"""Long-lived workers and `--jobs` (issue #15): same bits however a run is executed, and a
killed worker loses only its run in flight.

Studies here use the quick profile on tiny subsets for one epoch, one thread per worker,
`--deterministic`.
"""

from __future__ import annotations

import os
import signal

import pytest
from conftest import run_cli
from test_reliability import (
    OUTCOME,
    TINY,
    TINY_ARGS,
    alive,
    children,
    result_files,
    start_study,
    wait_for,
)

from compare.run import executor, plan
from compare.spec import studies

# mlp_dropout draws from the framework's generator every step: a worker that carried
# generator state from one run into the next would change its bits.
MODELS = ("mlp_dropout", "mlp")


def outcome(result: dict) -> dict:
    epochs = [{k: v for k, v in e.items() if k != "epoch_seconds"} for e in result["epochs"]]
    return {**{key: result[key] for key in OUTCOME}, "epochs": epochs}


def study_args(framework: str, seeds: int, jobs: int | None) -> list[str]:
    """jobs None: no --jobs (the Ray executor's cluster decides)."""
    return [
        *("--models", ",".join(MODELS), "--frameworks", framework, "--seeds", str(seeds)),
        *(("--jobs", str(jobs)) if jobs else ()),
        *("--threads", "1", "--deterministic", "--no-progress", "--profile", "quick", *TINY_ARGS),
    ]


def fresh_results(framework: str, out) -> dict[str, dict]:
    """The runs of `study_args(framework, 2, ...)`, as the runner plans them, each in a
    fresh worker process: the reference a reused, concurrent or Ray-executed run must
    equal (the `fresh_runs` fixture keeps them for the session)."""
    options = plan.Options(
        frameworks=(framework,),
        seeds=2,
        profile="quick",
        overrides=tuple(TINY),
        out=out,
        threads=1,
        jobs=1,
        deterministic=True,
    )
    fresh = {}
    for run in plan.plan(studies.select_models(studies.builtin_study("default"), MODELS), options):
        result, worker = executor.execute_run(run, options, lambda kind, payload: None)
        worker.close()
        assert result["worker_run_index"] == 0, result.get("reason")
        assert result["status"] == "ok", result.get("reason")
        fresh[f"{run.experiment.name}/{run.variant}-seed{run.seed}"] = result
    return fresh


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_a_run_has_the_same_bits_fresh_reused_or_concurrent(tmp_path, framework, fresh_runs):
    # Two jobs: the first seed of each model runs alone, both in one worker (the second
    # one reused, after a run of another model); then the second seeds run at once, one
    # in that worker again (its third run), one in a new worker.
    study = tmp_path / "study"
    done = run_cli("run", *study_args(framework, 2, jobs=2), "--out", str(study))
    assert done.returncode == 0, done.stderr
    ran = result_files(study)
    assert {r["exclusive"] for r in ran.values()} == {True, False}
    assert max(r["worker_run_index"] for r in ran.values()) == 2
    assert {r["jobs"] for r in ran.values()} == {2}

    fresh = fresh_runs(framework)
    assert set(ran) == set(fresh)
    for name, expected in fresh.items():
        assert outcome(ran[name]) == outcome(expected), name


# Long enough (a few seconds a run) that seed 1 is still training when it is killed.
SLOW = [
    *("--set", "data.train_limit=20000", "--set", "data.validation_limit=100"),
    *("--set", "data.test_limit=100", "--set", "train.epochs=4"),
]


def test_a_killed_worker_loses_only_its_run_and_a_rerun_completes(tmp_path):
    args = [
        *("--models", "mlp", "--frameworks", "torch", "--seeds", "3", "--threads", "1"),
        *("--jobs", "1", "--deterministic", *SLOW),
    ]
    reference = tmp_path / "reference"
    done = run_cli("run", *args, "--no-progress", "--out", str(reference))
    assert done.returncode == 0, done.stderr

    out = tmp_path / "out"
    study = start_study(*args, "--out", str(out))
    try:
        wait_for((out / "runs" / "mlp" / "torch-seed0.json").exists, what="the first result")
        wait_for((out / "logs" / "mlp" / "torch-seed1.log").exists, what="the second run")
        (worker_pid,) = wait_for(lambda: children(study.pid), what="the worker")
        os.kill(worker_pid, signal.SIGKILL)  # mid-run: seed 1 is in flight
        _, stderr = study.communicate(timeout=300)
    finally:
        if study.poll() is None:
            study.kill()
            study.communicate()
    assert not alive(worker_pid)
    assert study.returncode == 1, stderr
    got = result_files(out)
    assert got["mlp/torch-seed0"]["status"] == "ok"
    assert got["mlp/torch-seed1"]["status"] == "failed"
    assert "killed by SIGKILL" in got["mlp/torch-seed1"]["reason"]
    # The runner replaced the worker and went on.
    assert got["mlp/torch-seed2"]["status"] == "ok"
    assert got["mlp/torch-seed2"]["worker_run_index"] == 0

    resumed = run_cli("run", *args, "--no-progress", "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert "1 ran ok, 2 already done" in resumed.stderr
    expected, got = result_files(reference), result_files(out)
    assert set(got) == set(expected)
    for name, run in got.items():
        assert outcome(run) == outcome(expected[name]), name
