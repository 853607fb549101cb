"""Command-line interface: parses flags and calls library functions, nothing more.

Stage: the entry point, on top of every stage. Defaults come from the options
dataclasses (`compare.run.plan.Options`, `compare.bench.bench.BenchOptions`), never
restated here.

Frameworks are imported only by the commands that need them, so `--help` is fast.
A user mistake ends with one line on stderr and exit code 2 (`--debug` shows the
traceback).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import traceback

from compare.errors import UserError
from compare.pair.command import positive_int as _positive_int
from compare.spec.identity import DEFAULT_MODE, KERAS_BACKENDS, MODES
from compare.spec.schema import ParitySpec

# Parity seeds by default (the spec's).
PARITY_SEEDS = ParitySpec.seeds


class Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line and exit code 2, like every user error."""

    def error(self, message):
        raise UserError(f"{self.prog}: {message} (see --help)")


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def build_parser() -> Parser:
    from compare.bench.options import BenchOptions
    from compare.run.plan import Options

    run_defaults, bench_defaults = Options(), BenchOptions()
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
    run.add_argument("--frameworks", type=_csv, default=list(run_defaults.frameworks))
    run.add_argument("--seeds", type=_positive_int, help="seeds per framework (default: study's)")
    run.add_argument("--profile", default=run_defaults.profile, help="quick | default")
    run.add_argument("--device", default=run_defaults.device, help="auto | cpu | gpu")
    run.add_argument(
        "--threads",
        type=_positive_int,
        default=run_defaults.threads,
        help="threads per run (default: the cores split between --jobs)",
    )
    run.add_argument(
        "--jobs",
        type=_positive_int,
        default=run_defaults.jobs,
        help="runs at once (default: one per core, as memory allows; 1 on a GPU)",
    )
    run.add_argument("--out", type=pathlib.Path, default=run_defaults.out)
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
        default=list(run_defaults.modes),
        help="tuned,idiomatic,compiled (see compare/spec/identity.py)",
    )
    run.add_argument(
        # The same flag as parity's; the singular spelling is kept for earlier users.
        "--keras-backends",
        "--keras-backend",
        dest="keras_backends",
        type=_csv,
        default=list(run_defaults.keras_backends),
        help="Keras backends to run: tensorflow,jax,torch",
    )

    run.add_argument(
        "--executor",
        default=run_defaults.executor,
        help="local (this machine's workers) | ray (a Ray cluster; see README)",
    )
    run.add_argument(
        "--ray-address",
        default=run_defaults.ray_address,
        help="the Ray cluster (host:port); default RAY_ADDRESS, else a local Ray instance",
    )

    bench = commands.add_parser("bench", help="benchmark the headline MLP (modes, threads)")
    bench.add_argument("--out", type=pathlib.Path, default=bench_defaults.out)
    bench.add_argument("--repeats", type=_positive_int, default=bench_defaults.repeats)
    bench.add_argument(
        "--epochs", type=_positive_int, default=bench_defaults.epochs, help="1 first + steady"
    )
    bench.add_argument("--threads", type=_positive_int, default=bench_defaults.threads)
    bench.add_argument("--no-thread-sweep", action="store_true", help="skip the 1..N sweep")
    bench.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    report = commands.add_parser("report", help="write OUT/index.html and OUT/results.csv")
    report.add_argument("--out", type=pathlib.Path, default=run_defaults.out)

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
    parity.add_argument(
        "--jobs",
        type=_positive_int,
        help="processes at once, each with --threads (default: the cores / --threads); "
        "with more than one, each backend's models are split between processes",
    )
    parity.add_argument("--data-dir", help="directory with the four Fashion-MNIST .gz files")
    parity.add_argument(
        "--seeds",
        type=_positive_int,
        default=PARITY_SEEDS,
        help="parity seeds (initial weights, batches, probes): a level passes only if it "
        f"passes under every one ({PARITY_SEEDS})",
    )
    parity.add_argument(
        "--modes",
        type=_csv,
        default=[DEFAULT_MODE],
        help=f"execution modes the study-path level trains in ({DEFAULT_MODE}; "
        f"any of {', '.join(MODES)})",
    )
    parity.add_argument(
        "--keras-backends",
        type=_csv,
        default=list(KERAS_BACKENDS),
        help="Keras backends to check against native PyTorch, one process each (all three)",
    )
    parity.add_argument(
        "--levels",
        type=_csv,
        help="only these levels (all; e.g. structure,forward,gradients: the cheap ones)",
    )
    pair = parity.add_argument_group("a user's pair (compare.pair)")
    pair.add_argument(
        "--pair",
        metavar="MODULE:TORCH_FACTORY,MODULE:KERAS_FACTORY",
        help="check your own torch module and Keras model (each factory takes no argument)",
    )
    from compare.pair import command as pair_command

    pair_command.add_pair_arguments(pair, "check")
    from compare.pair import port_command

    port_command.add_parser(commands, _csv)

    worker = commands.add_parser("worker", help=argparse.SUPPRESS)
    worker.add_argument("request", nargs="?", default="-", help="request JSON file; - = stdin")
    worker.add_argument("--probe", metavar="FRAMEWORK", help="only check --device, then exit")
    worker.add_argument("--device", default="auto")
    return parser


