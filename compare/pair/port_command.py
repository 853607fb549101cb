"""`python -m compare port`: a model's weights into its port, proven, and saved only then.

    python -m compare port --pair mymodels:make_torch,mymodels:make_keras \\
        --input-shape 3,32,32 --to keras --save out/model.weights.h5 [--repro out/repro]
    python -m compare port --pair ... --to keras --load out/model.weights.h5

`--pair` names the torch factory first and the Keras factory second, whatever the
direction; `--to` says which side receives the other's weights. Exit codes: 0 the port
is the same model (and saved, with --save), 1 a level failed (nothing written unless
--force, which says so), 2 a user error (a bad flag, a file that does not load as saved).
`--load` checks a saved port in this (fresh) process: the file loads into the target
factory's model against its record, and forward parity holds against the source.

Stage: pair.
"""

from __future__ import annotations

import json
import os
import pathlib

from compare.errors import UserError

KERAS_BACKENDS = ("tensorflow", "jax", "torch")


def add_parser(commands, csv) -> None:
    from compare.pair import command

    port = commands.add_parser(
        "port", help="copy a model's weights into its port, prove it, save it only then"
    )
    port.add_argument(
        "--pair",
        metavar="MODULE:TORCH_FACTORY,MODULE:KERAS_FACTORY",
        help="your torch module and your Keras model (torch first, whatever --to says)",
    )
    port.add_argument(
        "--to", choices=("keras", "torch"), help="the side that receives the other's weights"
    )
    port.add_argument(
        "--save", type=pathlib.Path, help="write the ported weights (.weights.h5 / .pt)"
    )
    port.add_argument("--force", action="store_true", help="save even when a level fails")
    port.add_argument(
        "--repro", type=pathlib.Path, help="on a failure, write a one-layer reproduction here"
    )
    port.add_argument(
        "--load", type=pathlib.Path, help="check a saved port instead: load it and prove it"
    )
    port.add_argument(
        "--keras-backend", choices=KERAS_BACKENDS, help="(KERAS_BACKEND, else tensorflow)"
    )
    port.add_argument(
        "--levels", type=csv, help="levels (structure,weights,forward; all with --classes)"
    )
    port.add_argument("--json", action="store_true", help="print the report as JSON")
    command.add_pair_arguments(port.add_argument_group("the pair's inputs"), "port")


def check_arguments(args) -> None:
    """Every flag mistake, before a framework loads."""
    from compare.pair import command, saved

    if bool(args.pair) == bool(args.zoo):
        raise UserError("port: give --pair MODULE:TORCH_FACTORY,MODULE:KERAS_FACTORY or --zoo")
    if not args.to:
        raise UserError("port: say where the weights go: --to keras or --to torch")
    if args.load and (args.save or args.force or args.repro):
        raise UserError("--load checks a saved port: drop --save, --force and --repro")
    if args.force and not args.save:
        raise UserError("--force saves a failing port: add --save PATH")
    if args.save and not args.zoo:
        saved.check_path(args.save, args.to)
    if args.load and not args.zoo and not args.load.is_file():
        raise UserError(f"--load {args.load}: no such file: give the path --save wrote")
    command.check_arguments(args)
    if args.keras_backend:
        choose_backend(args.keras_backend)


def choose_backend(backend: str) -> None:
    import sys

    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != backend:
            raise UserError(
                f"--keras-backend {backend}: Keras is already loaded on "
                f"{keras.backend.backend()} in this process"
            )
    os.environ["KERAS_BACKEND"] = backend


def main(args) -> int:
    """Port (or, with --load, check) the user's pair; print; exit 0, 1 or 2."""
    from compare.pair import frameworks

    frameworks.prepare()  # before anything imports TensorFlow: its start-up logs off
    from compare.pair import api, command, optimizers, port, saved

    built = command.build_user_pair(args)
    source, target = (
        (built.torch_model, built.keras_model)
        if args.to == "keras"
        else (built.keras_model, built.torch_model)
    )
    levels = tuple(args.levels) if args.levels else None
    if args.load:
        record = saved.load(target, args.load)
        if saved.weights_hash(source) != record["source"]["weights_sha256"]:
            raise UserError(
                f"--load {args.load}: the source built now is not the one that was ported "
                f"(its weights differ): use the same factories, --seed and Keras backend "
                f"({record['keras_backend']}) as when it was saved"
            )
        report = api.check_pair(
            built.torch_model,
            built.keras_model,
            built.x,
            weights="as_given",
            levels=levels or port.FORWARD_LEVELS,
            name=built.name,
            output=built.output,
        )
        return _finish(args, report, [f"loaded {args.load} (its record checked)"])
    training = built.y is not None
    ported = port.port_weights(
        source,
        target,
        built.x,
        y=built.y,
        loss=args.loss if training else None,
        optimizers=optimizers.named(*command.parse_optimizer(args.optimizer)) if training else None,
        levels=levels,
        name=built.name,
        output=built.output,
        repro=args.repro,
    )
    return _finish(args, ported.report, save_lines(ported, args.save, args.force))


def save_lines(ported, path, force: bool) -> list[str]:
    """Save when asked and allowed; the lines that say what happened."""
    from compare.pair import saved

    lines = []
    if path is not None:
        if ported.passed or force:
            ported.save(path, force=force)
            lines.append(f"saved {path} and its record {saved.record_path(path).name}")
            if not ported.passed:
                lines.append(
                    "saved anyway (--force): the checks FAILED, this is not the same model"
                )
        else:
            lines.append(f"not saved: the checks failed (--force writes {path} anyway)")
    repro = ported.report.repro
    if repro:
        lines.append(
            f"reproduction of {repro['layer']}: python {repro['script']}"
            if repro.get("written")
            else f"no reproduction written: {repro['reason']}"
        )
    return lines


def _finish(args, report, lines: list[str]) -> int:
    from compare.pair import command

    if args.json:
        print(json.dumps(report.as_dict(), indent=1, default=str))
    else:
        print(command.format_table(report.as_dict()))
    import sys

    for line in lines:  # beside the JSON, not in it
        print(line, file=sys.stderr if args.json else sys.stdout)
    return 0 if report.passed else 1
