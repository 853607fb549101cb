"""The report's "Pairs" section: `python -m compare parity --zoo` (or `--pair`) results
from OUT/pairs.json, a row per pair, port and Keras backend, and the DenseNet-121
epsilon finding in a sentence.

Stage: report.
"""

from __future__ import annotations


def section(pairs: dict | None) -> dict | None:
    """Rows and findings for the template; None without pairs.json."""
    if not pairs:
        return None
    rows = [
        {**row, "backend": backend}
        for backend, backend_rows in (pairs.get("zoo") or {}).items()
        for row in backend_rows
    ]
    if not rows:  # a user's --pair: one row per entry
        rows = [
            {
                "backend": entry["keras_backend"],
                "pair": name.rpartition("/")[0],
                "port": "yours",
                "passed": entry["passed"],
                "failed_at": next((c["name"] for c in entry["checks"] if not c["passed"]), None),
                "as_expected": entry["passed"],
                "first_failure": next(
                    (
                        entry["details"][c["name"]].get("first_failure")
                        for c in entry["checks"]
                        if not c["passed"]
                    ),
                    None,
                ),
                "seconds": None,
            }
            for name, entry in pairs.get("models", {}).items()
        ]
    # Every entry lists its levels in the order they ran: keep that order.
    levels = list(
        dict.fromkeys(
            c["name"] for entry in pairs.get("models", {}).values() for c in entry["checks"]
        )
    )
    return {
        "rows": rows,
        "passed": pairs.get("passed"),
        "levels": levels,
        "densenet": _densenet(rows),
    }


def _densenet(rows: list[dict]) -> dict | None:
    """The stock keras.applications DenseNet121 against torchvision's, and aligned."""
    stock = [r for r in rows if r["pair"] == "densenet121" and r["port"] != "correct"]
    aligned = [r for r in rows if r["pair"] == "densenet121" and r["port"] == "correct"]
    if not stock or not aligned:
        return None
    return {
        "stock": stock,
        "aligned_passes_on": [r["backend"] for r in aligned if r["passed"]],
        "aligned_fails_on": [r["backend"] for r in aligned if not r["passed"]],
    }
