"""The parity proof: both implementations compute the same function and take the same steps.

Stage: parity. Per experiment, the levels of `select.LEVELS`, in that order
(`compare.parity.levels`, `.built`, `.training_mode`, `.training`); a level that raises
fails with its reason and the next ones still run:

- structure: same parameter count, canonical shapes and output shape;
- weights: torch -> canonical -> Keras -> canonical -> torch is exact (and back);
- init: each side's own initial weights against the spec's distributions;
- forward: with transplanted weights, same logits and probabilities, inference mode;
- dropout: each dropout layer against the spec's rate and scaling;
- training_mode: dropout and normalisation in training mode while each Trainer trains
  as the worker drives it, and in inference mode in the worker's evaluation;
- gradients: same loss and per-tensor gradients for one batch;
- optimizer: the study's optimizer fed identical gradients gives the same parameters;
- stock_optimizer: each side's stock optimizer against its documented formula;
- lockstep: same initial weights and batches, same losses and parameters after N steps
  in float32, as the study trains (the float64 replay beside it isolates the rules);
- study_path: both sides trained through the worker's epoch entry point;
- data: both frameworks train on the shared arrays, and their own dataset loaders read
  the same pixels and labels as `compare.data`.

Both frameworks run in one process; `configure` sizes their thread pools before either
runtime starts. Keras's backend (tensorflow, jax, torch) is fixed when Keras is first
imported, so `run` checks the backend this process has, and `run_backends` runs one
process per other backend (`python -m compare parity --keras-backends B`) and merges
their reports. The JSON report `python -m compare parity` prints: `models` maps each
entry (`mlp/keras` for Keras on TensorFlow, `mlp/keras_jax` for another backend) to
`keras_backend`, `passed`, `notes`, `checks` (per level: `name`, `passed`,
`max_abs_diff`, `max_rel_diff`, `tolerance`) and `details` (per level, what was
measured); `defaults` holds the defaults-that-differ rows, with Keras's value on each
backend; `keras_backends` has each backend's library versions and verdict.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time

from compare import files
from compare.data import split
from compare.pair.result import could_not_run, guarded
from compare.parity import defaults, regression, select, training_mode
from compare.parity.built import check_dropout, check_init
from compare.parity.levels import (
    K,
    T,
    build_pair,
    check_data,
    check_forward,
    check_gradients,
    check_loaders,
    check_structure,
    check_weights,
)
from compare.parity.training import (
    check_lockstep,
    check_optimizer,
    check_stock_optimizer,
    check_study_path,
    study_steps,
)
from compare.run import environment
from compare.spec import studies
from compare.spec.identity import DEFAULT_MODE, KERAS_BACKENDS, implementation_name
from compare.spec.schema import REGRESSORS, ExperimentSpec, ParitySpec

SCHEMA = "keras-vs-pytorch/parity/v1"
LEVELS = select.LEVELS
# The float64 replay separates update rules from float32 rounding only where Keras
# computes in float64; a larger gap there is reported as a note with its reason.


def entry_name(experiment: str, keras_backend: str) -> str:
    """`EXPERIMENT/IMPLEMENTATION` of the Keras side checked against native PyTorch, in the
    implementation's one spelling: `mlp/keras` (TensorFlow), `mlp/keras_jax`."""
    return f"{experiment}/{implementation_name('keras', keras_backend)}"


def configure(threads: int, seed: int) -> dict:
    """Pin both frameworks' threads and seed them; return the thread counts in effect.

    Thread pools can only be sized before a runtime starts; when a runtime already
    runs in this process (a test session), the counts it has are kept and reported.
    torch is seeded either way, and it alone draws the weights both sides start from.
    """
    in_effect = {}
    for impl in (K, T):
        try:
            in_effect[impl.FRAMEWORK] = impl.configure(threads, seed, "cpu")["threads"]
        except RuntimeError as error:
            in_effect[impl.FRAMEWORK] = f"already started, not changed ({error})"
    return in_effect


# --- per model and for a list of models ---------------------------------------------


