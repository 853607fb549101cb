"""The report: OUT/index.html (self-contained), OUT/results.csv and OUT/results.json.

Stage: report. Everything shown is read from files the study wrote (run results,
`study.json`, and, when present, `parity.json` and the bench's `bench.json`); nothing is
typed in. The equivalence analysis is computed here, from the result files, and also
written to OUT/equivalence.json. Sections
whose inputs are absent are left out. HTML comes from a jinja2 template with
autoescaping on, so text from study files and results is always shown as text.
"""

from __future__ import annotations

import base64
import math
import pathlib

import jinja2
import numpy as np
import pandas as pd

from compare import files
from compare.errors import UserError
from compare.report import ablation, figures, tables
from compare.report import equivalence as _equivalence
from compare.report import pairs as pairs_report
from compare.run import regression as run_regression
from compare.run import results
from compare.spec import catalog, studies
from compare.spec.identity import (
    DEFAULT_KERAS_BACKEND,
    DEFAULT_MODE,
    KERAS_BACKENDS,
    Implementation,
    implementation_name,
)
from compare.spec.schema import ParitySpec, StudySpec

TEMPLATES = pathlib.Path(__file__).parent / "templates"
RESULTS_JSON_SCHEMA = "keras-vs-pytorch/results/v1"


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _optional_json(path: pathlib.Path):
    return files.read_json(path) if path.exists() else None


def _records(frame: pd.DataFrame) -> list[dict]:
    """DataFrame rows with NaN turned into None (so templates and JSON can test it)."""
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


def model_section(
    name: str, runs: list[dict], epochs: pd.DataFrame, parity, node: str | None = None
) -> dict:
    ok = [r for r in runs if r.get("status") == "ok"]
    by_impl: dict[str, list[dict]] = {}
    for run in ok:
        by_impl.setdefault(tables.implementation(run), []).append(run)
    mine = epochs[(epochs["experiment"] == name) & (epochs["status"] == "ok")]
    section = {
        "name": name,
        "spec": runs[0]["spec"],
        "curves": None,
        "epoch_times": None,
        "confusion": None,
        "per_class": None,
        "parity": (parity or {}).get("models", {}).get(_parity_entry(name)),
    }
    if section["parity"] and section["parity"].get("parity_identity") != (
        studies.parity_identity(runs[0]["spec"])
    ):
        section["parity"] = None  # checked another spec: its details do not describe these runs
    # Epoch times only from runs that had the machine to themselves (tables.TIMING_RULE).
    mine_timed = tables.timed(mine, node)
    if not mine.empty and any("regression" in r for r in ok):
        section["curves"] = _data_uri(figures.loss_per_step(mine))
    elif not mine.empty:
        section["curves"] = _data_uri(figures.curves(mine))
    if not mine_timed.empty:
        section["epoch_times"] = _data_uri(figures.epoch_times(mine_timed))
    with_predictions = {k: v for k, v in by_impl.items() if all("test_predictions" in r for r in v)}
    if with_predictions:
        matrices = {impl: tables.confusion(rs) for impl, rs in sorted(with_predictions.items())}
        section["confusion"] = _data_uri(figures.confusion_matrices(matrices))
        per_class = tables.per_class_accuracy(dict(sorted(with_predictions.items())))
        section["per_class"] = {
            "columns": list(per_class.columns),
            "rows": [(label, list(values)) for label, values in per_class.iterrows()],
        }
    return section


def _parity_entry(experiment: str) -> str:
    """The parity entry a model's rows show: native PyTorch against Keras on TensorFlow."""
    return f"{experiment}/{implementation_name('keras')}"


# What `parity` says of an implementation's runs, worst first.
PARITY_STATUSES = ("FAIL", "stale", "not checked", "pass")


def parity_status(parity: dict | None, run: dict) -> str:
    """`pass` or `FAIL` when a parity entry covers what `run` ran (its Keras backend, the
    default mode, the same spec identity: `studies.parity_identity`); `stale` when the
    entry is for another spec or predates identities; `not checked` otherwise. PyTorch's
    runs are the reference every Keras entry is checked against: their status is the
    worst of their model's Keras rows (`worst`)."""
    if run.get("framework") != "keras" or (run.get("mode") or DEFAULT_MODE) != DEFAULT_MODE:
        return "not checked"
    backend = run.get("keras_backend") or DEFAULT_KERAS_BACKEND
    name = f"{run['experiment']}/{implementation_name('keras', backend)}"
    entry = (parity or {}).get("models", {}).get(name)
    if entry is None:
        return "not checked"
    if entry.get("parity_identity") != studies.parity_identity(run["spec"]):
        return "stale"
    return "pass" if entry.get("passed") else "FAIL"


def worst(statuses) -> str:
    statuses = list(statuses)
    return min(statuses, key=PARITY_STATUSES.index) if statuses else "not checked"


