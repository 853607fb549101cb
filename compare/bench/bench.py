"""`make bench`: the headline MLP in every execution mode and both frameworks, repeated.

Stage: bench.
A benchmark, not a test: it measures, prints a table and writes `OUT/bench/bench.json`
(which the report shows); it never asserts a time. The runs go through the ordinary
runner (one process per run, pinned threads, the shared timing definition), so the
benchmark measures exactly what a study measures. In this process, with the same
thread count, it also measures the machine's GEMM throughput at the model's shapes
(`compare.bench.roofline`), so each steady epoch can be given as a multiple of the time its
matrix products alone would take, and, before and after the runs, the machine's own
timing noise (the same products replayed: a workload that never changes).
"""

from __future__ import annotations

import dataclasses
import statistics

import pandas as pd

from compare import files
from compare.bench import roofline
from compare.bench.options import BenchOptions
from compare.errors import UserError
from compare.run import plan, results, runner
from compare.spec import catalog
from compare.spec.identity import Implementation
from compare.spec.schema import StudySpec, train_size


def bench_study(options: BenchOptions) -> StudySpec:
    """The headline MLP's documented recipe with fewer epochs: 1 first + steady ones."""
    experiment = catalog.MODELS[catalog.HEADLINE]
    train = dataclasses.replace(experiment.train, epochs=options.epochs)
    experiment = dataclasses.replace(experiment, train=train)
    return StudySpec(name="bench", experiments=(experiment,), seeds=options.repeats)


def _steady_epochs(run: dict) -> list[float]:
    return [e["epoch_seconds"] for e in run["epochs"][1:]]


