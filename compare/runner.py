"""The study runner: plans runs, starts one process per run, resumes, isolates failures.

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
import dataclasses
import fcntl
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

from compare import data as data_mod
from compare import devices, environment, equivalence, modes, results, studies
from compare.errors import UserError
from compare.spec import ExperimentSpec, StudySpec, apply_overrides, resolve, validate

DEVICES = devices.DEVICES
# Statuses a rerun keeps; anything else (failed, or a file from an older spec) reruns.
KEPT_STATUSES = ("ok", "diverged")
PUBLISHED_SCHEMA = "keras-vs-pytorch/published/v1"


@dataclasses.dataclass(frozen=True)
class Run:
    experiment: ExperimentSpec  # as this framework runs it (see effective_spec)
    framework: str
    seed: int
    mode: str = modes.DEFAULT_MODE
    keras_backend: str | None = None  # Keras runs only
    # The experiment's per-framework table, recorded in the result; not part of the
    # run's identity (the spec above already holds this side's values).
    framework_overrides: dict = dataclasses.field(default_factory=dict, hash=False, compare=False)

    def path(self, out: pathlib.Path) -> pathlib.Path:
        return results.run_path(out, self.experiment.name, self.variant, self.seed)

    @property
    def variant(self) -> str:
        return results.variant(self.framework, self.keras_backend, self.mode)

    def log_path(self, out: pathlib.Path) -> pathlib.Path:
        path = self.path(out)
        return out / "logs" / path.parent.name / f"{path.stem}.log"

    @property
    def label(self) -> str:
        return f"{self.experiment.name}/{self.variant}/seed{self.seed}"


@dataclasses.dataclass(frozen=True)
class Options:
    frameworks: tuple[str, ...] = results.FRAMEWORKS
    seeds: int | None = None
    profile: str = "default"
    device: str = "auto"
    threads: int = os.cpu_count() or 1
    out: pathlib.Path = pathlib.Path("reports")
    data_dir: str | None = None
    overrides: tuple[str, ...] = ()
    progress: bool = True
    deterministic: bool = False
    modes: tuple[str, ...] = (modes.DEFAULT_MODE,)
    keras_backends: tuple[str, ...] = (results.DEFAULT_KERAS_BACKEND,)


def check_options(options: Options) -> None:
    for framework in options.frameworks:
        if framework not in results.FRAMEWORKS:
            raise UserError(
                f"unknown framework '{framework}' (choose from: {', '.join(results.FRAMEWORKS)})"
            )
    if not options.frameworks:
        raise UserError("--frameworks is empty: name at least one of torch, keras")
    if options.device not in DEVICES:
        raise UserError(f"unknown device '{options.device}' (choose one of: {', '.join(DEVICES)})")
    if options.threads < 1:
        raise UserError(f"--threads must be >= 1, got {options.threads}")
    if options.seeds is not None and options.seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {options.seeds}")
    for name, given, known in (
        ("mode", options.modes, modes.MODES),
        ("Keras backend", options.keras_backends, results.KERAS_BACKENDS),
    ):
        if not given:
            raise UserError(f"no {name} given (choose from: {', '.join(known)})")
        for value in given:
            if value not in known:
                raise UserError(f"unknown {name} '{value}' (choose from: {', '.join(known)})")


def effective_spec(experiment: ExperimentSpec, framework: str, options: Options):
    """What `framework` runs: its framework_overrides, then the profile, then --set.

    The returned spec has no framework_overrides of its own (it is one side); the
    table that made the sides differ is recorded next to it in the result.
    """
    side = dataclasses.replace(resolve(experiment, framework), framework_overrides={})
    side = studies.apply_profile(side, options.profile)
    return validate(apply_overrides(side, list(options.overrides)))


def plan(study: StudySpec, options: Options) -> list[Run]:
    """The runs of a study, each framework's side validated with the profile and
    overrides applied."""
    check_options(options)
    seeds = options.seeds if options.seeds is not None else study.seeds
    if seeds < 1:
        raise UserError(f"seeds must be >= 1, got {seeds}")
    runs = []
    for experiment in study.experiments:
        sides = {fw: effective_spec(experiment, fw, options) for fw in options.frameworks}
        for seed in range(seeds):
            for framework in options.frameworks:
                backends = options.keras_backends if framework == "keras" else (None,)
                for backend in backends:
                    for mode in options.modes:
                        runs.append(
                            Run(
                                sides[framework],
                                framework,
                                seed,
                                mode=mode,
                                keras_backend=backend,
                                framework_overrides=experiment.framework_overrides,
                            )  # fmt: skip
                        )
    return runs


def variant_label(result: dict) -> str:
    """The implementation a result belongs to, as the report and the benchmark name it."""
    return results.implementation_label(result)


# --- the output directory -----------------------------------------------------------


def prepare_output(out: pathlib.Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        raise UserError(
            f"output directory {out} cannot be written ({error.strerror}): choose another --out"
        ) from None


@contextlib.contextmanager
def study_lock(out: pathlib.Path):
    """Hold an exclusive lock on OUT while a study writes there.

    The kernel drops the lock when the holder dies, even by SIGKILL, so a killed study
    never blocks the next one. Workers do not inherit it (Popen closes other fds).
    """
    handle = open(out / ".lock", "w")  # noqa: SIM115 - held for the whole block
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"another study is writing to {out}: wait for it or choose another --out"
            ) from None
        yield
    finally:
        handle.close()


def remove_stale_temporaries(out: pathlib.Path) -> list[pathlib.Path]:
    """Delete the temporary files of atomic writes that a killed process left behind.

    Only call this holding the study lock: then no writer of these files is alive.
    """
    stale = [*out.glob("runs/*/.*.tmp"), *out.glob(".study.json.*.tmp")]
    for path in stale:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return stale


def kept_result(run: Run, options: Options) -> dict | None:
    """The run's existing result when a rerun keeps it, else None (it must run)."""
    try:
        result = results.read_json(run.path(options.out))
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


