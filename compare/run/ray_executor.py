"""The Ray executor: a study's runs as Ray tasks, on a cluster or a local Ray instance.

Stage: run. The same interface as `compare.run.executor.LocalExecutor` (`options`,
`run`, `shutdown`, `describe`): the runner (`compare.run.runner`) does not know which
one it drives, and resume, the output lock, Ctrl-C and the statuses are the runner's,
so they behave the same. Only this module imports `ray`, and only `--executor ray`
imports this module.

- One run = one Ray task asking for what the run needs: `num_cpus` = its threads,
  `num_gpus` = 1 for a GPU run, and a share of the custom resource `NODE_RESOURCE`
  that every study node offers once: a run the report times (`exclusive`) takes all
  of it, so it has its node to itself; any other run takes `SHARE`. Ray schedules;
  there is no scheduler here.
- The task runs the run on the node exactly as the local executor does
  (`executor.execute_run`), in a long-lived worker process that the Ray worker process
  keeps between tasks. Framework isolation: the Ray worker process imports no
  framework; its worker process imports one. Tasks of each worker key (framework,
  Keras backend, threads, device, determinism) get their own `runtime_env`, so Ray
  keeps a separate pool of worker processes per key and a kept worker is always of
  the right kind.
- The task writes into a scratch directory on its node and returns the result and the
  log; the driver writes both into the study's output directory, atomically. A task
  lost with its node or its Ray worker process becomes a `failed` result with Ray's
  reason; a rerun retries it (the runner's rule for `failed`).
- Every node reads Fashion-MNIST from its own data directory or cache, verified as on
  one machine; a node without it fails its runs with the usual one-line fix.
- Each node must hold this project at the same path as the driver, with its
  dependencies (README, "Running on a cluster"): tasks import `compare` from there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import pathlib
import shutil
import socket
import tempfile

from compare import files
from compare.errors import UserError
from compare.run import environment, executor, protocol
from compare.run.plan import Options, Run, machine_cores

# Every node a study may use offers one unit of this resource (`ray start --resources`);
# a local instance started for the study gets it automatically.
NODE_RESOURCE = "keras_vs_pytorch_node"
SHARE = 0.001  # what a run that is not timed holds of its node's NODE_RESOURCE
OBJECT_STORE_BYTES = 128 * 2**20  # results are small dicts; Ray's default takes 30 % of RAM
CONNECT_TIMEOUT_SECONDS = 5
FIX_NODES = (
    f"start every node with `ray start ... --resources='{{\"{NODE_RESOURCE}\": 1}}'` "
    "(README, Running on a cluster)"
)


# --- on the node ----------------------------------------------------------------------

# This Ray worker process's long-lived worker (one key only: see the runtime_env above).
_worker: executor.Worker | None = None


def run_on_node(run: Run, options: Options, exclusive: bool) -> dict:
    """The Ray task: run `run` here, return its result and log for the driver to write."""
    global _worker
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="keras-vs-pytorch-run-"))
    here = dataclasses.replace(options, out=scratch)
    reply = {"node": environment.node(), "scratch_log": str(run.log_path(scratch))}
    try:
        try:
            result, _worker = executor.execute_run(
                run, here, lambda kind, payload: None, _worker, exclusive, options.jobs
            )
            reply["result"] = result
        except UserError as error:  # this node cannot run it (no data, no GPU): say why
            _worker = None  # it exited with its one line
            reply["user_error"] = str(error)
        with contextlib.suppress(OSError):
            reply["log"] = run.log_path(scratch).read_text(errors="replace")
        return reply
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --- on the driver --------------------------------------------------------------------


def address_of(options: Options) -> str | None:
    """The cluster to use: --ray-address, else RAY_ADDRESS, else None (a local instance)."""
    return options.ray_address or os.environ.get("RAY_ADDRESS") or None


def check_reachable(address: str) -> None:
    """Fail in seconds, not minutes (ray.init retries an unreachable GCS for long)."""
    if address == "auto":
        return  # a cluster started on this machine: ray.init finds it or says so at once
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), CONNECT_TIMEOUT_SECONDS):
            pass
    except (OSError, ValueError) as error:
        raise UserError(
            f"cannot reach the Ray cluster at {address!r} ({error}): start its head with "
            "`ray start --head` there, or fix --ray-address / RAY_ADDRESS"
        ) from None


def _connect(address: str | None):
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network calls home
    import ray

    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    if address is None:
        ray.init(
            address="local",
            num_cpus=machine_cores(),
            resources={NODE_RESOURCE: 1},
            include_dashboard=False,
            object_store_memory=OBJECT_STORE_BYTES,
            **quiet,
        )
        return ray
    check_reachable(address)
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise UserError(
            f"cannot connect to the Ray cluster at {address!r}: {str(error).splitlines()[0]} "
            "(fix --ray-address / RAY_ADDRESS, or start the cluster with `ray start --head`)"
        ) from None
    return ray


def _order(key: tuple) -> tuple:
    return tuple("" if part is None else str(part) for part in key)


class RayExecutor:
    """Runs batches of runs as Ray tasks; `options` holds the threads, jobs (the runs the
    cluster can hold at once) it decided."""

    def __init__(self, options: Options):
        self.pending: list = []  # the refs of the batch in flight
        self.address = address_of(options)
        self.ray = _connect(self.address)
        self.owned = self.address is None  # a local instance: stopped by shutdown
        self.on_this_machine = self.owned  # then the runner checks data and devices first
        try:
            self.nodes = self._study_nodes()
            self.options = self._decide(options)
        except BaseException:
            self.shutdown()
            raise
        self.remote = self.ray.remote(run_on_node)

    def _where(self) -> str:
        return "the local Ray instance" if self.owned else f"the Ray cluster at {self.address}"

    def _study_nodes(self) -> list[dict]:
        nodes = [
            {
                "hostname": node.get("NodeManagerHostname"),
                "address": node.get("NodeManagerAddress"),
                "cpus": node["Resources"].get("CPU", 0),
                "gpus": node["Resources"].get("GPU", 0),
            }
            for node in self.ray.nodes()
            if node.get("Alive") and node["Resources"].get(NODE_RESOURCE, 0) >= 1
        ]
        if not nodes:
            raise UserError(f"{self._where()} has no node offering '{NODE_RESOURCE}': {FIX_NODES}")
        return nodes

    def _decide(self, options: Options) -> Options:
        """Threads (default 1) and how many runs the nodes hold at once."""
        threads = options.threads or 1
        gpus = sum(node["gpus"] for node in self.nodes)
        device = options.device
        if device == "gpu" and gpus < 1:
            raise UserError(
                f"--device gpu: {self._where()} has no GPU on its study nodes: run with "
                "--device cpu, or add a GPU node (`ray start --num-gpus N ...`)"
            )
        # Ray reserves a GPU for a run that may use one: every run of a study that asks
        # for one, or, with auto, every run on a cluster that has one (the worker then
        # chooses as on one machine, so the result reads the same).
        self.gpu = device == "gpu" or (device == "auto" and gpus >= 1)
        most = max(node["cpus"] for node in self.nodes)
        if threads > most:
            raise UserError(
                f"--threads {threads}: no node of {self._where()} has that many CPUs "
                f"(the largest has {most:g}); use --threads {int(most)} or fewer"
            )
        slots = [
            min(int(node["cpus"] // threads), int(node["gpus"]))
            if self.gpu
            else int(node["cpus"] // threads)
            for node in self.nodes
        ]
        return dataclasses.replace(options, threads=threads, jobs=max(1, sum(slots)))

    def describe(self) -> dict:
        """For study.json: where the study ran."""
        return {"executor": "ray", "ray_address": self.address, "nodes": self.nodes}

    def _submit(self, run: Run, exclusive: bool):
        key = executor.worker_key_of(run, self.options)
        env = {
            "KERAS_VS_PYTORCH_WORKER_KEY": "/".join(map(str, key)),
            "PYTHONPATH": executor.project_pythonpath(),
        }
        return self.remote.options(
            num_cpus=self.options.threads,
            num_gpus=1 if self.gpu else 0,
            resources={NODE_RESOURCE: 1 if exclusive else SHARE},
            max_retries=0,  # a lost run is `failed` and retried by the next invocation
            runtime_env={"env_vars": env},
            name=run.label,
        ).remote(run, self.options, exclusive)

    def run(self, runs: list[Run], on_event, on_result, exclusive: bool = False) -> None:
        """Run `runs` as tasks (each `exclusive` one with its node to itself); call
        `on_result(run, result)` as each finishes, after its result file is written."""
        # Ray starts tasks in about the order they come; grouped by worker key, a node
        # switches kinds of worker less often (a Ray node keeps about one idle worker
        # process per CPU and ends the others after a second, with their workers).
        ordered = sorted(runs, key=lambda run: _order(executor.worker_key_of(run, self.options)))
        submitted = {self._submit(run, exclusive): run for run in ordered}
        self.pending = list(submitted)
        try:
            while self.pending:
                done, self.pending = self.ray.wait(self.pending, num_returns=1, timeout=0.5)
                for ref in done:
                    run = submitted[ref]
                    result = self._collect(run, ref, exclusive)
                    # Events come with the result, not as they happen.
                    if result.get("device_notice"):
                        on_event(run, protocol.NOTICE, result["device_notice"])
                    if result.get("epochs"):
                        last = result["epochs"][-1]
                        on_event(run, protocol.PROGRESS, {**last, "epochs": len(result["epochs"])})
                    on_result(run, result)
        except BaseException:
            self._cancel()
            raise

    def _collect(self, run: Run, ref, exclusive: bool) -> dict:
        """The run's result, written into the study's output directory."""
        out = self.options.out
        try:
            reply = self.ray.get(ref)
        except self.ray.exceptions.RayError as error:  # its node or worker process was lost
            first = (str(error).strip().splitlines() or [""])[0]
            reply = {"lost": f"the Ray task was lost ({type(error).__name__}: {first})"}
        log_path = run.log_path(out)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        files.write_atomic(log_path, lambda handle: handle.write(reply.get("log", "")))
        result = reply.get("result")
        if result is None:
            node = reply.get("node") or {}
            where = f"on {node['hostname']}" if node else "on its node"
            reason = reply.get("lost") or f"{where}: {reply.get('user_error')}"
            request = executor.request_for(run, self.options, exclusive, self.options.jobs)
            result = protocol.failed_result(request, reason)
        elif "reason" in result and reply.get("scratch_log"):
            # A worker that died names its log: the copy the driver just wrote.
            result["reason"] = result["reason"].replace(reply["scratch_log"], str(log_path))
        # The worker records its node; a run lost before it reported gets the task's (or None).
        result.setdefault("node", reply.get("node"))
        files.write_json_atomic(run.path(out), result)
        return result

    def _cancel(self) -> None:
        for ref in self.pending:
            with contextlib.suppress(Exception):
                self.ray.cancel(ref, force=True)  # kills its Ray worker and so its worker
        self.pending = []

    def shutdown(self, kill: bool = False) -> None:
        """Cancel what is still running; disconnect (stop the instance started here)."""
        if kill:
            self._cancel()
        if self.ray.is_initialized():
            self.ray.shutdown()