def for_lockstep(experiment: ExperimentSpec) -> tuple[ExperimentSpec, list[str]]:
    """The experiment as the gradient/optimizer/lockstep levels check it, and why it differs.

    Two differences cannot be aligned by weights or data, so these levels remove them
    and say so: stock Adam (the Keras side switches to torch's update) and dropout
    (each framework draws its masks from its own random stream).
    """
    notes = []
    train, model = experiment.train, experiment.model
    if train.optimizer == "adam" and train.adam_formula != "torch":
        train = dataclasses.replace(train, adam_formula="torch")
        notes.append(
            "gradients, optimizer and lockstep use adam_formula='torch' (Keras re-implements "
            "torch's Adam); stock Adam cannot agree, see stock_optimizer's stock_formula_gap"
        )
    if train.optimizer == "rmsprop" and train.rmsprop_formula != "torch":
        train = dataclasses.replace(train, rmsprop_formula="torch")
        notes.append(
            "gradients, optimizer, lockstep and study_path use rmsprop_formula='torch' (Keras "
            "re-implements torch's RMSprop); stock RMSprop cannot agree, see stock_formula_gap"
        )
    if model.dropout_rate > 0:
        model = dataclasses.replace(model, dropout_rate=0.0)
        notes.append(
            "gradients, lockstep and study_path run with dropout off (masks never match); "
            "the dropout level checks each side's dropout against the spec"
        )
    return dataclasses.replace(experiment, train=train, model=model), notes


def backend_notes(lockstep_detail: dict, parity: ParitySpec) -> list[str]:
    """What this Keras backend cannot match, measured: said, never passed over silently."""
    backend = K.backend()
    notes = []
    replay = max(lockstep_detail["float64"]["params_max_abs_diff_after_step"].values())
    if backend != "tensorflow" and replay > parity.float64_replay_floor:
        notes.append(
            f"keras:{backend}: the float64 replay differs by {replay:.2e}, not ~1e-13: Keras "
            "narrows float64 results to float32 on this backend (its result_type maps 64-bit "
            "types to 32 bits except on TensorFlow), so here it cannot separate the update "
            "rules from float32 rounding"
        )
    if backend != "tensorflow" and lockstep_detail["adam_formula"] == "torch":
        notes.append(
            f"keras:{backend}: AdamTorchFormula takes torch's float64 bias corrections as "
            "-expm1(t log beta) in float32 (no float64 in keras.ops here): not bitwise"
        )
    return notes


