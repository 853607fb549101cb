"""`python -m compare port --zoo --to keras|torch --save DIR`: every zoo pair ported.

Each correct port must save (DIR/CASE.weights.h5 or DIR/CASE.pt with its record), and
every saved file must load again in a fresh process (`--load DIR`, run by this command
as a child) into a newly built target that passes forward parity against the source.
Each wrong port must be refused (nothing written) and, where the failure names two
layers, its reproduction (DIR/repro/CASE_PORT) must print the check's gap when run in a
fresh process. Keras runs on this process's backend (`--keras-backend`).

Stage: parity.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time

import numpy as np

from compare import files, pair
from compare.errors import UserError

RESULTS = "port-zoo.json"


def _chosen(args) -> dict:
    from compare.parity.zoo import check, converters

    converters.register()
    return check.chosen(args.zoo_cases)


def build(case, bug, to: str, seed: int = 0):
    """(source, target, x, y) of a case's port, seeded as `check_case` seeds them."""
    import keras
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    torch_model = (bug.torch if bug is not None and bug.torch else case.torch)()
    draw = bug.inputs if bug is not None and bug.inputs else case.inputs
    x, y = draw(rng)
    if case.prepare is not None and to == "keras":
        case.prepare(torch_model, rng, draw(rng)[0])
    # Keras's global seed generator survives set_random_seed on the JAX and torch
    # backends: without a clear session a second build draws other weights.
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    keras_model = (bug.keras if bug is not None else case.keras)()
    if case.prepare_keras is not None and to == "torch":
        case.prepare_keras(keras_model)
    if to == "keras":
        return torch_model, keras_model, x, y
    return keras_model, torch_model, x, y


def _suffix(to: str) -> str:
    return ".weights.h5" if to == "keras" else ".pt"


def main(args) -> int:
    from compare.pair import frameworks

    if not args.save and not args.load:
        raise UserError("--zoo ports every pair into a directory: give --save DIR (or --load DIR)")
    frameworks.prepare()
    import keras

    chosen = _chosen(args)
    if args.load:
        rows = [reload(case, args.to, args.load) for case in chosen.values()]
        print(json.dumps(rows) if args.json else _table(rows, keras.backend.backend()))
        return 0 if all(r["as_expected"] for r in rows) else 1
    out = args.save
    out.mkdir(parents=True, exist_ok=True)
    started, rows = time.time(), []
    for case in chosen.values():
        rows += port_case(case, args.to, out)
    saved_cases = [r["pair"] for r in rows if r["port"] == "correct" and r["saved"]]
    if saved_cases:
        for row in _reload_elsewhere(args, saved_cases, keras.backend.backend()):
            rows.append(row)
    files.write_json_atomic(
        out / RESULTS,
        {
            "schema": "keras-vs-pytorch/port-zoo/v1",
            "keras_backend": keras.backend.backend(),
            "to": args.to,
            "passed": all(r["as_expected"] for r in rows),
            "seconds": round(time.time() - started, 1),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "rows": rows,
        },
    )
    print(json.dumps(rows) if args.json else _table(rows, keras.backend.backend()))
    return 0 if all(r["as_expected"] for r in rows) else 1


def port_case(case, to: str, out) -> list[dict]:
    from compare.pair import repro as reproduction
    from compare.pair.saved import PortRefused

    rows = []
    for bug in (None, *case.wrong):
        started = time.perf_counter()
        source, target, x, y = build(case, bug, to)
        name = "correct" if bug is None else bug.name
        levels = (
            pair.LEVELS[:3]
            if bug is None
            else pair.LEVELS[: max(3, pair.LEVELS.index(bug.fails_at) + 1)]
        )
        training = len(levels) > 3
        directory = out / "repro" / f"{case.name}_{name}"
        ported = pair.port_weights(
            source,
            target,
            x,
            y=y if training else None,
            loss=case.loss if training else None,
            optimizers=case.optimizers() if training else None,
            levels=levels,
            name=f"{case.name}:{name}",
            repro=None if bug is None else directory,
            **case.options,
        )
        path = out / f"{case.name if bug is None else case.name + '_' + name}{_suffix(to)}"
        with contextlib.suppress(PortRefused):  # a wrong port's refusal is the point
            ported.save(path)
        row = {
            "pair": case.name,
            "port": name,
            "step": "port",
            "passed": ported.passed,
            "saved": path.exists(),
            "first_failure": ported.report.first_failure,
            "seconds": round(time.perf_counter() - started, 1),
        }
        if bug is None:
            row["as_expected"] = ported.passed and row["saved"]
        else:
            repro = ported.report.repro or {"written": False, "reason": "none asked"}
            problem = reproduction.rerun(directory) if repro.get("written") else None
            row["repro"] = (
                ("reproduced" if problem is None else f"does not reproduce: {problem}")
                if repro.get("written")
                else f"not written: {repro['reason']}"
            )
            # Refused and nothing written; a repro written must reproduce (one that
            # cannot be written says why, in the row).
            row["as_expected"] = not ported.passed and not row["saved"] and problem is None
        rows.append(row)
    return rows


