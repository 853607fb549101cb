"""Running a zoo case: the correct port through every level asked for, each wrong port
up to the level it must fail at, a row each (pair, port, passed, failed_at, as_expected,
first_failure, seconds, report).

Stage: parity.
"""

from __future__ import annotations

import importlib.util
import time

import numpy as np

from compare import pair


def check_case(case, seed: int = 0, wrong: bool = True, levels=None) -> list[dict]:
    import torch

    levels = tuple(levels or pair.LEVELS)
    if case.requires and importlib.util.find_spec(case.requires) is None:
        return [_skipped(case, f"needs {case.requires} (pip install {case.requires})")]
    rows = []
    ports = [("correct", case.keras, None)] + (
        [(w.name, w.keras, w) for w in case.wrong if w.fails_at in levels] if wrong else []
    )
    for port, build_keras, bug in ports:
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        torch_model = (bug.torch if bug is not None and bug.torch else case.torch)()
        draw = bug.inputs if bug is not None and bug.inputs else case.inputs
        x, y = draw(rng)
        if case.prepare is not None:
            # Statistics measured on other examples than those checked, as a trained
            # network's are: a batch's statistics differ from the running ones.
            case.prepare(torch_model, rng, draw(rng)[0])
        chosen = levels if bug is None else pair.LEVELS[: pair.LEVELS.index(bug.fails_at) + 1]
        started = time.perf_counter()
        report = pair.check_pair(
            torch_model,
            build_keras(),
            x,
            y=y,
            loss=case.loss,
            optimizers=case.optimizers(),
            name=f"{case.name}:{port}",
            levels=tuple(chosen),
            **case.options,
        )
        failed_at = next((c["name"] for c in report.entry["checks"] if not c["passed"]), None)
        if bug is None:
            expected = report.passed
        else:
            text = report.first_failure or ""
            expected = (
                failed_at == bug.fails_at
                and bug.names_layer in text
                and (bug.names_setting is None or bug.names_setting in text)
            )
        rows.append(
            {
                "pair": case.name,
                "port": port,
                "passed": report.passed,
                "failed_at": failed_at,
                "as_expected": bool(expected),
                "first_failure": report.first_failure,
                "seconds": round(time.perf_counter() - started, 1),
                "report": report,
            }
        )
    return rows


def _skipped(case, why: str) -> dict:
    return {
        "pair": case.name,
        "port": "correct",
        "passed": None,
        "failed_at": None,
        "as_expected": True,
        "first_failure": None,
        "seconds": 0.0,
        "skipped": why,
        "report": None,
    }


def chosen(names) -> dict:
    """{name: case} of the zoo pairs `--zoo-cases` names (all when none are)."""
    from compare.errors import UserError
    from compare.parity.zoo.catalog import cases

    found = cases()
    unknown = [name for name in names or [] if name not in found]
    if unknown:
        raise UserError(
            f"unknown zoo pair {unknown[0]!r} in --zoo-cases: choose from {', '.join(found)}"
        )
    return {name: found[name] for name in names or found}


def check_zoo(args) -> dict:
    """Every zoo case, correct and wrong ports, Keras on this process's backend
    (`--zoo-cases` narrows them): `python -m compare parity --zoo`."""
    import keras

    models, rows = {}, []
    for case in chosen(args.zoo_cases).values():
        for row in check_case(case, seed=args.seed, levels=args.levels or None):
            report = row.pop("report")
            if report is not None:
                models.update(report.as_dict()["models"])
            rows.append(row)
    return {
        "schema": "keras-vs-pytorch/parity/v1",
        # The zoo passes when every correct port passes and every wrong port fails where
        # it must, naming the layer and the setting.
        "passed": all(row["as_expected"] for row in rows),
        "models": models,
        "zoo": {keras.backend.backend(): rows},
    }


def format_table(report: dict) -> str:
    """A line per port with its verdict, where it failed and how long it took."""
    lines = [f"{'backend':11s} {'pair':16s} {'port':22s} {'verdict':15s} {'s':>6s}  where"]
    for backend, rows in report["zoo"].items():
        for row in rows:
            if row.get("skipped"):
                verdict = "skipped"
            else:
                verdict = ("pass" if row["passed"] else f"fail:{row['failed_at']}") + (
                    "" if row["as_expected"] else " (!)"
                )
            where = row.get("skipped") or row["first_failure"] or ""
            lines.append(
                f"{backend:11s} {row['pair']:16s} {row['port']:22s} {verdict:15s} "
                f"{row['seconds']:6.1f}  {where[:200]}"
            )
    lines.append(
        "zoo: every correct port passes and every wrong port fails where it must"
        if report["passed"]
        else "zoo: FAILED (rows marked (!) did not do what they must)"
    )
    return "\n".join(lines)
