"""The local executor: long-lived worker processes, `--jobs` at once, one run each at a time.

Stage: run. The runner (`compare.run.runner`) decides what runs; this module runs it.

- A worker (`compare.run.worker`) imports one framework (on one Keras backend) once and
  then runs requests in sequence, so the study pays the imports once per worker, not
  once per run. A worker is tied to its `worker_key` (framework, Keras backend,
  threads, device, determinism); a slot whose next run needs another key closes its
  worker and starts the right one.
- `jobs` slots run at once, each with `threads` threads. A run's bits do not depend on
  how many ran beside it (same threads, same seeds); its timing does. So the runner
  names some runs `exclusive`: they run while every other slot waits, and only their
  timing is reported (`compare.report`). Every result records `jobs` and `exclusive`.
- A worker that dies (crash, kill -9, out of memory) loses only its run in flight: that
  run's result becomes `failed` with what the worker reported before, and the slot
  starts a new worker for its next run.
- Ctrl-C or a user error in any slot stops every worker and is raised in the caller.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from compare import files
from compare.errors import UserError
from compare.run import environment, protocol
from compare.run.plan import Options, Run

OnEvent = Callable[[Run, str, object], None]


def child_env(threads: int, keras_backend: str | None = None) -> dict:
    env = dict(os.environ)
    if keras_backend:
        # Keras reads its backend once, at import: the worker's environment decides it.
        env["KERAS_BACKEND"] = keras_backend
    # Same thread count for both frameworks, set before either runtime starts.
    env["OMP_NUM_THREADS"] = str(threads)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = project_pythonpath()
    return env


def project_pythonpath() -> str:
    """PYTHONPATH with this project first: how a worker, wherever it starts, imports it."""
    return os.pathsep.join(filter(None, [str(environment.ROOT), os.environ.get("PYTHONPATH")]))


def worker_command() -> list[str]:
    """How a worker starts; it reads its requests from stdin."""
    return [sys.executable, "-m", "compare", "worker", "-"]


def request_for(
    run: Run, options: Options, exclusive: bool = True, jobs: int = 1
) -> protocol.RunRequest:
    """The request the worker of `run` receives (the runner's pid and the send time
    make it die with the runner and measure its own startup)."""
    return protocol.RunRequest(
        experiment=run.experiment.to_dict(),
        spec_hash=run.experiment.spec_hash(),
        framework=run.framework,
        seed=run.seed,
        mode=run.mode,
        keras_backend=run.keras_backend,
        threads=options.threads,
        device=options.device,
        deterministic=options.deterministic,
        profile=options.profile,
        data_dir=options.data_dir,
        result_path=str(run.path(options.out)),
        framework_overrides=run.framework_overrides,
        runner_pid=os.getpid(),
        spawn_time=time.time(),
        log_path=str(run.log_path(options.out)),
        exclusive=exclusive,
        jobs=jobs,
    )


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        name = signal.Signals(-returncode).name
        text = f"worker killed by {name}"
        if -returncode == signal.SIGKILL:
            text += " (by the system when it ran out of memory, or by a user)"
        return text
    return f"worker exited with code {returncode}"


class Worker:
    """One long-lived worker process and the key it was started for."""

    def __init__(self, key: tuple, threads: int, keras_backend: str | None, log_path):
        self.key = key
        # Its first run's log, until each request redirects stderr (protocol.log_path):
        # what the interpreter says before the first request is read lands there too.
        with open(log_path, "a") as log:
            self.process = subprocess.Popen(
                worker_command(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=child_env(threads, keras_backend),
                cwd=environment.ROOT,
            )

    def run(self, request: protocol.RunRequest, on_event) -> int | None:
        """Send `request`, pass its events on; None when the run finished (the worker
        lives on), else the worker's exit code (it died or refused)."""
        with contextlib.suppress(BrokenPipeError, OSError):  # a worker that died at once
            self.process.stdin.write(request.to_json() + "\n")
            self.process.stdin.flush()
        for line in self.process.stdout:
            event = protocol.parse_event(line)
            if event is None:
                continue
            kind, payload = event
            if kind == protocol.DONE:
                return None
            on_event(kind, payload)
        return self.process.wait()

    def close(self) -> None:
        """Let the worker finish (its stdin closes), or kill it if it will not."""
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def execute_run(
    run: Run,
    options: Options,
    on_event: Callable[[str, object], None],
    worker: Worker | None = None,
    exclusive: bool = True,
    jobs: int = 1,
    stopping: Callable[[], bool] = lambda: False,
) -> tuple[dict, Worker | None]:
    """Run `run` on `worker` (a new one when None or of another key); return its result
    (a `failed` one written here if the worker died) and the worker, if still alive.
    A worker that died because the study is `stopping` (Ctrl-C) records nothing."""
    path, log_path = run.path(options.out), run.log_path(options.out)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("")  # the worker appends this run's stderr
    request = request_for(run, options, exclusive, jobs)
    if worker is not None and worker.key != request.worker_key:
        worker.close()
        worker = None
    if worker is None:
        worker = Worker(request.worker_key, options.threads, run.keras_backend, log_path)
    epochs: list[dict] = []  # what the worker reported, kept if it dies

    def relay(kind, payload):
        if kind == protocol.PROGRESS:
            epochs.append({k: v for k, v in payload.items() if k != "epochs"})
        on_event(kind, payload)

    try:
        returncode = worker.run(request, relay)
    except BaseException:  # Ctrl-C or anything else: never leave the worker running
        worker.kill()
        raise
    if returncode is None and path.exists():
        return files.read_json(path), worker
    log_tail = log_path.read_text(errors="replace").strip().splitlines()[-20:]
    if returncode == protocol.EXIT_USER_ERROR:
        raise UserError(
            log_tail[-1].removeprefix("error: ") if log_tail else "worker refused the run"
        )
    if returncode in (protocol.EXIT_INTERRUPTED, -signal.SIGINT) or stopping():
        raise KeyboardInterrupt  # the terminal interrupted the worker (and us)
    # The process died without writing (killed, out of memory, crashed hard).
    result = protocol.failed_result(
        request,
        f"{describe_exit(returncode or 0)} after {len(epochs)} finished epochs; "
        f"log {log_path}: {' | '.join(log_tail[-3:])}",
        epochs,
        failed_epoch=len(epochs) + 1,  # the first epoch without a result
    )
    files.write_json_atomic(path, result)
    return result, None