def check_model(
    experiment: ExperimentSpec,
    parity: ParitySpec,
    loaders: dict,
    threads: int = 1,
    data_dir: str | None = None,
    modes: tuple[str, ...] = (DEFAULT_MODE,),
    levels: tuple[str, ...] = LEVELS,
) -> dict:
    """The `levels` (all by default) for one experiment; the study-path level once per
    execution mode in `modes`; the result is plain JSON."""
    # What the entry is about: the report shows it only beside runs of the same identity.
    identity = {
        "spec_hash": experiment.spec_hash(),
        "parity_identity": studies.parity_identity(experiment.to_dict()),
        # The study-path level trains each side in these modes; the other levels build
        # model, optimizer and steps as the default mode does.
        "mode": modes[0] if len(modes) == 1 else list(modes),
    }
    # Reseeded per model: its initial weights must not depend on the models checked before.
    configure(threads, parity.seed)
    if experiment.model.architecture in REGRESSORS:
        checks = regression.check_model(experiment, parity, levels)
        return _entry(experiment, identity, checks, [])
    # The study's longest run of it (full profile): the stock optimizer level's horizon.
    horizon = study_steps(experiment)
    # The levels need one batch and `steps` batches: the quick profile's subsets suffice.
    experiment = studies.apply_profile(experiment, "quick")
    shared = split.load_shared(experiment.data, data_dir)
    x, y = shared.x_test[: parity.batch_size], shared.y_test[: parity.batch_size]
    aligned, notes = for_lockstep(experiment)

    try:
        torch_model, keras_model = build_pair(experiment)
        weights = T.get_weights(torch_model)
    except Exception as error:  # noqa: BLE001 - a port that does not build fails every level
        # Structure still compares what each side builds on its own (where they part).
        def own() -> list:
            built = T.build_model(experiment.model), K.build_model(experiment.model)
            return [check_structure(*built, x)]

        checks = [
            check
            for level in LEVELS
            if level in levels
            for check in (
                guarded(level, own) if level == "structure" else [could_not_run(level, error)]
            )
        ]
        return _entry(experiment, identity, checks, notes)

    def per_mode(level: str, check_in) -> list:
        """`check_in(mode)` for each execution mode, each guarded on its own."""
        return [
            check
            for mode in modes
            for check in guarded(select.mode_level(level, mode), lambda mode=mode: [check_in(mode)])
        ]

    runs = {
        "structure": lambda: [check_structure(torch_model, keras_model, x)],
        "weights": lambda: [check_weights(experiment, x)],
        "forward": lambda: [check_forward(torch_model, keras_model, x, parity)],
        "dropout": lambda: [
            check_dropout(
                torch_model,
                keras_model,
                experiment,
                shared.x_test[: parity.dropout_examples],
                parity,
            )
        ],
        # The experiment as the study runs it: dropout on, its own optimizer.
        "training_mode": lambda: per_mode(
            "training_mode",
            lambda mode: training_mode.check_training_mode(experiment, parity, mode, data_dir),
        ),
        "gradients": lambda: [check_gradients(aligned, weights, x, y, parity)],
        "optimizer": lambda: [check_optimizer(aligned, weights, parity)],
        "stock_optimizer": lambda: [check_stock_optimizer(experiment, aligned, horizon, parity)],
        "lockstep": lambda: [check_lockstep(aligned, shared, weights, parity)],
        "study_path": lambda: per_mode(
            "study_path",
            lambda mode: check_study_path(aligned, weights, parity, mode, data_dir),
        ),
        "data": lambda: [check_data(experiment, shared, loaders)],
        # Last: it builds more models, which must not change the weights above.
        "init": lambda: [check_init(experiment, parity)],
    }
    done, seconds = {}, {}
    for level, run_level in runs.items():
        if level in levels:
            started = time.perf_counter()
            done[level] = guarded(level, run_level)
            seconds[level] = round(time.perf_counter() - started, 2)
    checks = [check for level in LEVELS if level in done for check in done[level]]
    if "lockstep" in done and "float64" in done["lockstep"][0].detail:
        notes += backend_notes(done["lockstep"][0].detail, parity)
    result = _entry(experiment, identity, checks, notes)
    result["level_seconds"] = seconds  # what parity costs, per level
    return result


def _largest(values):
    values = [v for v in values if v is not None and v == v]  # no None, no NaN
    return max(values) if values else None


def merge_seeds(results: list[dict], seeds: list[int]) -> dict:
    """One entry from the same experiment checked under several parity seeds (other
    initial weights, batches and probes): a level passes only if it passed under every
    seed; its differences are the largest. The details are a failing seed's (the first),
    else the first seed's; `seeds` lists, per seed, the levels that failed."""
    first = results[0]
    checks = []
    for index, check in enumerate(first["checks"]):
        across = [r["checks"][index] for r in results]
        checks.append(
            {
                **check,
                "passed": all(c["passed"] for c in across),
                "max_abs_diff": _largest(c["max_abs_diff"] for c in across),
                "max_rel_diff": _largest(c["max_rel_diff"] for c in across),
            }
        )
    shown = next((r for r in results if not r["passed"]), first)
    return {
        **shown,
        "passed": all(r["passed"] for r in results),
        "checks": checks,
        "seeds": {
            str(seed): [c["name"] for c in r["checks"] if not c["passed"]]
            for seed, r in zip(seeds, results, strict=True)
        },
        "details_seed": seeds[results.index(shown)],
    }


