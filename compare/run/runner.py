"""The study runner: executes a plan, one worker process per run; resumes, isolates failures.

Stage: run. The plan is `compare.run.plan`; what goes to and comes from a worker is
`compare.run.protocol`; the worker is `compare.run.worker`.

Every (experiment, framework, seed) runs in its own subprocess with the same thread
count, so one framework's runtime never shares a process with the other. What a study
promises (issue #7):

- Every input is checked before the first run starts: the plan (spec values), the
  output directory, `--device gpu` (probed once per framework and Keras backend) and the data.
- A lock keeps two studies out of one output directory.
- A run's outcome is its result file, written atomically (by the worker, or by the
  runner when the worker died): `ok`, `diverged` (NaN/inf loss) or `failed`
  (exception, signal, out of memory). One run's failure never stops the others; the
  study exits 1 with one line per run that is not ok.
- A rerun of the same command runs only what is missing. A result is kept when its
  identity matches and its status is `ok` or `diverged` (a diverged run diverges again
  with the same seed, so rerunning it costs time and teaches nothing); `failed` runs are
  retried. Identity is the spec hash plus `--deterministic`: the switch changes the
  bits (see parity-notes.md) but is not a hyperparameter, so it lives next to the spec
  in the result (`deterministic`), not in the spec or in the file name (one file per
  experiment, framework and seed keeps the report from counting a seed twice).
- Workers die with the runner, so a kill -9 leaves no orphan writing later, and the
  next study removes the temporary files a killed writer left behind.
- Ctrl-C stops the current worker, keeps every finished result and exits 130.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import subprocess
import sys
import time

from compare import files
from compare.data import fashion_mnist
from compare.errors import UserError
from compare.run import environment, protocol
from compare.run.output import prepare_output, remove_stale_temporaries, study_lock
from compare.run.plan import Options, Run, plan
from compare.spec.published import published_for
from compare.spec.schema import StudySpec

# Statuses a rerun keeps; anything else (failed, or a file from an older spec) reruns.
KEPT_STATUSES = ("ok", "diverged")
PUBLISHED_SCHEMA = "keras-vs-pytorch/published/v1"


def kept_result(run: Run, options: Options) -> dict | None:
    """The run's existing result when a rerun keeps it, else None (it must run)."""
    try:
        result = files.read_json(run.path(options.out))
    except (OSError, ValueError):
        return None
    same_identity = (
        result.get("spec_hash") == run.experiment.spec_hash()
        and result.get("deterministic", False) == options.deterministic
    )
    return result if same_identity and result.get("status") in KEPT_STATUSES else None


# --- worker processes ---------------------------------------------------------------


def _child_env(threads: int, keras_backend: str | None = None) -> dict:
    env = dict(os.environ)
    if keras_backend:
        # Keras reads its backend once, at import: the worker's environment decides it.
        env["KERAS_BACKEND"] = keras_backend
    # Same thread count for both frameworks, set before either runtime starts.
    env["OMP_NUM_THREADS"] = str(threads)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(environment.ROOT), env.get("PYTHONPATH")])
    )
    return env


def worker_command() -> list[str]:
    """How a worker starts; it reads its request from stdin."""
    return [sys.executable, "-m", "compare", "worker", "-"]


def probe_devices(options: Options) -> None:
    """`--device gpu`: ask each framework (Keras: on each backend asked for) once, before
    any run, whether it can comply; each backend sees the GPU through its own library."""
    if options.device != "gpu":
        return  # cpu needs no check; with auto each worker picks a device and says which
    for framework in options.frameworks:
        backends = options.keras_backends if framework == "keras" else (None,)
        for backend in backends:
            _probe_device(framework, backend, options.device)


def _probe_device(framework: str, keras_backend: str | None, device: str) -> None:
    probe = subprocess.run(
        [*worker_command()[:-1], "--probe", framework, "--device", device],
        capture_output=True,
        text=True,
        env=_child_env(1, keras_backend),
        cwd=environment.ROOT,
    )
    if probe.returncode != 0:
        lines = probe.stderr.strip().splitlines() or [f"exit code {probe.returncode}"]
        raise UserError(lines[-1].removeprefix("error: "))


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        name = signal.Signals(-returncode).name
        text = f"worker killed by {name}"
        if -returncode == signal.SIGKILL:
            text += " (by the system when it ran out of memory, or by a user)"
        return text
    return f"worker exited with code {returncode}"