def parity_statuses(parity: dict | None, runs: list[dict]) -> dict[tuple[str, str], str]:
    """(experiment, implementation) -> its parity status; the PyTorch row gets the worst
    of its model's Keras rows."""
    status = {}
    for run in runs:
        status[(run["experiment"], tables.implementation(run))] = parity_status(parity, run)
    for run in runs:
        if run.get("framework") == "torch":
            keras = [v for (e, i), v in status.items() if e == run["experiment"] and i != "torch"]
            status[(run["experiment"], tables.implementation(run))] = worst(
                [v for v in keras if v != "not checked"] or ["not checked"]
            )
    return status


def overview_rows(summary: pd.DataFrame, equivalence, statuses: dict) -> list[dict]:
    """Summary rows plus the difference to torch, the verdict and the parity status."""
    verdicts = {row["experiment"]: row for row in (equivalence or {}).get("verdicts", [])}
    rows = _records(summary)
    reference = {r["experiment"]: r for r in rows if r["implementation"] == "torch"}
    for row in rows:
        torch_row = reference.get(row["experiment"])
        comparable = (
            torch_row
            and row["implementation"] != "torch"
            and row["test_accuracy_mean"] is not None
            and torch_row["test_accuracy_mean"] is not None
        )
        row["difference"] = (
            row["test_accuracy_mean"] - torch_row["test_accuracy_mean"] if comparable else None
        )
        row["equivalence"] = verdicts.get(row["experiment"])
        row["parity"] = statuses.get((row["experiment"], row["implementation"]), "not checked")
    return rows


def _variant(entry: dict) -> str:
    return Implementation.of(entry).name


def current_runs(runs: list[dict], planned: list[dict]) -> tuple[list[dict], list[dict]]:
    """Split results into those of the last study's specs and stale ones (an older spec
    left in the same directory), so seeds of different specs are never averaged."""
    if not planned or not all("spec_hash" in p for p in planned):
        return runs, []
    wanted = {(p["experiment"], _variant(p), p["seed"], p["spec_hash"]) for p in planned}
    keep, stale = [], []
    for run in runs:
        key = (run["experiment"], _variant(run), run["seed"], run.get("spec_hash"))
        (keep if key in wanted else stale).append(run)
    return keep, stale


def bench_section(out: pathlib.Path) -> dict | None:
    """The benchmark's table and thread-scaling chart, when `make bench` has run."""
    bench = _optional_json(out / "bench" / "bench.json")
    if bench is None:
        return None
    sweep = pd.DataFrame(bench.get("thread_sweep", []))
    return {
        **bench,
        "scaling": _data_uri(figures.thread_scaling(sweep)) if not sweep.empty else None,
    }


def api_overhead(overview: list[dict]) -> list[dict]:
    """Keras on the PyTorch backend against native PyTorch, per model: the same torch
    kernels underneath, so the time ratio is what Keras's API layer costs."""
    rows = []
    by_key = {(r["experiment"], r["implementation"]): r for r in overview}
    for (experiment, impl), keras_row in by_key.items():
        native = by_key.get((experiment, "torch"))
        if impl != implementation_name("keras", "torch") or native is None:
            continue
        steady = keras_row["steady_epoch_seconds"], native["steady_epoch_seconds"]
        first = keras_row["first_epoch_seconds"], native["first_epoch_seconds"]
        rows.append(
            {
                "experiment": experiment,
                "keras_steady": steady[0],
                "torch_steady": steady[1],
                "steady_ratio": steady[0] / steady[1] if None not in steady else None,
                "first_ratio": first[0] / first[1] if None not in first else None,
            }
        )
    return rows


def gpu_rows(runs: list[dict]) -> dict[str, str]:
    """One line per implementation that ran on a GPU: which GPU, with what driver and CUDA."""
    rows = {}
    for run in runs:
        gpu = run.get("gpu")
        if not gpu:
            continue
        memory = gpu.get("memory_total_mb")
        parts = [
            gpu.get("name") or "unknown GPU",
            f"{memory:.0f} MiB" if memory is not None else "memory unknown",
            f"driver {gpu.get('driver_version') or 'unknown'}",
            f"CUDA {gpu.get('cuda_version') or 'unknown'}",
        ]
        shown = ("name", "memory_total_mb", "driver_version", "cuda_version")
        parts += [f"{key} {value}" for key, value in gpu.items() if key not in shown]
        rows[tables.implementation(run)] = "; ".join(parts)
    return rows


def defaults_table(rows: list[dict] | None) -> dict | None:
    """The defaults that differ: one row per default, one column per framework and Keras
    backend (in words), then what the study sets."""
    if not rows:
        return None
    backends = [b for b in KERAS_BACKENDS if b in rows[0].get("keras_by_backend", {})]
    columns = ["PyTorch", *(f"Keras on {b}" for b in backends)] if backends else None
    columns = columns or ["PyTorch", "Keras"]
    body = []
    for row in rows:
        by_backend = row.get("keras_by_backend") or {}
        keras = [by_backend[b] for b in backends] if backends else [row["keras"]]
        body.append({"what": row["what"], "values": [row["torch"], *keras], "study": row["study"]})
    return {"columns": columns, "rows": body}