def execute_run(run: Run, options: Options, on_event) -> dict:
    """Run one worker; return its result (writing a `failed` one if the worker died).

    `on_event(kind, payload)` receives the worker's PROGRESS and NOTICE lines.
    """
    path, log_path = run.path(options.out), run.log_path(options.out)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    request = {
        "experiment": run.experiment.to_dict(),
        "spec_hash": run.experiment.spec_hash(),
        "framework_overrides": run.framework_overrides,
        "framework": run.framework,
        "seed": run.seed,
        "mode": run.mode,
        "keras_backend": run.keras_backend,
        "threads": options.threads,
        "device": options.device,
        "deterministic": options.deterministic,
        "profile": options.profile,
        "data_dir": options.data_dir,
        "result_path": str(path),
        "runner_pid": os.getpid(),
        "spawn_time": time.time(),
    }
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
                process.stdin.write(json.dumps(request))
                process.stdin.close()
            for line in process.stdout:
                if not line.endswith("\n"):
                    continue  # cut off by the worker's death: not a whole event
                kind, _, payload = line.rstrip("\n").partition(" ")
                if kind == "PROGRESS":
                    event = json.loads(payload)
                    epochs.append({k: v for k, v in event.items() if k != "epochs"})
                    on_event(kind, event)
                elif kind == "NOTICE":
                    on_event(kind, payload)
            returncode = process.wait()
        except BaseException:  # Ctrl-C or anything else: never leave the worker running
            _stop(process)
            raise
    log_tail = log_path.read_text(errors="replace").strip().splitlines()[-20:]
    if returncode == 2:
        raise UserError(
            log_tail[-1].removeprefix("error: ") if log_tail else "worker refused the run"
        )
    if returncode in (130, -signal.SIGINT):
        raise KeyboardInterrupt  # the terminal interrupted the worker (and us)
    if returncode == 0 and path.exists():
        result = results.read_json(path)
    else:
        # The process died without writing (killed, out of memory, crashed hard).
        failed_epoch = len(epochs) + 1  # the first epoch without a result
        result = {
            "schema_version": results.SCHEMA_VERSION,
            "experiment": run.experiment.name,
            "framework": run.framework,
            "seed": run.seed,
            "mode": run.mode,
            "keras_backend": run.keras_backend,
            "spec": run.experiment.to_dict(),
            "spec_hash": run.experiment.spec_hash(),
            "deterministic": options.deterministic,
            "profile": options.profile,
            "requested_device": options.device,
            "threads": options.threads,
            "status": "failed",
            "reason": f"{_describe_exit(returncode)} after {len(epochs)} finished epochs; "
            f"log {log_path}: {' | '.join(log_tail[-3:])}",
            "failed_epoch": failed_epoch,
            "epochs": epochs,
        }
        results.write_json_atomic(path, result)
    return result


# --- the study ----------------------------------------------------------------------


def write_published(out: pathlib.Path, published: dict[str, dict]) -> None:
    """Merge the study's published figures into OUT/published.json for the report.

    Shape: {"schema": PUBLISHED_SCHEMA, "experiments": {name: studies.PUBLISHED[name]}}.
    """
    if not published:
        return
    path = out / "published.json"
    current = results.read_json(path).get("experiments", {}) if path.exists() else {}
    payload = {"schema": PUBLISHED_SCHEMA, "experiments": {**current, **published}}
    results.write_json_atomic(path, payload)


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
        data_mod.fetch(options.data_dir)  # verified once, before any process starts
        write_published(options.out, studies.published_for(study))
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
                    if kind == "NOTICE" and payload not in notices:
                        notices.add(payload)  # once per study, not once per run
                        bar.write(f"notice: {payload}", file=sys.stderr)
                    elif kind == "PROGRESS":
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
        results.write_json_atomic(options.out / "study.json", summary)
        # The TOST verdict per experiment, for the report (compare/equivalence.py).
        equivalence.write(options.out, runs, study.equivalence_margin)
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