def request_for(run: Run, options: Options, path: pathlib.Path) -> protocol.RunRequest:
    """The request the worker of `run` receives (the runner's pid and the spawn time
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
        result_path=str(path),
        framework_overrides=run.framework_overrides,
        runner_pid=os.getpid(),
        spawn_time=time.time(),
    )


def execute_run(run: Run, options: Options, on_event) -> dict:
    """Run one worker; return its result (writing a `failed` one if the worker died).

    `on_event(kind, payload)` receives the worker's PROGRESS and NOTICE lines.
    """
    path, log_path = run.path(options.out), run.log_path(options.out)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    request = request_for(run, options, path)
    epochs: list[dict] = []  # what the worker reported, kept if it dies
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            worker_command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=_child_env(options.threads, run.keras_backend),
            cwd=environment.ROOT,
        )
        try:
            with contextlib.suppress(BrokenPipeError):  # a worker that died at once
                process.stdin.write(request.to_json())
                process.stdin.close()
            for line in process.stdout:
                event = protocol.parse_event(line)
                if event is None:
                    continue
                kind, payload = event
                if kind == protocol.PROGRESS:
                    epochs.append({k: v for k, v in payload.items() if k != "epochs"})
                on_event(kind, payload)
            returncode = process.wait()
        except BaseException:  # Ctrl-C or anything else: never leave the worker running
            _stop(process)
            raise
    log_tail = log_path.read_text(errors="replace").strip().splitlines()[-20:]
    if returncode == protocol.EXIT_USER_ERROR:
        raise UserError(
            log_tail[-1].removeprefix("error: ") if log_tail else "worker refused the run"
        )
    if returncode in (protocol.EXIT_INTERRUPTED, -signal.SIGINT):
        raise KeyboardInterrupt  # the terminal interrupted the worker (and us)
    if returncode == 0 and path.exists():
        result = files.read_json(path)
    else:
        # The process died without writing (killed, out of memory, crashed hard).
        failed_epoch = len(epochs) + 1  # the first epoch without a result
        result = {
            **protocol.result_header(request),
            "status": "failed",
            "reason": f"{_describe_exit(returncode)} after {len(epochs)} finished epochs; "
            f"log {log_path}: {' | '.join(log_tail[-3:])}",
            "failed_epoch": failed_epoch,
            "epochs": epochs,
        }
        files.write_json_atomic(path, result)
    return result


# --- the study ----------------------------------------------------------------------


def write_published(out: pathlib.Path, published: dict[str, dict]) -> None:
    """Merge the study's published figures into OUT/published.json for the report.

    Shape: {"schema": PUBLISHED_SCHEMA, "experiments": {name: studies.PUBLISHED[name]}}.
    """
    if not published:
        return
    path = out / "published.json"
    current = files.read_json(path).get("experiments", {}) if path.exists() else {}
    payload = {"schema": PUBLISHED_SCHEMA, "experiments": {**current, **published}}
    files.write_json_atomic(path, payload)


def describe(run: Run, result: dict) -> str:
    """One summary line for a run that did not finish ok."""
    return f"{run.label}: {result.get('status')} ({result.get('reason', 'no reason recorded')})"


def run_study(study: StudySpec, options: Options) -> int:
    """Run every missing run of the study; return 0 when all are ok, else 1."""
    from tqdm import tqdm

    started = time.perf_counter()
    runs = plan(study, options)
    prepare_output(options.out)
    with study_lock(options.out):
        remove_stale_temporaries(options.out)
        probe_devices(options)
        fashion_mnist.fetch(options.data_dir)  # verified once, before any process starts
        write_published(options.out, published_for(study))
        outcomes = {run: kept_result(run, options) for run in runs}
        todo = [run for run in runs if outcomes[run] is None]
        worker_seconds, notices = 0.0, set()
        bar = tqdm(
            total=len(runs),
            initial=len(runs) - len(todo),
            unit="run",
            disable=not options.progress,
            dynamic_ncols=True,
            file=sys.stderr,
        )
        try:
            for run in todo:
                bar.set_description(run.label)

                def on_event(kind, payload):
                    if kind == protocol.NOTICE and payload not in notices:
                        notices.add(payload)  # once per study, not once per run
                        bar.write(f"notice: {payload}", file=sys.stderr)
                    elif kind == protocol.PROGRESS:
                        # Regression nets and runs without a validation set: the loss.
                        accuracy, loss = payload.get("val_accuracy"), payload.get("loss")
                        metric = (
                            f"val_acc {accuracy:.3f}"
                            if accuracy is not None
                            else f"loss {loss:.4g}"
                            if loss is not None
                            else "val_acc nan"
                        )
                        bar.set_postfix_str(
                            f"epoch {payload['epoch']}/{payload['epochs']} {metric}"
                        )

                result = execute_run(run, options, on_event)
                worker_seconds += (result.get("wall_seconds") or 0.0) + (
                    result.get("startup_seconds") or 0.0
                )
                outcomes[run] = result
                bar.update(1)
        finally:
            bar.close()
        wall = time.perf_counter() - started
        summary = {
            "study": study.name,
            "profile": options.profile,
            "frameworks": list(options.frameworks),
            "threads": options.threads,
            "deterministic": options.deterministic,
            # The report's TOST verdict uses the study's margin (compare.report.equivalence).
            "equivalence_margin": study.equivalence_margin,
            "runs_planned": len(runs),
            "planned": [
                {
                    "experiment": r.experiment.name,
                    "framework": r.framework,
                    "variant": r.variant,
                    "mode": r.mode,
                    "keras_backend": r.keras_backend,
                    "seed": r.seed,
                    "spec_hash": r.experiment.spec_hash(),
                }
                for r in runs
            ],
            "runs_executed": len(todo),
            "statuses": {
                status: sum(r.get("status") == status for r in outcomes.values())
                for status in ("ok", "diverged", "failed")
            },
            "wall_seconds": wall,
            "worker_seconds": worker_seconds,
            # Harness overhead: everything the runner spent outside the workers' own
            # measured lifetime (spawning, progress bar, writing results).
            "harness_overhead_seconds": max(wall - worker_seconds, 0.0) if todo else None,
            "environment": environment.fingerprint(),
        }
        files.write_json_atomic(options.out / "study.json", summary)
    not_ok = [(run, r) for run, r in outcomes.items() if r.get("status") != "ok"]
    for run, result in not_ok:
        print(describe(run, result), file=sys.stderr)
    ran_ok = sum(outcomes[run].get("status") == "ok" for run in todo)
    counts = summary["statuses"]
    print(
        f"{len(runs)} runs: {ran_ok} ran ok, {len(runs) - len(todo)} already done, "
        f"{counts['diverged']} diverged, {counts['failed']} failed; results in {options.out}",
        file=sys.stderr,
    )
    return 1 if not_ok else 0
