"""The report: OUT/index.html (self-contained), OUT/results.csv and OUT/results.json.

Everything shown is read from the run result files that the study wrote; nothing is
typed in. HTML comes from a jinja2 template with autoescaping on, so text from study
files and results is always shown as text.
"""

from __future__ import annotations

import base64
import pathlib

import jinja2

from compare import figures, results, tables

TEMPLATES = pathlib.Path(__file__).parent / "templates"
RESULTS_JSON_SCHEMA = "keras-vs-pytorch/results/v1"


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def build_context(out: pathlib.Path) -> dict:
    runs = results.load_runs(out)
    run_rows = tables.runs_frame(runs)
    epoch_rows = tables.epochs_frame(runs)
    summary = tables.summary_frame(run_rows)
    study = results.read_json(out / "study.json") if (out / "study.json").exists() else {}
    experiments = list(dict.fromkeys(run_rows["experiment"]))
    models = []
    for experiment in experiments:
        mine = epoch_rows[(epoch_rows["experiment"] == experiment) & (epoch_rows["status"] == "ok")]
        spec = next(r["spec"] for r in runs if r["experiment"] == experiment)
        models.append(
            {
                "name": experiment,
                "curves": _data_uri(figures.curves(mine, experiment)) if not mine.empty else None,
                "epoch_times": _data_uri(figures.epoch_times(mine, experiment))
                if not mine.empty
                else None,
                "spec": spec,
            }
        )
    failures = run_rows[run_rows["status"] != "ok"].to_dict("records")
    manifests = sorted({r.get("split_manifest_hash") for r in runs if r.get("split_manifest_hash")})
    environment = next((r["environment"] for r in runs if r.get("environment")), {})
    return {
        "study": study,
        "summary": summary.to_dict("records"),
        "models": models,
        "failures": failures,
        "manifests": manifests,
        "environment": environment,
        "runtimes": {r["framework"]: r.get("runtime", {}) for r in runs if r.get("runtime")},
        "run_count": len(runs),
    }


def write_report(out: pathlib.Path) -> pathlib.Path:
    """Write the three report files into OUT; return the HTML path."""
    runs = results.load_runs(out)
    if not runs:
        from compare.errors import UserError

        raise UserError(
            f"no run results under {out}/runs: run `python -m compare run --out {out}` first"
        )
    run_rows = tables.runs_frame(runs)
    epoch_rows = tables.epochs_frame(runs)
    csv_path = out / "results.csv"
    tmp = csv_path.with_suffix(".csv.tmp")
    epoch_rows.to_csv(tmp, index=False)
    tmp.replace(csv_path)
    results.write_json_atomic(
        out / "results.json",
        {
            "schema": RESULTS_JSON_SCHEMA,
            "runs": run_rows.astype(object).where(run_rows.notna(), None).to_dict("records"),
            "summary": tables.summary_frame(run_rows).to_dict("records"),
        },
    )
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )
    html = environment.get_template("report.html.j2").render(**build_context(out))
    html_path = out / "index.html"
    tmp = html_path.with_suffix(".html.tmp")
    tmp.write_text(html)
    tmp.replace(html_path)
    return html_path