def _entry(experiment: ExperimentSpec, identity: dict, checks: list, notes: list[str]) -> dict:
    """One model's parity entry, plain JSON."""
    backend = K.backend()
    return {
        "experiment": entry_name(experiment.name, backend),
        "keras_backend": backend,
        **identity,
        "passed": all(c.passed for c in checks),
        "optimizer": experiment.train.optimizer,
        "notes": notes,
        "checks": [c.summary() for c in checks],
        "details": {c.name: c.detail for c in checks},
    }


def run(
    experiments: list[ExperimentSpec],
    threads: int,
    parity: ParitySpec | None = None,
    data_dir: str | None = None,
    seeds: int = 1,
    modes: tuple[str, ...] = (DEFAULT_MODE,),
    levels: tuple[str, ...] = LEVELS,
) -> dict:
    """The parity report for the experiments, Keras on this process's backend: per model
    and level (`levels`, under `seeds` parity seeds, from `parity.seed` on), and the
    defaults table."""
    parity = parity or ParitySpec()
    threads_in_effect = configure(threads, parity.seed)
    loaders = check_loaders(data_dir)
    seed_list = [parity.seed + k for k in range(seeds)]
    models = [
        merge_seeds(
            [
                check_model(
                    e,
                    dataclasses.replace(parity, seed=seed),
                    loaders,
                    threads,
                    data_dir,
                    modes,
                    levels,
                )
                for seed in seed_list
            ],
            seed_list,
        )
        for e in experiments
    ]
    backend = K.backend()
    passed = all(m["passed"] for m in models)
    # Strict JSON: an infinite difference (mismatched shapes) becomes null.
    return files.finite_or_none(
        {
            "schema": SCHEMA,
            "passed": passed,
            "levels": [level for level in LEVELS if level in levels],
            "models": {m["experiment"]: m for m in models},
            "defaults": defaults.table(experiments, K.framework_defaults(), T.framework_defaults()),
            "keras_defaults": {backend: K.framework_defaults()},
            "keras_backends": {backend: {"versions": _versions(backend), "passed": passed}},
            "parity_spec": dataclasses.asdict(parity),
            "seeds": seed_list,
            "modes": list(modes),
            "threads": {backend: threads_in_effect},
        }
    )


def _versions(backend: str) -> dict:
    """Keras's and its backend library's installed versions."""
    packages = environment.package_versions()
    library = packages.get(backend) or packages.get(f"{backend}-cpu")
    return {"keras": packages.get("keras"), backend: library}


def _run_in_subprocess(
    backend: str,
    experiments: list[ExperimentSpec],
    threads: int,
    data_dir: str | None,
    study: str | None = None,
    seeds: int = 1,
    modes: tuple[str, ...] = (DEFAULT_MODE,),
    levels: tuple[str, ...] = LEVELS,
) -> dict:
    """The report of `python -m compare parity` with Keras on `backend`, in a new process.

    `study` (a built-in name or a study file's absolute path) is where experiments not
    in the catalog come from."""
    with tempfile.TemporaryDirectory() as out:
        command = [
            *(sys.executable, "-m", "compare", "parity", "--keras-backends", backend),
            *("--models", ",".join(e.name for e in experiments)),
            *(("--study", study) if study else ()),
            *("--threads", str(threads), "--out", out),
            *("--seeds", str(seeds), "--modes", ",".join(modes)),
            *("--levels", ",".join(levels)),
            *("--jobs", "1"),  # a shard already: run_backends splits the work
            *(("--data-dir", data_dir) if data_dir else ()),
        ]
        done = subprocess.run(
            command,
            env={**os.environ, "KERAS_BACKEND": backend},
            cwd=environment.ROOT,
            capture_output=True,
            text=True,
        )
        report_path = pathlib.Path(out) / "parity.json"
        # Exit code 1 is a report with a failed check; anything else is a crash.
        if done.returncode not in (0, 1) or not report_path.exists():
            lines = done.stderr.strip().splitlines() or [f"exit code {done.returncode}"]
            tail = "\n".join(lines[-20:])
            raise RuntimeError(f"parity with Keras on {backend} crashed:\n{tail}")
        return json.loads(report_path.read_text())


