"""`python -m compare parity --pair TORCH_FACTORY,KERAS_FACTORY` and `--zoo`: the parity
proof for a user's pair (or the zoo's), on each Keras backend asked for, with the
study's table, JSON and exit codes (0 passed, 1 a level failed, 2 a user error).

Keras fixes its backend at import: this process checks the first backend, and reruns
itself once per other backend (`--keras-backends B --out DIR`), merging the reports.
`--out OUT` writes OUT/pairs.json (the report's "Pairs" section), beside the study's
parity.json.

Stage: parity.
"""

from __future__ import annotations

import importlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile

from compare import files
from compare.errors import UserError

# Beside the study's parity.json, which it must not replace.
PAIRS_FILE = "pairs.json"
LOSSES = ("cross_entropy", "nll", "mse")
OPTIMIZERS = ("sgd", "adam")


def parse_factories(text: str) -> tuple[str, str]:
    """'pkg.mod:torch_fn,pkg.mod:keras_fn' -> the two references, checked for form."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 2 or not all(_is_reference(part) for part in parts):
        raise UserError(
            f"--pair {text!r}: give MODULE:TORCH_FACTORY,MODULE:KERAS_FACTORY "
            "(e.g. --pair mymodels:make_torch,mymodels:make_keras)"
        )
    return parts[0], parts[1]


def _is_reference(part: str) -> bool:
    module, _, name = part.partition(":")
    return bool(module) and name.isidentifier() and all(p.isidentifier() for p in module.split("."))


def _check_findable(module_name: str) -> None:
    """A module that is not there is found before a framework loads (no log noise)."""
    import importlib.util

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found = importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise UserError(
            f"--pair: cannot import {module_name} (no such module): run from the directory "
            "that holds it or add that directory to PYTHONPATH"
        )


def load_factory(reference: str):
    """The callable `MODULE:NAME` names, imported from the current directory too."""
    module_name, _, name = reference.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UserError(
            f"--pair: cannot import {module_name} ({error}): run from the directory that "
            "holds it or add that directory to PYTHONPATH"
        ) from None
    factory = getattr(module, name, None)
    if not callable(factory):
        raise UserError(f"--pair: {module_name} has no callable {name}")
    return factory


def parse_shape(text: str | None) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in (text or "").split(","))
    except ValueError:
        shape = ()
    if not shape or any(size <= 0 for size in shape):
        raise UserError(
            f"--input-shape {text!r}: give one example's shape in torch's layout, without "
            "the batch (e.g. --input-shape 3,32,32 or --input-shape 20)"
        )
    return shape


def parse_optimizer(text: str) -> tuple[str, float]:
    name, _, rate = text.partition(":")
    try:
        learning_rate = float(rate)
    except ValueError:
        learning_rate = -1.0
    if name not in OPTIMIZERS or not learning_rate > 0:
        raise UserError(
            f"--optimizer {text!r}: give NAME:LEARNING_RATE with NAME one of "
            f"{', '.join(OPTIMIZERS)} (e.g. --optimizer sgd:0.01)"
        )
    return name, learning_rate


def check_arguments(args) -> None:
    """Everything that can be wrong with the flags, before a framework is imported."""
    from compare.parity import select

    if args.zoo and args.pair:
        raise UserError("--zoo checks the built-in pairs: drop --pair or --zoo")
    if args.levels:
        select.check_choices(args.levels, select.PAIR_LEVELS, "pair parity level", "--levels")
    if args.pair:
        for reference in parse_factories(args.pair):
            _check_findable(reference.partition(":")[0])
        parse_shape(args.input_shape)
        parse_optimizer(args.optimizer)
        if args.loss not in LOSSES:
            raise UserError(f"--loss {args.loss!r}: choose from {', '.join(LOSSES)}")
        if args.input_high is not None and args.input_high <= 0:
            raise UserError("--input-high must be positive (integer inputs in [0, HIGH))")


def _optimizers(name: str, learning_rate: float):
    from compare.parity.pair import zoo
    from compare.spec.schema import TrainSpec

    # Parity: for Adam, Keras takes torch's update rule (adam_formula "torch"): stock
    # Keras Adam adds epsilon to sqrt(v); the study's aligned optimizer.
    formula = "torch" if name == "adam" else "native"
    return zoo.optimizers(
        TrainSpec(optimizer=name, learning_rate=learning_rate, adam_formula=formula)
    )


def check_user_pair(args) -> dict:
    """The report for the user's pair, Keras on this process's backend."""
    import numpy as np
    import torch

    from compare.parity.pair.api import check_pair

    torch_reference, keras_reference = parse_factories(args.pair)
    torch_factory, keras_factory = load_factory(torch_reference), load_factory(keras_reference)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    shape = (args.examples, *parse_shape(args.input_shape))
    if args.input_high is not None:
        x = rng.integers(0, args.input_high, shape)
    else:
        x = rng.normal(size=shape).astype(np.float32)
    y = rng.integers(0, args.classes, args.examples) if args.classes else None
    if y is not None and args.loss == "mse":
        y = rng.normal(size=(args.examples, args.classes)).astype(np.float32)
    torch_model, keras_model = _built(torch_factory, "torch"), _built(keras_factory, "keras")
    report = check_pair(
        torch_model,
        keras_model,
        x,
        y=y,
        loss=args.loss if y is not None else None,
        optimizers=_optimizers(*parse_optimizer(args.optimizer)) if y is not None else None,
        name=torch_reference.partition(":")[2],
        levels=_levels(args),
    )
    return report.as_dict()


def _levels(args) -> tuple[str, ...]:
    from compare.parity import select

    return tuple(args.levels or select.PAIR_LEVELS)


def _built(factory, side: str):
    try:
        model = factory()
    except Exception as error:  # noqa: BLE001 - the user's code: one line, not a traceback
        raise UserError(
            f"--pair: the {side} factory {factory.__name__}() raised "
            f"{type(error).__name__}: {error} (run it alone, or use --debug for the traceback)"
        ) from error
    if side == "torch" and not hasattr(model, "named_modules"):
        raise UserError(f"--pair: the torch factory returned {type(model).__name__}, not a module")
    if side == "keras" and not hasattr(model, "layers"):
        raise UserError(f"--pair: the Keras factory returned {type(model).__name__}, not a model")
    return model


def check_zoo(args) -> dict:
    """The zoo's pairs, correct and wrong ports, Keras on this process's backend."""
    from compare.parity.pair import zoo

    models, rows = {}, []
    for case in zoo.cases().values():
        for row in zoo.check_case(case, seed=args.seed, levels=_levels(args)):
            report = row.pop("report")
            models.update(report.as_dict()["models"])
            rows.append(row)
    import keras

    return {
        "schema": "keras-vs-pytorch/parity/v1",
        # The zoo passes when every correct port passes and every wrong port fails where
        # it must, naming the layer.
        "passed": all(row["as_expected"] for row in rows),
        "models": models,
        "zoo": {keras.backend.backend(): rows},
    }


def merge(reports: list[dict]) -> dict:
    merged = {"schema": reports[0]["schema"], "passed": all(r["passed"] for r in reports)}
    merged["models"] = {k: v for r in reports for k, v in r["models"].items()}
    merged["defaults"] = [row for r in reports for row in r.get("defaults", [])]
    if any("zoo" in r for r in reports):
        merged["zoo"] = {k: v for r in reports for k, v in r.get("zoo", {}).items()}
    return merged


def _in_subprocess(backend: str) -> dict:
    """This command again, Keras on `backend`, in a new process (the user's directory)."""
    with tempfile.TemporaryDirectory() as out:
        argv = _without(_without(sys.argv[1:], "--keras-backends"), "--out")
        command = [
            sys.executable,
            "-m",
            "compare",
            *argv,
            "--keras-backends",
            backend,
            "--out",
            out,
        ]
        done = subprocess.run(
            command, env={**os.environ, "KERAS_BACKEND": backend}, capture_output=True, text=True
        )
        path = pathlib.Path(out) / PAIRS_FILE
        if done.returncode not in (0, 1) or not path.exists():
            tail = "\n".join(
                (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-20:]
            )
            raise RuntimeError(f"parity with Keras on {backend} crashed:\n{tail}")
        return json.loads(path.read_text())


def _without(argv: list[str], flag: str) -> list[str]:
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        if item == flag:
            skip = True
            continue
        if item.startswith(flag + "="):
            continue
        out.append(item)
    return out


def main(args) -> int:
    """Run the check on every backend asked for; print, write OUT/parity.json."""
    # triton (loaded by torch._dynamo) must load before TensorFlow: see parity.levels.
    import torch._dynamo  # noqa: F401

    # isort: split
    import keras

    here = keras.backend.backend()
    reports = []
    for backend in args.keras_backends:
        if backend == here:
            reports.append(check_zoo(args) if args.zoo else check_user_pair(args))
        else:
            reports.append(_in_subprocess(backend))
    report = files.finite_or_none(merge(reports))
    if args.out:
        files.write_json_atomic(args.out / PAIRS_FILE, report)
    if args.json:
        print(json.dumps(report, indent=1, default=str))
    else:
        print(format_table(report))
    return 0 if report["passed"] else 1


def format_table(report: dict) -> str:
    """The study's parity table; for the zoo, a line per port with its verdict."""
    from compare.parity.suite import format_table as table

    if "zoo" not in report:
        return table(report)
    lines = [f"{'backend':11s} {'pair':14s} {'port':26s} {'verdict':13s} {'s':>6s}  where"]
    for backend, rows in report["zoo"].items():
        for row in rows:
            verdict = ("pass" if row["passed"] else f"fail:{row['failed_at']}") + (
                "" if row["as_expected"] else " (!)"
            )
            lines.append(
                f"{backend:11s} {row['pair']:14s} {row['port']:26s} {verdict:13s} "
                f"{row['seconds']:6.1f}  {row['first_failure'] or ''}"
            )
    lines.append(
        "zoo: every correct port passes and every wrong port fails where it must"
        if report["passed"]
        else "zoo: FAILED (rows marked (!) did not do what they must)"
    )
    return "\n".join(lines)
