"""The study runner: executes a plan on long-lived workers; resumes, isolates failures.

Stage: run. The plan is `compare.run.plan`; the executor that runs it, `jobs` runs at a
time on long-lived worker processes, is `compare.run.executor`; what goes to and comes
from a worker is `compare.run.protocol`; the worker is `compare.run.worker`.

Every run gets the same thread count, and a worker process loads one framework only,
so one framework's runtime never shares a process with the other. With more than one
job, the first seed of each (experiment, implementation) runs first, alone: those are
the runs whose timing the report shows (`exclusive` in the result). What a study
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
- Ctrl-C stops every worker, keeps every finished result and exits 130. A worker that
  dies (kill -9, out of memory) loses only its run in flight, recorded as `failed`.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import time

from compare import files
from compare.data import fashion_mnist
from compare.errors import UserError
from compare.run import environment, executor, protocol, regression, timing
from compare.run.output import prepare_output, remove_stale_temporaries, study_lock
from compare.run.plan import Options, Run, concurrency, plan
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


# --- before any run ------------------------------------------------------------------


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
        [*executor.worker_command()[:-1], "--probe", framework, "--device", device],
        capture_output=True,
        text=True,
        env=executor.child_env(1, keras_backend),
        cwd=environment.ROOT,
    )
    if probe.returncode != 0:
        lines = probe.stderr.strip().splitlines() or [f"exit code {probe.returncode}"]
        raise UserError(lines[-1].removeprefix("error: "))


def open_executor(options: Options):
    """The executor `options.executor` names, started: `executor.LocalExecutor` or, for
    "ray", `ray_executor.RayExecutor` (only then is Ray imported). Both take batches of
    runs (`run`), say where they ran (`describe`), and stop (`shutdown`); their
    `options` hold the threads and jobs they decided."""
    if options.executor == "ray":
        from compare.run import ray_executor

        return ray_executor.RayExecutor(options)
    return executor.LocalExecutor(concurrency(options))


def timing_runs(runs: list[Run], jobs: int) -> list[Run]:
    """The runs that get the machine to themselves: with one job, all; with more, the
    first seed of each (experiment, implementation), whose timing the report shows."""
    if jobs == 1:
        return list(runs)
    first: dict[tuple, Run] = {}
    for run in runs:
        key = (run.experiment.name, run.variant)
        if key not in first or run.seed < first[key].seed:
            first[key] = run
    return list(first.values())


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
        # Ray: connects and checks the cluster (its GPUs, its study nodes) first.
        pool = open_executor(options)
        try:
            options = pool.options  # threads and jobs decided
            if pool.on_this_machine:  # a cluster's nodes each check their own
                probe_devices(options)
                fashion_mnist.fetch(options.data_dir)  # verified once, before any run
            write_published(options.out, published_for(study))
        except BaseException:
            pool.shutdown(kill=True)
            raise
        outcomes = {run: kept_result(run, options) for run in runs}
        todo = [run for run in runs if outcomes[run] is None]
        exclusive = timing_runs(todo, options.jobs)
        shared = [run for run in todo if run not in set(exclusive)]
        notices: set = set()
        bar = tqdm(
            total=len(runs),
            initial=len(runs) - len(todo),
            unit="run",
            disable=not options.progress,
            dynamic_ncols=True,
            file=sys.stderr,
        )

        def on_event(run, kind, payload):
            if kind == protocol.NOTICE and payload not in notices:
                notices.add(payload)  # once per study, not once per run
                bar.write(f"notice: {payload}", file=sys.stderr)
            elif kind == protocol.PROGRESS:
                # Regression nets and runs without a validation set: the loss.
                accuracy, loss = payload.get("val_accuracy"), payload.get("train_loss")
                metric = (
                    f"val_acc {accuracy:.3f}"
                    if accuracy is not None
                    else f"loss {loss:.4g}"
                    if loss is not None
                    else "val_acc nan"
                )
                bar.set_description(run.label)
                bar.set_postfix_str(f"epoch {payload['epoch']}/{payload['epochs']} {metric}")

        def on_result(run, result):
            outcomes[run] = result
            bar.update(1)

        try:
            # Timing runs first, alone; then the rest, `jobs` at a time.
            pool.run(exclusive, on_event, on_result, exclusive=True)
            pool.run(shared, on_event, on_result)
        finally:
            pool.shutdown()
            bar.close()
        wall = time.perf_counter() - started
        executed = [outcomes[run] for run in todo]
        # The regression nets' runs are ok one by one; the study also holds them to
        # their step-by-step agreement (with each other, in depths, with NumPy).
        disagreements = regression.disagreements(regression.agreement(list(outcomes.values())))
        summary = {
            "study": study.name,
            "profile": options.profile,
            "frameworks": list(options.frameworks),
            "threads": options.threads,
            "jobs": options.jobs,
            **pool.describe(),  # the executor and the nodes it ran on
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
            "runs_exclusive": len(exclusive),
            "statuses": {
                status: sum(r.get("status") == status for r in outcomes.values())
                for status in ("ok", "diverged", "failed")
            },
            "regression_disagreements": disagreements,
            "wall_seconds": wall,
            # Where the study's time went: training epochs against everything else
            # (spawn, imports, data, compilation, evaluation, writing), over the
            # capacity the study held (wall x jobs); None when nothing ran.
            "overhead": timing.study_overhead(executed, wall, options.jobs) if todo else None,
            "environment": environment.fingerprint(),
        }
        files.write_json_atomic(options.out / "study.json", summary)
    not_ok = [(run, r) for run, r in outcomes.items() if r.get("status") != "ok"]
    for run, result in not_ok:
        print(describe(run, result), file=sys.stderr)
    for line in disagreements:
        print(line, file=sys.stderr)
    ran_ok = sum(outcomes[run].get("status") == "ok" for run in todo)
    counts = summary["statuses"]
    print(
        f"{len(runs)} runs: {ran_ok} ran ok, {len(runs) - len(todo)} already done, "
        f"{counts['diverged']} diverged, {counts['failed']} failed; results in {options.out}",
        file=sys.stderr,
    )
    return 1 if not_ok or disagreements else 0
