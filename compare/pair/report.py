"""`check_pair`'s answer: the levels' verdicts in `parity.json`'s shape, and the message
`assert_same_model` raises: the first failure in full, then one line per level with its
status, then at most `message_settings` differing settings ("and N more"; the report
holds them all).

Stage: pair.
"""

from __future__ import annotations

import dataclasses
import json

SCHEMA = "keras-vs-pytorch/parity/v1"


@dataclasses.dataclass
class ParityReport:
    """The verdict of one pair on one Keras backend (`as_dict()`: parity.json's shape)."""

    name: str
    entry: dict
    report: dict
    message_settings: int = 10
    # Where a failing check wrote its reproduction (`check_pair(..., repro=DIR)`), and of
    # what; or why none could be written.
    repro: dict | None = None

    @property
    def passed(self) -> bool:
        return self.entry["passed"]

    @property
    def first_failure(self) -> str | None:
        """'level: where the two part', the first failing level's; None when all pass."""
        for check in self.entry["checks"]:
            if not check["passed"]:
                detail = self.entry["details"][check["name"]]
                return f"{check['name']}: {detail.get('first_failure') or 'failed'}"
        return None

    def level_lines(self) -> list[str]:
        lines = []
        for check in self.entry["checks"]:
            detail = self.entry["details"][check["name"]]
            status = "pass" if check["passed"] else "FAIL"
            text = f"  {check['name']:10s} {status}"
            if not check["passed"] and detail.get("first_failure"):
                text += f": {_clip(detail['first_failure'], 160)}"
            lines.append(text)
        for note in self.entry["notes"]:
            lines.append(f"  note: {note}")
        return lines

    def message(self) -> str:
        rows = [r for r in self.entry["layer_defaults"] if not r["intrinsic"]]
        text = f"{self.name} is not the same model: {self.first_failure}\nlevels:\n"
        text += "\n".join(self.level_lines())
        if rows:
            shown = rows[: self.message_settings]
            text += "\nlayer settings that differ: " + "; ".join(
                f"{r['torch_layer']}/{r['keras_layer']} {r['setting']}: torch {r['torch']}, "
                f"keras {r['keras']}"
                for r in shown
            )
            if len(rows) > len(shown):
                text += f"; and {len(rows) - len(shown)} more (the report lists them all)"
        if self.repro:
            text += "\n" + (
                f"a reproduction of {self.repro['layer']}: python {self.repro['script']}"
                if self.repro.get("written")
                else f"no reproduction written: {self.repro['reason']}"
            )
        return text

    def as_dict(self) -> dict:
        return self.report

    def to_json(self) -> str:
        from compare import files

        return json.dumps(files.finite_or_none(self.report), indent=2, default=str)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def build(name, backend, checks, notes, rows, spec) -> ParityReport:
    entry_name = f"{name}/{'keras' if backend == 'tensorflow' else 'keras_' + backend}"
    entry = {
        "experiment": entry_name,
        "keras_backend": backend,
        "passed": bool(checks) and all(c.passed for c in checks),
        "notes": notes,
        "checks": [c.summary() for c in checks],
        "details": {c.name: c.detail for c in checks},
        "layer_defaults": rows,
    }
    report = {
        "schema": SCHEMA,
        "passed": entry["passed"],
        "levels": [c.name for c in checks],
        "models": {entry_name: entry},
        "defaults": rows,
        "pair_spec": dataclasses.asdict(spec),
    }
    return ParityReport(entry_name, entry, report, spec.message_settings)
