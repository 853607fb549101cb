"""Command-line interface: parses flags and calls library functions, nothing more.

Frameworks are imported only by the commands that need them, so `--help` is fast.
A user mistake ends with one line on stderr and exit code 2 (`--debug` shows the
traceback).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import traceback

from compare.errors import UserError


class Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line and exit code 2, like every user error."""

    def error(self, message):
        raise UserError(f"{self.prog}: {message} (see --help)")


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> Parser:
    parser = Parser(prog="python -m compare", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    run = commands.add_parser("run", help="run a study (both frameworks, every seed)")
    run.add_argument("--study", help="built-in study name or a .toml file (default: default)")
    run.add_argument(
        "--faithful",
        action="store_true",
        help="the seed scripts as their authors wrote them: same as --study faithful",
    )
    run.add_argument("--models", type=_csv, help="comma-separated experiment names")
    run.add_argument("--frameworks", type=_csv, default=["torch", "keras"])
    run.add_argument("--seeds", type=_positive_int, help="seeds per framework (default: study's)")
    run.add_argument("--profile", default="default", help="quick | default")
    run.add_argument("--device", default="auto", help="auto | cpu | gpu")
    run.add_argument("--threads", type=_positive_int, default=os.cpu_count() or 1)
    run.add_argument("--out", type=pathlib.Path, default=pathlib.Path("reports"))
    run.add_argument("--data-dir", help="directory with the four Fashion-MNIST .gz files")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a spec field, repeatable",
    )
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    run.add_argument(
        "--deterministic",
        action="store_true",
        help="turn on each framework's deterministic kernels (recorded in every result)",
    )
    run.add_argument(
        "--modes",
        type=_csv,
        default=["tuned"],
        help="tuned,idiomatic,compiled (see compare/modes.py)",
    )
    run.add_argument(
        "--keras-backend",
        dest="keras_backends",
        type=_csv,
        default=["tensorflow"],
        help="Keras backends to run: tensorflow,jax,torch",
    )

    bench = commands.add_parser("bench", help="benchmark the headline MLP (modes, threads)")
    bench.add_argument("--out", type=pathlib.Path, default=pathlib.Path("reports"))
    bench.add_argument("--repeats", type=_positive_int, default=3)
    bench.add_argument("--epochs", type=_positive_int, default=5, help="1 first + steady epochs")
    bench.add_argument("--threads", type=_positive_int, default=os.cpu_count() or 1)
    bench.add_argument("--no-thread-sweep", action="store_true", help="skip the 1..N sweep")
    bench.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    report = commands.add_parser("report", help="write OUT/index.html and OUT/results.csv")
    report.add_argument("--out", type=pathlib.Path, default=pathlib.Path("reports"))

    data = commands.add_parser("data", help="find and verify Fashion-MNIST (download if asked)")
    data.add_argument("--data-dir")
    data.add_argument("--download", action="store_true", help="download from upstream if missing")

    commands.add_parser("list", help="list the built-in models and studies")

    parity = commands.add_parser("parity", help="prove both implementations are the same model")
    parity.add_argument("--models", type=_csv, help="comma-separated built-in models (all)")
    parity.add_argument(
        "--study", help="check the classifiers of a study (built-in name or .toml file) instead"
    )
    parity.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parity.add_argument("--out", type=pathlib.Path, help="also write OUT/parity.json")
    # One thread each: both runtimes share this process, and the checks are about numbers.
    parity.add_argument("--threads", type=_positive_int, default=1)
    parity.add_argument("--data-dir", help="directory with the four Fashion-MNIST .gz files")
    parity.add_argument(
        "--keras-backends",
        type=_csv,
        default=["tensorflow", "jax", "torch"],
        help="Keras backends to check against native PyTorch, one process each (all three)",
    )

    worker = commands.add_parser("worker", help=argparse.SUPPRESS)
    worker.add_argument("request", nargs="?", default="-", help="request JSON file; - = stdin")
    worker.add_argument("--probe", metavar="FRAMEWORK", help="only check --device, then exit")
    worker.add_argument("--device", default="auto")
    return parser


def cmd_run(args) -> int:
    from compare import runner, studies, worker

    # A run never needs the network (the data is local, `data --download` fetches it).
    worker.forbid_network()

    if args.faithful and args.study not in (None, "faithful"):
        raise UserError(f"--faithful runs the faithful study: drop --study {args.study} or it")
    name = "faithful" if args.faithful else (args.study or "default")
    study = studies.select_models(studies.resolve_study(name), args.models)
    options = runner.Options(
        frameworks=tuple(args.frameworks),
        seeds=args.seeds,
        profile=args.profile,
        device=args.device,
        threads=args.threads,
        out=args.out,
        data_dir=args.data_dir,
        overrides=tuple(args.overrides),
        progress=not args.no_progress,
        deterministic=args.deterministic,
        modes=tuple(args.modes),
        keras_backends=tuple(args.keras_backends),
    )
    return runner.run_study(study, options)


def cmd_bench(args) -> int:
    from compare import bench, worker

    worker.forbid_network()
    if args.epochs < 2:
        raise UserError("--epochs must be >= 2: the first epoch is not a steady-state one")
    options = bench.BenchOptions(
        out=args.out,
        repeats=args.repeats,
        epochs=args.epochs,
        threads=args.threads,
        thread_sweep=not args.no_thread_sweep,
        progress=not args.no_progress,
    )
    return bench.run_bench(options)


