"""The Ray executor (issue #16): the same study on a Ray cluster gives the same results
with the same guarantees as on this machine.

A real two-node Ray cluster on localhost (`ray_cluster`, one per test session, one CPU
per node) runs quick studies of a few tiny runs; one thread per run, `--deterministic`.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal

import pytest
from conftest import run_cli
from test_reliability import TINY_ARGS, alive, result_files, start_study, wait_for
from test_workers import SLOW, outcome, study_args

from compare.errors import UserError
from compare.run import ray_executor


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_a_ray_study_has_the_bits_of_a_local_one(tmp_path, framework, ray_cluster, fresh_runs):
    # The worker tests' study (two models, two seeds) on the two-node cluster: the
    # first seed of each model has a node to itself, then two runs go at once. The
    # reference is each run in a fresh local worker, which the local executor's
    # studies equal (test_workers).
    out = tmp_path / "ray"
    ray_args = ("--executor", "ray", "--ray-address", ray_cluster)
    done = run_cli("run", *study_args(framework, 2, jobs=None), *ray_args, "--out", str(out))
    assert done.returncode == 0, done.stderr

    got, expected = result_files(out), fresh_runs(framework)
    assert set(got) == set(expected) and len(got) == 4
    for name, run in got.items():
        assert run["status"] == "ok", run.get("reason")
        assert outcome(run) == outcome(expected[name]), name
        assert run["node"]["hostname"] and run["node"]["cpu_count"]
        experiment, stem = name.split("/")
        assert (out / "logs" / experiment / f"{stem}.log").exists()
    assert sorted(r["exclusive"] for r in got.values()) == [False, False, True, True]
    assert {r["jobs"] for r in got.values()} == {2}  # one CPU on each of two nodes
    study = json.loads((out / "study.json").read_text())
    assert study["executor"] == "ray" and study["jobs"] == 2 and len(study["nodes"]) == 2
    assert study["ray_address"] == ray_cluster


@contextlib.contextmanager
def studying(*args: str):
    """A study started as a terminal starts it; killed on the way out if still running
    (an assertion failed before it ended)."""
    study = start_study(*args)
    try:
        yield study
    finally:
        if study.poll() is None:
            study.kill()
            study.communicate()


def parent_of(pid: int) -> int:
    return int(pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def descends_from_this_process(pid: int) -> bool:
    """Whether `pid` runs under this test process (the cluster's nodes are its children):
    other tests may run workers with the same log names at the same time (pytest-xdist)."""
    try:
        while pid > 1:
            pid = parent_of(pid)
            if pid == os.getpid():
                return True
    except (OSError, ValueError, IndexError):
        pass
    return False


def worker_writing_to(log_name: str) -> int | None:
    """The pid of this cluster's worker whose stderr is a run's log (its node's scratch
    copy, under a `keras-vs-pytorch-run-` directory)."""
    for fd in pathlib.Path("/proc").glob("[0-9]*/fd/2"):
        try:
            target = os.readlink(fd)
            command = (fd.parent.parent / "cmdline").read_bytes()
        except OSError:
            continue
        pid = int(fd.parent.parent.name)
        if (
            "/keras-vs-pytorch-run-" in target
            and target.endswith(f"/logs/mlp/{log_name}")
            and b"compare\0worker" in command
            and descends_from_this_process(pid)
        ):
            return pid
    return None


def test_a_killed_worker_or_lost_task_fails_only_its_run_and_a_rerun_completes(
    tmp_path, ray_cluster
):
    args = [
        *("--models", "mlp", "--frameworks", "torch", "--seeds", "4", "--threads", "1"),
        *("--deterministic", *SLOW, "--executor", "ray", "--ray-address", ray_cluster),
    ]
    out = tmp_path / "out"
    with studying(*args, "--out", str(out)) as study:
        # Seed 1: its worker is killed. Seed 2: the Ray worker process that runs it (and
        # holds its worker) is killed, so Ray loses the task.
        worker = wait_for(lambda: worker_writing_to("torch-seed1.log"), what="seed 1's worker")
        os.kill(worker, signal.SIGKILL)
        other = wait_for(lambda: worker_writing_to("torch-seed2.log"), what="seed 2's worker")
        os.kill(parent_of(other), signal.SIGKILL)
        _, stderr = study.communicate(timeout=300)
    assert study.returncode == 1, stderr
    assert "Traceback" not in stderr
    got = result_files(out)
    assert got["mlp/torch-seed0"]["status"] == "ok"
    assert got["mlp/torch-seed3"]["status"] == "ok"
    assert got["mlp/torch-seed1"]["status"] == "failed"
    assert "killed by SIGKILL" in got["mlp/torch-seed1"]["reason"]
    assert str(out / "logs") in got["mlp/torch-seed1"]["reason"]  # the driver's copy
    assert got["mlp/torch-seed2"]["status"] == "failed"
    assert "the Ray task was lost" in got["mlp/torch-seed2"]["reason"]
    wait_for(lambda: not alive(other), timeout=10, what="seed 2's worker to die with its parent")

    resumed = run_cli("run", *args, "--no-progress", "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert "2 ran ok, 2 already done" in resumed.stderr
    assert all(r["status"] == "ok" for r in result_files(out).values())


def test_ctrl_c_cancels_the_tasks_and_keeps_finished_results(tmp_path, ray_cluster):
    args = [
        *("--models", "mlp", "--frameworks", "torch", "--seeds", "12", "--threads", "1"),
        *(*SLOW, "--executor", "ray", "--ray-address", ray_cluster),
    ]
    out = tmp_path / "out"
    with studying(*args, "--out", str(out)) as study:
        wait_for((out / "runs" / "mlp" / "torch-seed0.json").exists, what="the first result")
        worker = wait_for(lambda: worker_writing_to("torch-seed1.log"), what="a running task")
        os.killpg(study.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C
        _, stderr = study.communicate(timeout=60)
    assert study.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1].startswith("interrupted: finished runs are saved")
    wait_for(lambda: not alive(worker), timeout=20, what="the cancelled task's worker to die")
    runs = result_files(out)
    assert runs["mlp/torch-seed0"]["status"] == "ok" and len(runs) < 12
    assert all(r["status"] == "ok" for r in runs.values())
    assert not list(out.rglob("*.tmp"))


def one_line_error(done, *fragments: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


QUICK = ("--models", "mlp", "--frameworks", "torch", "--seeds", "1", "--no-progress")


def test_a_gpu_study_on_a_cluster_without_gpus_stops_before_anything_runs(tmp_path, ray_cluster):
    out = tmp_path / "out"
    ray_args = ("--executor", "ray", "--ray-address", ray_cluster)
    done = run_cli("run", *QUICK, "--device", "gpu", *ray_args, "--out", str(out))
    one_line_error(done, "--device gpu", "no GPU", "--device cpu")
    assert not (out / "runs").exists()


def test_a_node_without_the_data_fails_its_runs_with_the_fix(tmp_path, ray_cluster):
    empty = tmp_path / "no-data"
    empty.mkdir()
    out = tmp_path / "out"
    # A split no other test prepares: the node's prepared-data cache (which needs no
    # data directory) cannot hold it, so the node must read the (missing) files.
    unique = ("--set", "data.validation_limit=37")
    ray_args = ("--executor", "ray", "--ray-address", ray_cluster)
    args = (*QUICK, *TINY_ARGS, *unique, "--data-dir", str(empty), *ray_args)
    done = run_cli("run", *args, "--out", str(out))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    (run,) = result_files(out).values()
    assert run["status"] == "failed"
    assert run["reason"].startswith("on ") and str(empty) in run["reason"]
    assert "\n" not in run["reason"]


def test_cluster_mistakes_are_one_line(tmp_path):
    base = ("run", *QUICK, "--out", str(tmp_path / "out"))
    # Port 9 (discard) on this machine: nothing listens, the refusal is immediate.
    one_line_error(
        run_cli(*base, "--executor", "ray", "--ray-address", "127.0.0.1:9"),
        "cannot reach the Ray cluster at '127.0.0.1:9'",
        "ray start --head",
    )
    one_line_error(run_cli(*base, "--executor", "ray", "--jobs", "2"), "--jobs", "--threads")
    one_line_error(run_cli(*base, "--ray-address", "127.0.0.1:9"), "--executor ray")
    one_line_error(run_cli(*base, "--executor", "slurm"), "unknown executor 'slurm'")


class FakeRay:
    def __init__(self, nodes):
        self._nodes = nodes

    def nodes(self):
        return self._nodes


def fake_executor(nodes) -> ray_executor.RayExecutor:
    pool = ray_executor.RayExecutor.__new__(ray_executor.RayExecutor)
    pool.ray, pool.address, pool.owned = FakeRay(nodes), "head:6379", False
    return pool


def node(cpus, gpus=0, study=True, alive=True):
    resources = {"CPU": cpus, "GPU": gpus}
    if study:
        resources[ray_executor.NODE_RESOURCE] = 1.0
    return {"Alive": alive, "Resources": resources, "NodeManagerHostname": "n"}


def test_the_cluster_decides_threads_and_jobs_and_refuses_what_it_cannot_run():
    from compare.run.plan import Options

    pool = fake_executor([node(8), node(4), node(64, study=False), node(32, alive=False)])
    pool.nodes = pool._study_nodes()
    assert len(pool.nodes) == 2  # only live nodes that offer the study resource
    assert pool._decide(Options(executor="ray")).jobs == 12  # one thread each
    assert pool._decide(Options(executor="ray", threads=3)).jobs == 2 + 1
    assert pool.gpu is False
    with pytest.raises(UserError, match="no node of the Ray cluster at head:6379 has that many"):
        pool._decide(Options(executor="ray", threads=9))
    with pytest.raises(UserError, match="no GPU"):
        pool._decide(Options(executor="ray", device="gpu"))

    gpus = fake_executor([node(8, gpus=2), node(8)])
    gpus.nodes = gpus._study_nodes()
    assert gpus._decide(Options(executor="ray", device="auto")).jobs == 2  # one per GPU
    assert gpus.gpu is True

    bare = fake_executor([node(8, study=False)])
    with pytest.raises(UserError, match=ray_executor.NODE_RESOURCE):
        bare._study_nodes()
