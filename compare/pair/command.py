"""`python -m compare parity --pair TORCH_FACTORY,KERAS_FACTORY`: the pair engine from
the command line, on each Keras backend asked for, with a table (or `--json`), OUT/pairs.json
(`--out`) and exit codes 0 passed, 1 a level failed, 2 a user error.

Keras fixes its backend at import: this process checks its own backend and reruns the
command once per other backend (`--keras-backends B --out DIR`), merging the reports.
`main` takes the check to run, so the zoo (`compare.parity.zoo`) fans out the same way.

Stage: pair.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import tempfile
from typing import NamedTuple

from compare import files
from compare.errors import UserError

# Beside the study's parity.json, which it must not replace.
PAIRS_FILE = "pairs.json"
SCHEMA = "keras-vs-pytorch/parity/v1"


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


def _here_on_path() -> None:
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def _check_findable(module_name: str, flag: str) -> None:
    """A module that is not there is found before a framework loads (no log noise)."""
    _here_on_path()
    try:
        found = importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise UserError(
            f"{flag}: cannot import {module_name} (no such module): run from the directory "
            "that holds it or add that directory to PYTHONPATH"
        )


def load_callable(reference: str, flag: str = "--pair"):
    """The callable `MODULE:NAME` names, imported from the current directory too."""
    module_name, _, name = reference.partition(":")
    _here_on_path()
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UserError(
            f"{flag}: cannot import {module_name} ({error}): run from the directory that "
            "holds it or add that directory to PYTHONPATH"
        ) from None
    found = getattr(module, name, None)
    if not callable(found):
        raise UserError(f"{flag}: {module_name} has no callable {name}")
    return found


def parse_shape(text: str | None) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in (text or "").split(","))
    except ValueError:
        shape = ()
    if not shape or any(size <= 0 for size in shape):
        raise UserError(
            f"--input-shape {text!r}: give one example's shape in torch's layout, without "
            "the batch (e.g. --input-shape 3,32,32 or --input-shape 20), or give "
            "--inputs MODULE:FUNCTION"
        )
    return shape


def parse_optimizer(text: str) -> tuple[str, float]:
    from compare.pair.optimizers import NAMES

    name, _, rate = text.partition(":")
    try:
        learning_rate = float(rate)
    except ValueError:
        learning_rate = -1.0
    if name not in NAMES or not learning_rate > 0:
        raise UserError(
            f"--optimizer {text!r}: give NAME:LEARNING_RATE with NAME one of "
            f"{', '.join(NAMES)} (e.g. --optimizer sgd:0.01)"
        )
    return name, learning_rate


def check_arguments(args) -> None:
    """Everything that can be wrong with the flags, before a framework is imported."""
    from compare.pair.levels import LEVELS
    from compare.pair.recipe import LOSSES

    if args.zoo and args.pair:
        raise UserError("--zoo checks the built-in pairs: drop --pair or --zoo")
    for level in args.levels or []:
        if level not in LEVELS:
            raise UserError(
                f"unknown pair parity level {level!r} in --levels: choose from {', '.join(LEVELS)}"
            )
    if not args.pair:
        return
    for reference in parse_factories(args.pair):
        _check_findable(reference.partition(":")[0], "--pair")
    if args.inputs:
        if not _is_reference(args.inputs):
            raise UserError(
                f"--inputs {args.inputs!r}: give MODULE:FUNCTION returning the inputs (an "
                "array, a tuple of positional inputs or a dict of keyword inputs)"
            )
        _check_findable(args.inputs.partition(":")[0], "--inputs")
    else:
        parse_shape(args.input_shape)
    parse_optimizer(args.optimizer)
    if args.loss not in LOSSES:
        raise UserError(f"--loss {args.loss!r}: choose from {', '.join(LOSSES)}")
    if args.input_high is not None and args.input_high <= 0:
        raise UserError("--input-high must be positive (integer inputs in [0, HIGH))")


def _call(factory, what: str):
    try:
        return factory()
    except Exception as error:  # noqa: BLE001 - the user's code: one line, not a traceback
        raise UserError(
            f"--pair: the {what} {factory.__name__}() raised {type(error).__name__}: {error} "
            "(run it alone, or use --debug for the traceback)"
        ) from error


def add_pair_arguments(group, verb: str) -> None:
    """The flags that name a user's pair and its inputs (`parity --pair`, `port`)."""
    group.add_argument("--zoo", action="store_true", help=f"{verb} the built-in zoo of pairs")
    group.add_argument(
        "--zoo-cases",
        type=lambda text: [p.strip() for p in text.split(",") if p.strip()],
        help="only these zoo pairs (e.g. unet,bert_tiny; all)",
    )
    group.add_argument("--input-shape", help="one example's shape, torch layout (e.g. 3,32,32)")
    group.add_argument(
        "--inputs",
        metavar="MODULE:FUNCTION",
        help="a function returning the inputs, torch layout: an array, a tuple (positional) "
        "or a dict (keyword arguments, e.g. input_ids and attention_mask)",
    )
    group.add_argument(
        "--output", help="the output compared: an index or a key (e.g. logits; the first)"
    )
    group.add_argument("--input-high", type=int, help="integer inputs in [0, HIGH) (token ids)")
    group.add_argument("--examples", type=positive_int, default=16, help="examples (16)")
    group.add_argument(
        "--classes",
        type=positive_int,
        help="random targets in [0, CLASSES): runs the "
        "gradients, optimizer and lockstep levels too",
    )
    group.add_argument("--loss", default="cross_entropy", help="cross_entropy, nll or mse")
    group.add_argument("--optimizer", default="sgd:0.01", help="sgd:LR or adam:LR (sgd:0.01)")
    group.add_argument("--seed", type=int, default=0, help="weights, inputs and targets (0)")