def cmd_report(args) -> int:
    from compare import report

    path = report.write_report(args.out)
    print(f"wrote {path}")
    return 0


def cmd_data(args) -> int:
    from compare import data

    directory = data.fetch(args.data_dir, download=args.download)
    print(f"Fashion-MNIST verified in {directory}")
    return 0


def _describe(experiment) -> str:
    """One line: architecture, layer widths and recipe of an experiment."""
    model, train, data = experiment.model, experiment.train, experiment.data
    if model.architecture in ("two_layer_net", "dynamic_net"):
        hidden = str(model.hidden_sizes[0])
        if model.architecture == "dynamic_net":
            hidden += f"x(0..{model.max_middle_repeats})"
        widths = (data.input_size, hidden, data.output_size)
    elif model.architecture == "cnn":
        convs = "conv" + "/".join(str(f) for f in model.conv_filters)
        pool = {"avg": f"pool{model.pool_size}", "global_avg": "gap"}.get(model.pooling, "")
        head = () if model.logits_from == "conv" else (*model.hidden_sizes, model.num_classes)
        widths = ("28x28", convs, *([pool] if pool else []), *head)
    else:
        widths = (784, *model.hidden_sizes, model.num_classes)
    layers = "-".join(str(w) for w in widths)
    line = (
        f"{experiment.name:28s} {model.architecture:13s} {layers:26s} {model.activation:11s} "
        f"{train.optimizer} lr={train.learning_rate} batch={train.batch_size} "
        f"epochs={train.epochs}"
    )
    if experiment.framework_overrides:
        sides = ", ".join(sorted(experiment.framework_overrides))
        line += f" (differs per framework: {sides})"
    return line


def cmd_list(args) -> int:
    from compare import results, studies

    frameworks = ",".join(results.FRAMEWORKS)
    print(f"models (each runs in {frameworks}):")
    for experiment in studies.MODELS.values():
        print(f"  {_describe(experiment)}")
    print("other experiments of the built-in studies:")
    for experiment in studies.STUDY_EXPERIMENTS.values():
        print(f"  {_describe(experiment)}")
    for name, models in studies.STUDIES.items():
        print(f"study {name}: {', '.join(models)}")
    return 0


def _absolute_study(study: str | None) -> str | None:
    """A study file's path made absolute (subprocesses run from the repository root)."""
    from compare import studies

    if study is None or study in studies.STUDIES:
        return study
    return str(pathlib.Path(study).resolve())


def cmd_parity(args) -> int:
    import json

    from compare import data, results, studies
    from compare.spec import CLASSIFIERS, KERAS_BACKENDS, StudySpec

    unknown = [b for b in args.keras_backends if b not in KERAS_BACKENDS]
    if unknown or not args.keras_backends:
        raise UserError(
            f"unknown Keras backend {(unknown or [''])[0]!r} in --keras-backends: "
            f"choose from {', '.join(KERAS_BACKENDS)}"
        )
    # The regression nets are not Fashion-MNIST classifiers: they are checked step by
    # step against NumPy and each other by compare/regression.py, not by these levels.
    # An experiment with framework_overrides differs between the frameworks on purpose
    # (the seed-002 scripts and their ladder): there is no "same model" to prove.
    source = (
        studies.resolve_study(args.study).experiments if args.study else studies.MODELS.values()
    )
    classifiers = tuple(
        e for e in source if e.model.architecture in CLASSIFIERS and not e.framework_overrides
    )
    if not classifiers:
        raise UserError(
            f"study {args.study} has no classifier the same on both sides to check: parity "
            "covers Fashion-MNIST classifiers without framework_overrides"
        )
    catalog = StudySpec(name="parity", experiments=classifiers)
    for name in args.models or []:
        if name in studies.MODELS and studies.MODELS[name].model.architecture not in CLASSIFIERS:
            raise UserError(
                f"{name} is a regression net: its frameworks are compared step by step "
                "against NumPy in every run (see the report), not by `parity`"
            )
    experiments = list(studies.select_models(catalog, args.models).experiments)
    data.fetch(args.data_dir)  # a missing data set is a user error, found before any training
    if args.out:
        from compare.runner import prepare_output

        prepare_output(args.out)
    if "keras" not in sys.modules:
        # Keras fixes its backend at import: this process takes the first one asked for,
        # parity.run_backends starts one process per other backend.
        os.environ["KERAS_BACKEND"] = args.keras_backends[0]
    from compare import parity  # imports both frameworks: only once the input is known good

    report = parity.run_backends(
        experiments,
        args.threads,
        args.keras_backends,
        data_dir=args.data_dir,
        study=_absolute_study(args.study),
    )
    if args.out:
        results.write_json_atomic(args.out / "parity.json", report)
    print(json.dumps(report, indent=1) if args.json else parity.format_table(report))
    return 0 if report["passed"] else 1


def cmd_worker(args) -> int:
    from compare import worker

    if args.probe:
        return worker.probe(args.probe, args.device)
    return worker.main(args.request)


COMMANDS = {
    "run": cmd_run,
    "bench": cmd_bench,
    "report": cmd_report,
    "data": cmd_data,
    "list": cmd_list,
    "parity": cmd_parity,
    "worker": cmd_worker,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UserError as error:
        if debug:
            traceback.print_exc()
        print(f"error: {error}", file=sys.stderr)
        return UserError.exit_code
    except KeyboardInterrupt:
        print(
            "interrupted: finished runs are saved; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
