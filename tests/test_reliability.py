"""Reliability (issue #7): a failure stays in its run, an interruption loses no finished run.

Bad inputs are in test_cli.py (one table); data faults in test_data.py. Studies here
train tiny subsets for one or two epochs, one thread per worker.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT, run_cli

from compare.run import executor, loop, metrics, plan, protocol, runner, worker
from compare.spec import catalog
from compare.spec.parse import apply_overrides

TINY = [
    "data.train_limit=200",
    "data.validation_limit=100",
    "data.test_limit=100",
    "train.epochs=1",
]
TINY_ARGS = [arg for override in TINY for arg in ("--set", override)]
# Fields that a rerun must reproduce exactly (timings are not among them).
OUTCOME = ("spec_hash", "split_manifest_hash", "test_loss", "test_accuracy", "test_predictions")


def strict_json(path: pathlib.Path):
    """Parse as standard JSON: NaN and Infinity are not JSON."""

    def refuse(constant):
        raise ValueError(f"{path} holds {constant}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def result_files(out: pathlib.Path) -> dict[str, dict]:
    """Every result file, strictly parsed, by "experiment/framework-seedN"."""
    paths = sorted((out / "runs").glob("*/*.json"))
    return {f"{p.parent.name}/{p.stem}": strict_json(p) for p in paths}


def children(pid: int) -> list[int]:
    """Live child processes of `pid` (zombies excluded)."""
    found = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_for(condition, timeout: float = 120.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _foreground_signals() -> None:
    # A shell's background job (`make test &`, nohup) starts with SIGINT ignored, and
    # children inherit that: a foreground job never has it ignored, so restore it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_study(*args: str) -> subprocess.Popen:
    """A study in its own process group, as a terminal starts a foreground job."""
    return subprocess.Popen(
        [sys.executable, "-m", "compare", "run", "--no-progress", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_foreground_signals,
    )


# --- a diverging run among healthy ones ---------------------------------------------

TINY_DATA = "train_limit = 200\nvalidation_limit = 100\ntest_limit = 100"
ISOLATION_STUDY = f"""
name = "isolation"
seeds = 1
[[experiment]]
name = "calm"
base = "mlp"
data = {{ {TINY_DATA.replace(chr(10), ", ")} }}
train = {{ epochs = 1 }}
[[experiment]]
name = "wild"
base = "mlp"
data = {{ {TINY_DATA.replace(chr(10), ", ")} }}
train = {{ optimizer = "sgd", learning_rate = 1e6, epochs = 2 }}
"""


@pytest.fixture(scope="module")
def isolation(tmp_path_factory):
    """One study, both frameworks, --deterministic: `calm` trains, `wild` diverges."""
    root = tmp_path_factory.mktemp("isolation")
    study = root / "study.toml"
    study.write_text(ISOLATION_STUDY)
    out = root / "out"
    args = ["run", "--study", str(study), "--out", str(out), "--threads", "1", "--deterministic"]
    args += ["--no-progress"]
    first = run_cli(*args)
    report = run_cli("report", "--out", str(out))
    again = run_cli(*args)
    return {"out": out, "first": first, "report": report, "again": again}


def test_diverging_run_is_isolated_and_reported(isolation):
    first = isolation["first"]
    assert first.returncode == 1, first.stderr
    lines = first.stderr.strip().splitlines()
    for framework in ("torch", "keras"):
        pattern = (
            rf"wild/{framework}/seed0: diverged \((training|validation) loss is \S+ in epoch 1\)"
        )
        assert any(re.fullmatch(pattern, line) for line in lines), first.stderr
    assert lines[-1].startswith("4 runs: 2 ran ok, 0 already done, 2 diverged, 0 failed")

    out = isolation["out"]
    for framework in ("torch", "keras"):
        calm = strict_json(out / "runs" / "calm" / f"{framework}-seed0.json")
        wild = strict_json(out / "runs" / "wild" / f"{framework}-seed0.json")
        assert calm["status"] == "ok" and calm["test_accuracy"] > 0.3
        assert wild["status"] == "diverged" and wild["failed_epoch"] == 1
        assert wild["failed_stage"] == "training"
        assert "in epoch 1" in wild["reason"]
        # It stopped at the first non-finite loss, and wrote that loss as null.
        assert len(wild["epochs"]) == 1 and None in (
            wild["epochs"][0]["train_loss"],
            wild["epochs"][0]["val_loss"],
        )
        assert "test_accuracy" not in wild

    report = isolation["report"]
    assert report.returncode == 0, report.stderr
    html = (out / "index.html").read_text()
    failures = html[html.index('id="failures"') :]
    assert "wild" in failures and "diverged" in failures and "in epoch 1" in failures


def test_rerun_keeps_diverged_runs_and_still_fails(isolation):
    again = isolation["again"]
    assert again.returncode == 1
    assert "4 runs: 0 ran ok, 4 already done, 2 diverged, 0 failed" in again.stderr


def test_deterministic_auto_device_and_network_are_recorded(isolation):
    runs = result_files(isolation["out"])
    assert len(runs) == 4
    for run in runs.values():
        assert run["deterministic"] is True and run["runtime"]["deterministic"]["requested"]
        assert run["network_blocked"] is True
        assert run["device"] == "cpu" and run["device_notice"].startswith("--device auto:")
    torch_flags = runs["calm/torch-seed0"]["runtime"]["deterministic"]
    assert torch_flags["use_deterministic_algorithms"] is True
    keras_flags = runs["calm/keras-seed0"]["runtime"]["deterministic"]
    assert keras_flags["enable_op_determinism"] is True
    # The notice is shown once per framework, not once per run.
    stderr = isolation["first"].stderr
    assert stderr.count("notice: --device auto: PyTorch") == 1
    assert stderr.count("notice: --device auto: Keras (tensorflow backend)") == 1


# --- kill -9 and Ctrl-C -------------------------------------------------------------


def torch_study(seeds: int) -> list[str]:
    # mlp only: the default study holds every catalog model. Runs of a few seconds each,
    # so that a signal sent while one runs lands before it ends (a long-lived worker
    # finishes a tiny run in a tenth of a second).
    return [
        *("--models", "mlp", "--frameworks", "torch", "--seeds", str(seeds)),
        *("--threads", "1", "--jobs", "1", *TINY_ARGS),
        *("--set", "data.train_limit=10000", "--set", "train.epochs=2"),
    ]


def test_sigkill_of_the_runner_then_rerun_completes_identically(tmp_path):
    study_args = torch_study(seeds=2)
    reference = tmp_path / "reference"
    uninterrupted = run_cli("run", *study_args, "--out", str(reference), "--no-progress")
    assert uninterrupted.returncode == 0, uninterrupted.stderr

    out = tmp_path / "out"
    study = start_study(*study_args, "--out", str(out))
    first = out / "runs" / "mlp" / "torch-seed0.json"
    try:
        wait_for(first.exists, what="the first result")
        # Kill while the next worker is alive, so there is an orphan to avoid.
        wait_for((out / "logs" / "mlp" / "torch-seed1.log").exists, what="the second run")
        (worker_pid,) = wait_for(lambda: children(study.pid), what="the second worker")
        os.kill(study.pid, signal.SIGKILL)
        study.wait(timeout=30)
        wait_for(lambda: not alive(worker_pid), timeout=10, what="the worker to die")
    finally:
        if study.poll() is None:
            study.kill()
        study.communicate()
    finished = {p.name: p.read_bytes() for p in (out / "runs" / "mlp").glob("*.json")}
    assert set(finished) == {"torch-seed0.json"}
    result_files(out)  # every file that exists parses
    # A writer killed mid-write leaves only a hidden temporary: plant one to see it go.
    stale = out / "runs" / "mlp" / ".torch-seed1.json.x1y2z3.tmp"
    stale.write_text('{"status": "o')

    resumed = run_cli("run", *study_args, "--out", str(out), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert "1 ran ok, 1 already done" in resumed.stderr
    assert not stale.exists() and not list(out.rglob("*.tmp"))
    for name, content in finished.items():
        assert (out / "runs" / "mlp" / name).read_bytes() == content  # untouched
    expected, got = result_files(reference), result_files(out)
    assert set(got) == {"mlp/torch-seed0", "mlp/torch-seed1"} == set(expected)
    for name, run in got.items():
        assert run["status"] == "ok"
        for key in OUTCOME:
            assert run[key] == expected[name][key], (name, key)
        strip = [{k: v for k, v in e.items() if k != "epoch_seconds"} for e in run["epochs"]]
        assert strip == [
            {k: v for k, v in e.items() if k != "epoch_seconds"} for e in expected[name]["epochs"]
        ]


def test_ctrl_c_stops_cleanly_and_a_second_study_is_locked_out(tmp_path):
    # Twenty runs: the interrupt lands while one of them runs, even when the lock-out
    # check below is slow on a loaded machine.
    study_args = torch_study(seeds=20)
    out = tmp_path / "out"
    study = start_study(*study_args, "--out", str(out))
    try:
        wait_for((out / "runs" / "mlp" / "torch-seed0.json").exists, what="the first result")
        wait_for((out / "logs" / "mlp" / "torch-seed1.log").exists, what="the second run")
        (worker_pid,) = wait_for(lambda: children(study.pid), what="the second worker")

        second = run_cli("run", *study_args, "--out", str(out), "--no-progress")
        assert second.returncode == 2
        assert second.stderr.strip() == (
            f"error: another study is writing to {out}: wait for it or choose another --out"
        )

        os.killpg(study.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C
        _, stderr = study.communicate(timeout=60)
    finally:
        if study.poll() is None:
            study.kill()
            study.communicate()
    assert study.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == (
        "interrupted: finished runs are saved; rerun the same command to resume"
    )
    assert "Traceback" not in stderr
    wait_for(lambda: not alive(worker_pid), timeout=10, what="the worker to die")
    runs = result_files(out)
    assert runs["mlp/torch-seed0"]["status"] == "ok"
    assert len(runs) < 20 and not list(out.rglob("*.tmp"))  # the study did not finish
    assert all(r["status"] == "ok" for r in runs.values())  # nothing half-done recorded


# --- a worker that dies or raises (fault injection, no training) ---------------------

MLP = apply_overrides(catalog.MODELS["mlp"], TINY)
EPOCH = {"epoch": 1, "train_loss": 0.5, "val_loss": 0.4, "val_accuracy": 0.8, "epoch_seconds": 0.1}


def fake_worker(monkeypatch, code: str) -> None:
    """Replace the worker by a script that reads a request like the real one."""
    script = f"import json, os, signal, sys\njson.loads(sys.stdin.readline())\n{code}"
    monkeypatch.setattr(executor, "worker_command", lambda: [sys.executable, "-c", script])


def test_a_killed_worker_becomes_a_failed_result(tmp_path, monkeypatch):
    progress = json.dumps({**EPOCH, "epochs": 2})
    fake_worker(
        monkeypatch,
        f"print('PROGRESS ' + {progress!r}, flush=True)\n"
        "print('allocating', file=sys.stderr, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)",
    )
    run = plan.Run(MLP, "torch", 0)
    result, worker = executor.execute_run(
        run, plan.Options(out=tmp_path, threads=1), lambda kind, payload: None
    )
    assert worker is None  # it died: the next run gets a new one
    assert json.loads(json.dumps(result)) == strict_json(run.path(tmp_path))
    assert result["status"] == "failed" and result["failed_epoch"] == 2
    assert "killed by SIGKILL" in result["reason"] and "out of memory" in result["reason"]
    assert "allocating" in result["reason"]  # the log's last lines say what it was doing
    assert result["epochs"] == [EPOCH]  # the finished epoch is kept


def test_an_interrupted_worker_interrupts_the_study(tmp_path, monkeypatch):
    fake_worker(monkeypatch, "sys.exit(130)")
    run = plan.Run(MLP, "torch", 0)
    with pytest.raises(KeyboardInterrupt):
        executor.execute_run(run, plan.Options(out=tmp_path, threads=1), lambda kind, payload: None)
    assert not run.path(tmp_path).exists()


def test_an_exception_becomes_a_failed_result_with_what_was_measured(tmp_path, monkeypatch):
    def out_of_memory(request, result, emit):
        result["stage"] = "training"
        result["epochs"].append({**EPOCH, "val_loss": math.inf})
        raise MemoryError("cannot allocate 4 GiB")

    monkeypatch.setattr(loop, "train_and_evaluate", out_of_memory)
    path = tmp_path / "result.json"
    request = protocol.RunRequest(
        experiment=MLP.to_dict(),
        spec_hash=MLP.spec_hash(),
        framework="torch",
        seed=0,
        mode="tuned",
        keras_backend=None,
        threads=1,
        device="cpu",
        deterministic=False,
        profile="default",
        data_dir=None,
        result_path=str(path),
        spawn_time=time.time(),
    )
    assert worker.execute(request) == 0
    result = strict_json(path)
    assert result["status"] == "failed" and result["failed_epoch"] == 2
    assert result["failed_stage"] == "training"
    assert result["reason"] == "MemoryError in epoch 2: cannot allocate 4 GiB"
    assert result["epochs"][0]["val_loss"] is None  # inf written as null


def test_non_finite_losses_are_divergence_and_metrics_survive_them():
    logits = np.array([[np.nan, 1.0], [np.inf, 0.0], [1.0, 2.0]], dtype=np.float32)
    with np.errstate(invalid="ignore"):  # NaN in, NaN out: no crash, no exception
        loss, accuracy = metrics.evaluate(logits, np.array([0, 0, 1]))
    assert math.isnan(loss) and 0.0 <= accuracy <= 1.0
    loop.check_finite({**EPOCH, "epoch": 3})
    with pytest.raises(loop.Diverged, match="validation loss is inf in epoch 3"):
        loop.check_finite({**EPOCH, "epoch": 3, "val_loss": math.inf})
    with pytest.raises(loop.Diverged, match="training loss is nan in epoch 1"):
        loop.check_finite({**EPOCH, "train_loss": math.nan})


# --- resume identity, stale files, network --------------------------------------------


def test_resume_keeps_ok_and_diverged_results_of_the_same_identity(tmp_path):
    run = plan.Run(MLP, "torch", 0)
    options = plan.Options(out=tmp_path)
    path = run.path(tmp_path)
    path.parent.mkdir(parents=True)
    for status, deterministic, spec_hash, kept in [
        ("ok", False, MLP.spec_hash(), True),
        ("diverged", False, MLP.spec_hash(), True),
        ("failed", False, MLP.spec_hash(), False),
        ("ok", True, MLP.spec_hash(), False),  # made with --deterministic: not ours
        ("ok", False, "0" * 16, False),  # another spec
    ]:
        result = {"status": status, "deterministic": deterministic, "spec_hash": spec_hash}
        path.write_text(json.dumps(result))
        assert (runner.kept_result(run, options) is not None) == kept, result
    path.write_text('{"status": "ok", "spec_')  # cannot happen with atomic writes; still
    assert runner.kept_result(run, options) is None


def test_network_is_blocked_once_forbidden():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    code = f"""
import socket, urllib.request
from compare import network
socket.socket().connect(("127.0.0.1", {port}))  # allowed before
network.forbid_network()
attempts = [
    lambda: socket.socket().connect(("127.0.0.1", {port})),
    lambda: socket.create_connection(("localhost", {port})),
    lambda: urllib.request.urlopen("http://example.com", timeout=5),
]
for attempt in attempts:
    try:
        attempt()
        print("connected")
    except network.NetworkBlocked as error:
        print("blocked", error)
"""
    with server:
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("blocked") for line in lines), result.stdout
    assert "compare data --download" in lines[0]


def test_no_unsafe_deserialisation_in_the_code():
    """Nothing a user supplies is unpickled: no pickle, no torch.load without weights_only."""
    unsafe = re.compile(
        r"\bpickle\b|allow_pickle\s*=\s*True|torch\.load\((?![^)]*weights_only=True)"
    )
    sources = [
        p for d in ("compare", "pytorch_impl", "keras_impl") for p in (ROOT / d).rglob("*.py")
    ]
    assert sources
    offenders = [str(p) for p in sources if unsafe.search(p.read_text())]
    assert offenders == []