def reload(case, to: str, directory) -> dict:
    """A saved correct port loaded into a newly built target, against its source."""
    from compare.pair import saved

    started = time.perf_counter()
    source, target, x, _ = build(case, None, to)
    row = {"pair": case.name, "port": "correct", "step": "reload", "saved": True}
    try:
        record = saved.load(target, directory / f"{case.name}{_suffix(to)}")
    except UserError as error:
        return row | {
            "passed": False,
            "as_expected": False,
            "first_failure": str(error),
            "seconds": 0.0,
        }
    torch_model, keras_model = (source, target) if to == "keras" else (target, source)
    report = pair.check_pair(
        torch_model,
        keras_model,
        x,
        weights="as_given",
        levels=pair.LEVELS[:3],
        name=f"{case.name}:reload",
        **case.options,
    )
    same_source = saved.weights_hash(source) == record["source"]["weights_sha256"]
    return row | {
        "passed": report.passed and same_source,
        "as_expected": report.passed and same_source,
        "first_failure": report.first_failure
        if same_source
        else "the source built again is not the one ported",
        "seconds": round(time.perf_counter() - started, 1),
    }


def _reload_elsewhere(args, names, backend) -> list[dict]:
    """`--load DIR` in a fresh process: the saved files, nothing of this process's state."""
    command = [
        sys.executable, "-m", "compare", "port", "--zoo", "--to", args.to, "--load",
        str(args.save), "--zoo-cases", ",".join(names), "--keras-backend", backend, "--json",
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "KERAS_BACKEND": backend}
    )
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        tail = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        return [{"pair": "*", "port": "correct", "step": "reload", "passed": False,
                 "as_expected": False, "first_failure": f"the reload crashed: {tail}",
                 "seconds": 0.0}]  # fmt: skip


def _table(rows, backend) -> str:
    lines = [
        f"{'backend':10s} {'pair':16s} {'port':26s} {'step':7s} {'verdict':12s} {'s':>6s}  detail"
    ]
    for row in rows:
        verdict = ("pass" if row["passed"] else "refused" if row["step"] == "port" else "FAIL") + (
            "" if row["as_expected"] else " (!)"
        )
        detail = row.get("repro") or (
            ("saved" if row.get("saved") else "not saved") if row["step"] == "port" else ""
        )
        if not row["as_expected"] and row.get("first_failure"):
            detail += f"; {row['first_failure']}"
        lines.append(
            f"{backend:10s} {row['pair']:16s} {row['port']:26s} {row['step']:7s} {verdict:12s} "
            f"{row['seconds']:6.1f}  {detail[:160]}"
        )
    good = all(r["as_expected"] for r in rows)
    lines.append(
        "port zoo: every correct port saved and reloaded, every wrong port refused"
        if good
        else "port zoo: FAILED (rows marked (!))"
    )
    return "\n".join(lines)


def summary_markdown(paths) -> str:
    """The port zoo's results (DIR/port-zoo.json files) as one Markdown table, each row
    naming its file: `python -c "from compare.parity.zoo import port;
    print(port.summary_markdown(sys.argv[1:]))" DIR/port-zoo.json ...`."""
    import pathlib

    lines = [
        "| Keras backend | to | correct ports saved and reloaded | wrong ports refused | "
        "reproductions that reproduce | not written | seconds | finished | file |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for path in paths:
        found = json.loads(pathlib.Path(path).read_text())
        rows = found["rows"]
        correct = [r for r in rows if r["port"] == "correct" and r["step"] == "port"]
        reloaded = [r for r in rows if r["step"] == "reload" and r["as_expected"]]
        wrong = [r for r in rows if r["port"] != "correct"]
        refused = [r for r in wrong if not r["passed"] and not r["saved"]]
        reproduced = [r for r in wrong if r.get("repro") == "reproduced"]
        missing = [r for r in wrong if str(r.get("repro", "")).startswith("not written")]
        lines.append(
            f"| {found['keras_backend']} | {found['to']} | "
            f"{sum(r['saved'] for r in correct)} and {len(reloaded)} of {len(correct)} | "
            f"{len(refused)} of {len(wrong)} | {len(reproduced)} of {len(wrong) - len(missing)} | "
            f"{len(missing)}: {', '.join(r['pair'] + ':' + r['port'] for r in missing) or '-'} | "
            f"{found['seconds']:.0f} | {found['finished_at']} | `{path}` |"
        )
    return "\n".join(lines)