def positive_int(text: str) -> int:
    """argparse's type for a count of at least one."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def check_user_pair(args) -> dict:
    """The report for the user's pair, Keras on this process's backend."""
    from compare.pair import api, optimizers

    built = build_user_pair(args)
    report = api.check_pair(
        built.torch_model,
        built.keras_model,
        built.x,
        y=built.y,
        loss=args.loss if built.y is not None else None,
        optimizers=optimizers.named(*parse_optimizer(args.optimizer))
        if built.y is not None
        else None,
        name=built.name,
        levels=tuple(args.levels or api.LEVELS),
        output=built.output,
    )
    return report.as_dict()


class BuiltPair(NamedTuple):
    torch_model: object
    keras_model: object
    x: object
    y: object
    name: str
    output: object


def build_user_pair(args) -> BuiltPair:
    """Both models from the factories `--pair` names, seeded by `--seed`, and the inputs
    and targets the flags ask for."""
    import numpy as np
    import torch

    from compare.pair import frameworks

    frameworks.prepare()
    torch_reference, keras_reference = parse_factories(args.pair)
    torch_factory = load_callable(torch_reference)
    keras_factory = load_callable(keras_reference)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    y = None
    if args.inputs:
        x = _call(load_callable(args.inputs, "--inputs"), "inputs function")
    else:
        shape = (args.examples, *parse_shape(args.input_shape))
        if args.input_high is not None:
            x = rng.integers(0, args.input_high, shape)
        else:
            x = rng.normal(size=shape).astype(np.float32)
    if args.classes:
        first = (
            next(iter(x.values()))
            if isinstance(x, dict)
            else x[0]
            if isinstance(x, (list, tuple))
            else x
        )
        batch = len(first)
        y = rng.integers(0, args.classes, batch)
        if args.loss == "mse":
            y = rng.normal(size=(batch, args.classes)).astype(np.float32)
    torch_model = _built(torch_factory, "torch")
    import keras

    keras.utils.set_random_seed(args.seed)  # a Keras source's weights: the same each run
    keras_model = _built(keras_factory, "keras")
    output = int(args.output) if args.output and args.output.isdigit() else args.output
    return BuiltPair(torch_model, keras_model, x, y, torch_reference.partition(":")[2], output)


def _built(factory, side: str):
    model = _call(factory, f"{side} factory")
    if side == "torch" and not hasattr(model, "named_modules"):
        raise UserError(f"--pair: the torch factory returned {type(model).__name__}, not a module")
    if side == "keras" and not hasattr(model, "layers"):
        raise UserError(f"--pair: the Keras factory returned {type(model).__name__}, not a model")
    return model


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


def main(args, check=check_user_pair, table=None) -> int:
    """Run `check(args)` on every backend asked for; print; write OUT/pairs.json."""
    from compare.pair import frameworks

    frameworks.prepare()
    import keras

    here = keras.backend.backend()
    reports = [
        check(args) if backend == here else _in_subprocess(backend)
        for backend in args.keras_backends
    ]
    report = files.finite_or_none(merge(reports))
    if args.out:
        files.write_json_atomic(args.out / PAIRS_FILE, report)
    if args.json:
        print(json.dumps(report, indent=1, default=str))
    else:
        print((table or format_table)(report))
    return 0 if report["passed"] else 1


def format_table(report: dict) -> str:
    """A line per pair and Keras backend, then a line per level."""
    lines = []
    for name, entry in report["models"].items():
        lines.append(f"{name:32s} {'PASS' if entry['passed'] else 'FAIL'}")
        for check in entry["checks"]:
            detail = entry["details"][check["name"]]
            text = "" if check["passed"] else f": {detail.get('first_failure') or 'failed'}"
            lines.append(f"  {check['name']:10s} {'pass' if check['passed'] else 'FAIL'}{text}")
        for note in entry.get("notes", []):
            lines.append(f"  note: {note}")
    lines.append("every pair passed every level" if report["passed"] else "parity: FAILED")
    return "\n".join(lines)