def _entry_order(model: dict) -> tuple[str, int]:
    experiment = model["experiment"].rpartition("/")[0]
    return experiment, KERAS_BACKENDS.index(model["keras_backend"])


def merge(reports: dict[str, dict]) -> dict:
    """One report from one per Keras backend: models side by side, defaults per backend."""
    first = reports.get("tensorflow") or next(iter(reports.values()))
    models = {name: m for r in reports.values() for name, m in r["models"].items()}
    keras_defaults = {b: r["keras_defaults"][b] for b, r in reports.items()}
    defaults_rows = [
        {**row, "keras_by_backend": {b: keras[row["what"]] for b, keras in keras_defaults.items()}}
        for row in first["defaults"]
    ]
    return {
        **first,
        "passed": all(r["passed"] for r in reports.values()),
        # Per model, each backend's entry next to the others, in KERAS_BACKENDS order.
        "models": dict(sorted(models.items(), key=lambda item: _entry_order(item[1]))),
        "defaults": defaults_rows,
        "keras_defaults": keras_defaults,
        "keras_backends": {b: r["keras_backends"][b] for b, r in reports.items()},
        "threads": {b: r["threads"][b] for b, r in reports.items()},
    }


def shards(
    experiments: list[ExperimentSpec], keras_backends: list[str], jobs: int
) -> list[tuple[str, list[ExperimentSpec]]]:
    """(backend, experiments) per process: with one job, one per backend; with more, each
    backend's experiments dealt into `jobs` groups (at most one per experiment), dearest
    first and back and forth (1, 2, 2, 1, 1, ...), so the groups cost about the same.

    The order is a proxy for a model's parity cost, not a measurement: convolutions, then
    dropout (one level more), then the widest hidden layers; the regression nets are the
    cheapest (under a second each: `level_seconds` in parity.json)."""
    if jobs == 1:
        return [(backend, list(experiments)) for backend in keras_backends]

    def dearest_first(experiment: ExperimentSpec) -> tuple:
        model = experiment.model
        return (
            model.architecture not in REGRESSORS,
            model.architecture == "cnn",
            model.dropout_rate > 0,
            sum(model.hidden_sizes),
        )

    ordered = sorted(experiments, key=dearest_first, reverse=True)
    count = min(jobs, len(ordered))
    groups: list[list[ExperimentSpec]] = [[] for _ in range(count)]
    for position, experiment in enumerate(ordered):
        lap, index = divmod(position, count)
        groups[index if lap % 2 == 0 else count - 1 - index].append(experiment)
    return [(backend, group) for backend in keras_backends for group in groups]


def merge_shards(backend: str, reports: list[dict], experiments: list[ExperimentSpec]) -> dict:
    """One backend's report from its shards' (each a subset of `experiments`): the
    models in `experiments`' order, the defaults table over all of them."""
    first = reports[0]
    models = {name: m for r in reports for name, m in r["models"].items()}
    names = [entry_name(e.name, backend) for e in experiments]
    passed = all(r["passed"] for r in reports)
    keras_defaults = first["keras_defaults"][backend]
    return {
        **first,
        "passed": passed,
        "models": {name: models[name] for name in names},
        # The study column depends on which experiments the table covers: all of them.
        "defaults": defaults.table(experiments, keras_defaults, T.framework_defaults()),
        "keras_backends": {backend: {**first["keras_backends"][backend], "passed": passed}},
    }