def _options(args):
    from compare.run.plan import Options

    return Options(
        frameworks=tuple(args.frameworks),
        seeds=args.seeds,
        profile=args.profile,
        device=args.device,
        threads=args.threads,
        jobs=args.jobs,
        out=args.out,
        data_dir=args.data_dir,
        overrides=tuple(args.overrides),
        progress=not args.no_progress,
        deterministic=args.deterministic,
        modes=tuple(args.modes),
        keras_backends=tuple(args.keras_backends),
        executor=args.executor,
        ray_address=args.ray_address,
    )


def cmd_run(args) -> int:
    from compare import network
    from compare.run import runner
    from compare.spec import studies

    options = _options(args)
    # A run never needs the network: its worker refuses it. The driver of a Ray study
    # must reach its cluster, so only a local study's driver refuses it too.
    if options.executor == "local":
        network.forbid_network()
    study = studies.select_models(studies.study_for(args.study, args.faithful), args.models)
    return runner.run_study(study, options)


def cmd_bench(args) -> int:
    from compare import network
    from compare.bench import bench
    from compare.bench.options import BenchOptions

    network.forbid_network()
    options = BenchOptions(
        out=args.out,
        repeats=args.repeats,
        epochs=args.epochs,
        threads=args.threads,
        thread_sweep=not args.no_thread_sweep,
        progress=not args.no_progress,
    )
    return bench.run_bench(options)


def cmd_report(args) -> int:
    from compare.report import build

    print(f"wrote {build.write_report(args.out)}")
    return 0


def cmd_data(args) -> int:
    from compare.data import fashion_mnist

    directory = fashion_mnist.fetch(args.data_dir, download=args.download)
    print(f"Fashion-MNIST verified in {directory}")
    return 0


def cmd_list(args) -> int:
    from compare.spec import catalog

    print(catalog.listing())
    return 0


def cmd_parity(args) -> int:
    from compare.data import fashion_mnist
    from compare.parity import select

    select.check_backends(args.keras_backends)
    if args.pair or args.zoo:
        return _parity_of_pairs(args)
    select.check_modes(args.modes)
    levels = args.levels or list(select.LEVELS)
    select.check_levels(levels)
    experiments = select.experiments(args.study, args.models)
    fashion_mnist.fetch(args.data_dir)  # a missing data set is a user error, found first
    if args.out:
        from compare.run.output import prepare_output

        prepare_output(args.out)
    select.choose_keras_backend(args.keras_backends)
    from compare.parity import suite  # imports both frameworks: only once the input is good

    return suite.main(
        experiments,
        args.threads,
        args.keras_backends,
        data_dir=args.data_dir,
        study=select.absolute_study(args.study),
        out=args.out,
        as_json=args.json,
        seeds=args.seeds,
        modes=args.modes,
        levels=levels,
        jobs=args.jobs or select.default_jobs(args.threads),
    )


def _parity_of_pairs(args) -> int:
    from compare.pair import command
    from compare.parity import select

    if args.models or args.study:
        raise UserError(
            "--pair and --zoo check pairs, not the study's models: drop --models/--study"
        )
    command.check_arguments(args)
    if args.zoo_cases and not args.zoo:
        raise UserError("--zoo-cases narrows --zoo: add --zoo")
    if args.out:
        from compare.run.output import prepare_output

        prepare_output(args.out)
    select.choose_keras_backend(args.keras_backends)
    if not args.zoo:
        return command.main(args)
    from compare.parity.zoo import check

    return command.main(args, check.check_zoo, check.format_table)


def cmd_port(args) -> int:
    from compare.pair import port_command

    port_command.check_arguments(args)
    if args.zoo:
        from compare.parity.zoo import port as zoo_port

        return zoo_port.main(args)
    return port_command.main(args)


def cmd_worker(args) -> int:
    from compare.run import worker

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
    "port": cmd_port,
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
        return error.exit_code
    except KeyboardInterrupt:
        print(
            "interrupted: finished runs are saved; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