def build_context(out: pathlib.Path, runs: list[dict]) -> dict:
    study = _optional_json(out / "study.json") or {}
    runs, stale = current_runs(runs, study.get("planned", []))
    run_rows = tables.runs_frame(runs)
    epoch_rows = tables.epochs_frame(runs)
    parity = _optional_json(out / "parity.json")
    margin = study.get("equivalence_margin", StudySpec.equivalence_margin)
    equivalence = _equivalence.analysis(runs, margin)
    planned = study.get("planned", [])
    order = tables.experiment_order(
        run_rows["experiment"].unique(), [p["experiment"] for p in planned]
    )
    # Timing comes from one kind of node only (tables.TIMING_RULE).
    node = tables.reference_node_type(run_rows)
    summary = tables.summary_frame(run_rows, order, node)
    statuses = parity_statuses(parity, runs)
    overview = overview_rows(summary, equivalence, statuses)
    agreement = run_regression.agreement(runs)

    def parity_of(experiment: str) -> str:
        """A model's status: the worst of its implementations' (the torch row's is)."""
        return worst([v for (e, _), v in statuses.items() if e == experiment])

    board = _equivalence.board(equivalence, agreement, parity_of)
    board.sort(key=lambda row: order.index(row["experiment"]) if row["experiment"] in order else 0)
    forest_rows = [row for row in board if row.get("difference") is not None]
    models = [
        model_section(name, [r for r in runs if r["experiment"] == name], epoch_rows, parity, node)
        for name in order
    ]
    published = (_optional_json(out / "published.json") or {}).get("experiments", {})
    rungs = [(rung.name, removed) for rung, removed in catalog.ABLATION_RUNGS]
    ladder = _records(ablation.ladder(rungs, runs))
    failures = _records(run_rows[run_rows["status"] != "ok"])
    environment = next((r["environment"] for r in runs if r.get("environment")), {})
    return {
        "study": study,
        "overview": overview,
        "api_overhead": api_overhead(overview),
        "models": models,
        "failures": failures,
        "missing": tables.missing_runs(planned, runs),
        "manifests": sorted(
            {r["split_manifest_hash"] for r in runs if r.get("split_manifest_hash")}
        ),
        "environment": environment,
        "runtimes": {tables.implementation(r): r["runtime"] for r in runs if r.get("runtime")},
        "gpus": gpu_rows(runs),
        "threads": sorted({r["threads"] for r in runs if r.get("threads")}),
        "devices": sorted({r["device"] for r in runs if r.get("device")}),
        "defaults": defaults_table((parity or {}).get("defaults")),
        "board": board,
        "forest": _data_uri(figures.forest(forest_rows, margin)) if forest_rows else None,
        "timing_rule": tables.TIMING_RULE,
        "timing_node": node,
        "timing_by_node": _records(tables.timing_by_node(run_rows)),
        "parity": parity,
        "equivalence": equivalence,
        "published": _records(ablation.published_vs_measured(published, runs)),
        # The ladder only means something with more than its last rung (plain mlp).
        "ladder": ladder if len(ladder) > 1 else [],
        "spread": _records(ablation.logit_relu_spread(runs)),
        "regression": agreement,
        "regression_rtol": ParitySpec().regression_loss_rtol,
        "run_count": len(runs),
        "bench": bench_section(out),
        "pairs": pairs_report.section(_optional_json(out / "pairs.json")),
        "stale": [f"{r['experiment']} / {r['framework']} / seed {r['seed']}" for r in stale],
    }


def write_tables(out: pathlib.Path, runs: list[dict]) -> None:
    """results.csv (one row per run and epoch) and results.json (versioned schema)."""
    epoch_rows = tables.epochs_frame(runs)
    files.write_atomic(out / "results.csv", lambda handle: epoch_rows.to_csv(handle, index=False))
    run_rows = tables.runs_frame(runs)
    files.write_json_atomic(
        out / "results.json",
        {
            "schema": RESULTS_JSON_SCHEMA,
            "runs": _records(run_rows.astype(object).where(run_rows.notna(), np.nan)),
            "summary": _records(tables.summary_frame(run_rows)),
        },
    )


def render(context: dict) -> str:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["pct"] = lambda v: "–" if v is None else f"{100 * v:.2f}"
    environment.filters["num"] = lambda v, fmt="%.3f": "–" if v is None else fmt % v
    return environment.get_template("report.html.j2").render(**context)


def write_report(out: pathlib.Path) -> pathlib.Path:
    """Write the three report files into OUT; return the HTML path."""
    runs = results.load_runs(out)
    if not runs:
        raise UserError(
            f"no run results under {out}/runs: run `python -m compare run --out {out}` first"
        )
    write_tables(out, runs)
    context = build_context(out, runs)
    files.write_json_atomic(out / "equivalence.json", context["equivalence"])
    html_path = out / "index.html"
    html = render(context)
    files.write_atomic(html_path, lambda handle: handle.write(html))
    return html_path