def run_backends(
    experiments: list[ExperimentSpec],
    threads: int,
    keras_backends: list[str],
    parity: ParitySpec | None = None,
    data_dir: str | None = None,
    study: str | None = None,
    seeds: int = 1,
    modes: tuple[str, ...] = (DEFAULT_MODE,),
    levels: tuple[str, ...] = LEVELS,
    jobs: int = 1,
) -> dict:
    """The parity report for Keras on each backend (fixed at import): the first shard
    on this process's backend runs here, every other shard (`shards`) in a process of
    its own; `jobs` at a time (this process counts as one, and takes the next shard
    when its own is done). Parity's numbers do not depend on what runs beside it: each
    process has its own `threads`."""
    here = K.backend()
    planned = shards(experiments, keras_backends, jobs)
    local = next((shard for shard in planned if shard[0] == here), None)
    queue = [shard for shard in planned if shard is not local]
    lock = threading.Lock()

    def drain() -> list:
        """Run the queue's shards, one process at a time, until it is empty."""
        finished = []
        while True:
            with lock:
                if not queue:
                    return finished
                backend, group = queue.pop(0)
            report = _run_in_subprocess(
                backend, group, threads, data_dir, study, seeds, modes, levels
            )
            finished.append((backend, report))

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs - 1)) as pool:
        helpers = [pool.submit(drain) for _ in range(jobs - 1)]
        done = []
        if local is not None:
            done.append((here, run(local[1], threads, parity, data_dir, seeds, modes, levels)))
        done += drain()
        for helper in helpers:
            done += helper.result()
    reports = {
        backend: merge_shards(backend, [r for b, r in done if b == backend], experiments)
        for backend in keras_backends
    }
    return merge(reports)


def _scientific(value) -> str:
    return "n/a" if value is None else f"{value:.2e}"


def format_table(report: dict) -> str:
    """A plain-text table: one line per model and level, then the verdict."""
    lines = [f"{'model':24s} {'level':12s} {'ok':4s} {'max abs':>10s} {'max rel':>10s}  tolerance"]
    for model in report["models"].values():
        for check in model["checks"]:
            tolerance = ", ".join(f"{k} {v}" for k, v in check["tolerance"].items())
            differences = " ".join(
                f"{_scientific(check[key]):>10s}" for key in ("max_abs_diff", "max_rel_diff")
            )
            detail = model["details"].get(check["name"], {})
            # "yes~": passed, but past the horizon only to rounding drift (its strength).
            ok = "NO" if not check["passed"] else "yes~" if detail.get("stable") is False else "yes"
            lines.append(
                f"{model['experiment']:24s} {check['name']:12s} {ok:4s} {differences}  {tolerance}"
            )
            if not check["passed"] and detail.get("first_failure"):
                lines.append(f"{'':24s} {check['name']}: {detail['first_failure']}")
            if detail.get("strength"):
                lines.append(f"{'':24s} {check['name']} strength: {detail['strength']}")
        for seed, failed in model.get("seeds", {}).items():
            if failed:
                lines.append(f"{'':24s} parity seed {seed}: FAILED {', '.join(failed)}")
        for note in model["notes"]:
            lines.append(f"{'':24s} note: {note}")
        gap = model["details"].get("stock_optimizer", {}).get("stock_formula_gap") or {}
        if gap.get("differs"):
            lines.append(
                f"{'':24s} stock {model['optimizer']} formulas differ (not a failure): up to "
                f"{gap['max_relative_deviation']:.2e} of a parameter's displacement; {gap['why']}"
            )
    failed = [name for name, model in report["models"].items() if not model["passed"]]
    lines.append(
        "parity: " + (f"FAILED for {', '.join(failed)}" if failed else "all checks passed")
    )
    return "\n".join(lines)


def main(
    experiments: list[ExperimentSpec],
    threads: int,
    keras_backends: list[str],
    data_dir: str | None = None,
    study: str | None = None,
    out: pathlib.Path | None = None,
    as_json: bool = False,
    seeds: int = 1,
    modes: tuple[str, ...] = (DEFAULT_MODE,),
    levels: tuple[str, ...] = LEVELS,
    jobs: int = 1,
) -> int:
    """`python -m compare parity`: check, write OUT/parity.json, print; 0 when it passed."""
    report = run_backends(
        experiments,
        threads,
        keras_backends,
        data_dir=data_dir,
        study=study,
        seeds=seeds,
        modes=tuple(modes),
        levels=tuple(levels),
        jobs=jobs,
    )
    if out:
        files.write_json_atomic(out / "parity.json", report)
    print(json.dumps(report, indent=1) if as_json else format_table(report))
    return 0 if report["passed"] else 1