def summarize(runs: list[dict], gemm_seconds: float, examples: int) -> pd.DataFrame:
    """One row per implementation: medians over repeats, ranges over all steady epochs."""
    rows = []
    for run in runs:
        if run.get("status") != "ok":
            continue
        rows.append(
            {
                "implementation": Implementation.of(run).name,
                "framework": run["framework"],
                "mode": run.get("mode"),
                "seed": run["seed"],
                "first_epoch_seconds": run["epochs"][0]["epoch_seconds"],
                "steady_median": statistics.median(_steady_epochs(run)),
                "steady_min": min(_steady_epochs(run)),
                "steady_max": max(_steady_epochs(run)),
                "test_accuracy": run["test_accuracy"],
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    table = frame.groupby(["implementation", "framework", "mode"], sort=False).agg(
        repeats=("seed", "count"),
        first_epoch_seconds=("first_epoch_seconds", "median"),
        steady_epoch_seconds=("steady_median", "median"),
        steady_min=("steady_min", "min"),
        steady_max=("steady_max", "max"),
        test_accuracy=("test_accuracy", "mean"),
    )
    table = table.reset_index()
    table["within_run_spread"] = (
        frame.assign(spread=frame["steady_max"] / frame["steady_min"])
        .groupby("implementation", sort=False)["spread"]
        .max()
        .reindex(table["implementation"])
        .to_numpy()
    )
    table["samples_per_second"] = examples / table["steady_epoch_seconds"]
    table["gemm_multiple"] = table["steady_epoch_seconds"] / gemm_seconds
    reference = table.loc[
        (table["framework"] == "torch") & (table["mode"] == "idiomatic"), "steady_epoch_seconds"
    ]
    table["ratio_to_idiomatic_torch"] = (
        table["steady_epoch_seconds"] / reference.iloc[0] if len(reference) else float("nan")
    )
    for framework in table["framework"].unique():
        mine = table["framework"] == framework
        idiomatic = table.loc[mine & (table["mode"] == "idiomatic"), "steady_epoch_seconds"]
        table.loc[mine, "ratio_to_own_idiomatic"] = (
            table.loc[mine, "steady_epoch_seconds"] / idiomatic.iloc[0]
            if len(idiomatic)
            else float("nan")
        )
    return table


def format_table(table: pd.DataFrame) -> str:
    shown = pd.DataFrame(
        {
            "implementation": table["implementation"],
            "repeats": table["repeats"],
            "steady s (median)": table["steady_epoch_seconds"].map("{:.3f}".format),
            "min-max s": [
                f"{low:.3f}-{high:.3f}"
                for low, high in zip(table["steady_min"], table["steady_max"], strict=True)
            ],
            "samples/s": table["samples_per_second"].map("{:.0f}".format),
            "x GEMM": table["gemm_multiple"].map("{:.2f}".format),
            "/ idiomatic torch": table["ratio_to_idiomatic_torch"].map("{:.2f}".format),
            "/ own idiomatic": table["ratio_to_own_idiomatic"].map("{:.2f}".format),
            "first epoch s": table["first_epoch_seconds"].map("{:.2f}".format),
            "test acc": table["test_accuracy"].map("{:.4f}".format),
        }
    )
    return shown.to_string(index=False)


def pin_threads(threads: int) -> None:
    """Pin this process's BLAS libraries to the runs' thread count, as a worker's are.

    The GEMM probe times PyTorch's and NumPy's products. NumPy's OpenBLAS otherwise uses
    every core: at `--threads 1` it made the "bound" 0.313 s, against 0.534-0.551 s when
    pinned to 1 thread (0.303-0.305 s at 2, the machine's count, either way).
    """
    import threadpoolctl
    import torch

    torch.set_num_threads(threads)
    threadpoolctl.threadpool_limits(limits=threads, user_api="blas")


def run_bench(options: BenchOptions) -> int:
    """Run the benchmark, print the table, write OUT/bench/bench.json; 0 when all ran."""
    if options.epochs < 2:
        raise UserError("--epochs must be >= 2: the first epoch is not a steady-state one")
    pin_threads(options.threads)
    out = options.out / "bench"
    study = bench_study(options)
    (experiment,) = study.experiments
    examples = train_size(experiment.data)
    run_options = plan.Options(
        # The GEMM-bound time and the thread sweep are CPU measurements: so are the runs.
        device="cpu",
        frameworks=options.frameworks,
        modes=options.modes,
        seeds=options.repeats,
        threads=options.threads,
        jobs=1,  # a benchmark's runs each have the machine to themselves
        out=out / "modes",
        progress=options.progress,
    )
    products = roofline.epoch_products(
        roofline.dense_layers(experiment.model), examples, experiment.train.batch_size
    )
    # The machine's own noise, before and after the runs (they take minutes).
    noise = {"before": roofline.noise_floor(products)}
    status = runner.run_study(study, run_options)
    noise["after"] = roofline.noise_floor(products)
    gemm = roofline.measure(products)
    table = summarize(results.load_runs(out / "modes"), gemm["epoch_gemm_seconds"], examples)
    modes_study = files.read_json(out / "modes" / "study.json")

    sweep = []
    if options.thread_sweep:
        for threads in range(1, options.threads + 1):
            sweep_options = dataclasses.replace(
                run_options,
                modes=("tuned",),
                seeds=1,
                threads=threads,
                out=out / f"threads-{threads}",
            )
            status = max(status, runner.run_study(study, sweep_options))
            for run in results.load_runs(sweep_options.out):
                if run.get("status") == "ok":
                    sweep.append(
                        {
                            "implementation": Implementation.of(run).name,
                            "threads": threads,
                            "steady_epoch_seconds": run["timing"]["steady_epoch_seconds"],
                        }
                    )
    print(
        f"GEMM-bound epoch: {gemm['epoch_gemm_seconds']:.3f} s "
        f"({gemm['epoch_flops'] / 1e9:.1f} GFLOP, {options.threads} threads)"
    )
    print(format_table(table))
    print(
        f"machine noise: an epoch's GEMMs replayed {len(noise['before']['replay_seconds'])} "
        f"times: spread (max/min) {noise['before']['spread']:.2f} before the runs, "
        f"{noise['after']['spread']:.2f} after"
    )
    overhead = modes_study.get("overhead")
    if overhead is not None:
        share = 100 * overhead["outside_training_share"]
        print(
            f"outside training epochs: {overhead['outside_training_seconds']:.1f} s of "
            f"{overhead['capacity_seconds']:.1f} s ({share:.1f} %)"
        )
    files.write_json_atomic(
        out / "bench.json",
        files.finite_or_none(
            {
                "threads": options.threads,
                "epochs": options.epochs,
                "repeats": options.repeats,
                "roofline": gemm,
                "noise_floor": noise,
                "table": table.to_dict("records"),
                "thread_sweep": sweep,
                # One job: the capacity is the wall time.
                "harness": {
                    "wall_seconds": modes_study.get("wall_seconds"),
                    "overhead_seconds": overhead and overhead["outside_training_seconds"],
                },
            }
        ),
    )
    return status