class LocalExecutor:
    """Runs batches of runs on `jobs` slots of long-lived workers (this machine).

    Each slot is a thread that lives as long as the executor and owns its worker: the
    kernel kills a worker when the thread that started it ends (PR_SET_PDEATHSIG is
    per thread), so a worker must not outlive its slot, nor a slot end before its
    worker is closed (`shutdown`).
    """

    on_this_machine = True  # every run runs here: the runner checks data and devices first

    def __init__(self, options: Options):
        self.options, self.jobs = options, options.jobs
        self.workers: list[Worker | None] = [None] * self.jobs
        self.condition = threading.Condition()
        self.queue: list[Run] = []
        self.allowed = 0  # slots that may take runs from the queue now
        self.busy = 0
        self.exclusive = False
        self.errors: list[BaseException] = []
        self.closed = False
        self.stopping = threading.Event()
        self.on_event: OnEvent = lambda run, kind, payload: None
        self.on_result: Callable[[Run, dict], None] = lambda run, result: None
        self.threads = [
            threading.Thread(target=self._slot, args=(i,), daemon=True) for i in range(self.jobs)
        ]
        for thread in self.threads:
            thread.start()

    def describe(self) -> dict:
        """For study.json: where the study ran."""
        return {"executor": "local", "nodes": [environment.node()]}

    def _take(self, index: int) -> Run | None:
        """The next run for slot `index` (holding the condition), or None to wait."""
        if index >= self.allowed or not self.queue or self.errors or self.stopping.is_set():
            return None
        key = getattr(self.workers[index], "key", None)
        # Prefer a run the slot's worker can take, so workers are reused.
        for position, run in enumerate(self.queue):
            if key is None or worker_key_of(run, self.options) == key:
                return self.queue.pop(position)
        return self.queue.pop(0)

    def _slot(self, index: int) -> None:
        while True:
            with self.condition:
                while not self.closed and (run := self._take(index)) is None:
                    self.condition.wait()
                if self.closed:
                    return
                self.busy += 1
                exclusive = self.exclusive or self.jobs == 1
            try:
                result, self.workers[index] = execute_run(
                    run,
                    self.options,
                    lambda kind, payload, run=run: self.on_event(run, kind, payload),
                    self.workers[index],
                    exclusive=exclusive,
                    jobs=self.jobs,
                    stopping=self.stopping.is_set,
                )
            except BaseException as error:  # noqa: BLE001 - raised again in `run`
                with self.condition:
                    self.workers[index] = None  # execute_run killed it
                    self.errors.append(error)
                    self.busy -= 1
                    self.condition.notify_all()
                continue
            with self.condition:
                self.on_result(run, result)
                self.busy -= 1
                self.condition.notify_all()

    def run(
        self,
        runs: list[Run],
        on_event: OnEvent,
        on_result: Callable[[Run, dict], None],
        exclusive: bool = False,
    ) -> None:
        """Run `runs`; `exclusive` runs them one at a time on one slot, the others on
        every slot. `on_result(run, result)` is called as each finishes."""
        with self.condition:
            self.queue = list(runs)
            self.on_event, self.on_result, self.exclusive = on_event, on_result, exclusive
            self.allowed = 1 if exclusive else self.jobs
            self.condition.notify_all()
        try:
            with self.condition:
                while (self.queue and not self.errors) or self.busy:
                    self.condition.wait(timeout=0.2)  # Ctrl-C lands between waits
        except BaseException:
            self.shutdown(kill=True)
            raise
        if self.errors:
            self.shutdown(kill=True)
            raise self.errors[0]

    def shutdown(self, kill: bool = False) -> None:
        """Close (or kill) every worker, then end the slots."""
        if kill:
            self.stopping.set()
        for worker in self.workers:
            if worker is not None:
                worker.kill() if kill else worker.close()
        with self.condition:
            self.closed = True
            self.condition.notify_all()
        for thread in self.threads:
            thread.join(timeout=30)
        for index, worker in enumerate(self.workers):  # one a slot started meanwhile
            if worker is not None:
                worker.kill()
            self.workers[index] = None


def worker_key_of(run: Run, options: Options) -> tuple:
    """The key of the worker that can run `run` (`protocol.worker_key`)."""
    return protocol.worker_key(
        run.framework, run.keras_backend, options.threads, options.device, options.deterministic
    )
