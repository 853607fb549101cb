"""The study runner: plans runs, starts one process per run, skips finished ones.

Every (experiment, framework, seed) runs in its own subprocess with the same thread
count, so one framework's runtime never shares a process with the other. Result files
are written atomically by the worker; a rerun of the same command skips every run whose
finished result exists for the same spec hash. A lock keeps two studies out of one
output directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from compare import data as data_mod
from compare import environment, results, studies
from compare.errors import UserError
from compare.spec import ExperimentSpec, StudySpec, apply_overrides, resolve, validate

DEVICES = ("auto", "cpu", "gpu")
PUBLISHED_SCHEMA = "keras-vs-pytorch/published/v1"


@dataclasses.dataclass(frozen=True)
class Run:
    experiment: ExperimentSpec  # as this framework runs it (see effective_spec)
    framework: str
    seed: int
    framework_overrides: dict = dataclasses.field(default_factory=dict)

    def path(self, out: pathlib.Path) -> pathlib.Path:
        return results.run_path(out, self.experiment.name, self.framework, self.seed)

    @property
    def label(self) -> str:
        return f"{self.experiment.name}/{self.framework}/seed{self.seed}"


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


def effective_spec(experiment: ExperimentSpec, framework: str, options: Options):
    """What `framework` runs: its framework_overrides, then the profile, then --set.

    The returned spec has no framework_overrides of its own (it is one side); the
    table that made the sides differ is recorded next to it in the result.
    """
    side = dataclasses.replace(resolve(experiment, framework), framework_overrides={})
    side = studies.apply_profile(side, options.profile)
    return validate(apply_overrides(side, list(options.overrides)))


def plan(study: StudySpec, options: Options) -> list[Run]:
    """The runs of a study, experiments validated with the profile and overrides applied."""
    check_options(options)
    seeds = options.seeds if options.seeds is not None else study.seeds
    if seeds < 1:
        raise UserError(f"seeds must be >= 1, got {seeds}")
    runs = []
    for experiment in study.experiments:
        sides = {fw: effective_spec(experiment, fw, options) for fw in options.frameworks}
        for seed in range(seeds):
            for framework in options.frameworks:
                runs.append(Run(sides[framework], framework, seed, experiment.framework_overrides))
    return runs


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
    """Hold an exclusive lock on OUT while a study writes there."""
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


def _child_env(threads: int) -> dict:
    env = dict(os.environ)
    # Same thread count for both frameworks, set before either runtime starts.
    env["OMP_NUM_THREADS"] = str(threads)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(environment.ROOT), env.get("PYTHONPATH")])
    )
    return env


def execute_run(run: Run, options: Options, on_progress) -> dict:
    """Run one subprocess; return its result (writing a `failed` one if it died)."""
    path = run.path(options.out)
    log_path = options.out / "logs" / path.parent.name / f"{path.stem}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    request = {
        "experiment": run.experiment.to_dict(),
        "spec_hash": run.experiment.spec_hash(),
        "framework_overrides": run.framework_overrides,
        "framework": run.framework,
        "seed": run.seed,
        "threads": options.threads,
        "device": options.device,
        "profile": options.profile,
        "data_dir": options.data_dir,
        "result_path": str(path),
        "spawn_time": time.time(),
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(request, handle)
    started = time.perf_counter()
    try:
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "compare", "worker", handle.name],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=_child_env(options.threads),
                cwd=environment.ROOT,
            )
            for line in process.stdout:
                if line.startswith("PROGRESS "):
                    on_progress(json.loads(line[len("PROGRESS ") :]))
            returncode = process.wait()
    finally:
        os.unlink(handle.name)
    elapsed = time.perf_counter() - started
    log_tail = log_path.read_text().strip().splitlines()[-20:]
    if returncode == 2:
        raise UserError(
            log_tail[-1].removeprefix("error: ") if log_tail else "worker refused the run"
        )
    if returncode == 0 and path.exists():
        result = results.read_json(path)
    else:
        # The process died without writing (killed, out of memory, crashed hard).
        result = {
            "schema_version": results.SCHEMA_VERSION,
            "experiment": run.experiment.name,
            "framework": run.framework,
            "seed": run.seed,
            "spec": run.experiment.to_dict(),
            "spec_hash": run.experiment.spec_hash(),
            "status": "failed",
            "reason": f"worker exited with code {returncode}: {' | '.join(log_tail[-3:])}",
            "epochs": [],
        }
        results.write_json_atomic(path, result)
    result["_process_seconds"] = elapsed
    return result


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


def run_study(study: StudySpec, options: Options) -> int:
    """Run every missing run of the study; return 0 when all finished ok, else 1."""
    from tqdm import tqdm

    started = time.perf_counter()
    runs = plan(study, options)
    data_mod.fetch(options.data_dir)  # fail fast, before any process starts
    prepare_output(options.out)
    todo = [r for r in runs if not results.is_done(r.path(options.out), r.experiment.spec_hash())]
    process_seconds, worker_seconds, outcomes = 0.0, 0.0, []
    with study_lock(options.out):
        write_published(options.out, studies.published_for(study))
        bar = tqdm(
            total=len(runs),
            initial=len(runs) - len(todo),
            unit="run",
            disable=not options.progress,
            dynamic_ncols=True,
        )
        for run in todo:
            bar.set_description(run.label)

            def on_progress(event, run=run):
                # Regression nets and runs without a validation set report the loss.
                accuracy, loss = event.get("val_accuracy"), event.get("loss", float("nan"))
                metric = f"val_acc {accuracy:.3f}" if accuracy is not None else f"loss {loss:.4g}"
                bar.set_postfix_str(f"epoch {event['epoch']}/{event['epochs']} {metric}")

            result = execute_run(run, options, on_progress)
            process_seconds += result.pop("_process_seconds")
            worker_seconds += result.get("wall_seconds", 0.0) + result.get("startup_seconds", 0.0)
            outcomes.append((run, result))
            bar.update(1)
        bar.close()
        wall = time.perf_counter() - started
        summary = {
            "study": study.name,
            "profile": options.profile,
            "frameworks": list(options.frameworks),
            "threads": options.threads,
            "runs_planned": len(runs),
            "planned": [
                {"experiment": r.experiment.name, "framework": r.framework, "seed": r.seed}
                for r in runs
            ],
            "runs_executed": len(todo),
            "wall_seconds": wall,
            "worker_seconds": worker_seconds,
            # Harness overhead: everything the runner spent outside the workers' own
            # measured lifetime (spawning, progress bar, writing results).
            "harness_overhead_seconds": max(wall - worker_seconds, 0.0) if todo else None,
            "environment": environment.fingerprint(),
        }
        results.write_json_atomic(options.out / "study.json", summary)
    failed = [(run, r) for run, r in outcomes if r.get("status") != "ok"]
    for run, r in failed:
        print(f"{run.label}: {r.get('status')} ({r.get('reason', 'no reason')})", file=sys.stderr)
    done = len(runs) - len(todo)
    print(
        f"{len(runs)} runs: {len(todo) - len(failed)} ran ok, {done} already done, "
        f"{len(failed)} failed; results in {options.out}",
        file=sys.stderr,
    )
    return 1 if failed else 0
