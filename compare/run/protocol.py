"""What the runner asks of a worker and what every result file holds: declared once.

Stage: run. A worker is long-lived: the runner writes one `RunRequest` per line, as
JSON, to the worker's stdin, and the worker runs them in order. For each it answers on
stdout with `PROGRESS {epoch record}` after each epoch (after the clock is read) and
`NOTICE text` for what the user should see, writes the result file, then `DONE
{"result_path": ...}`. It exits when its stdin closes. Every request a worker receives
has the same `worker_key` (framework, Keras backend, threads, device, determinism):
those are fixed once a framework's runtime has started.
Both the worker's result and the one the runner writes for a worker that died start
from `result_header`, so a result's identity fields are spelled in one place.

Worker exit codes: 0 a result was written (ok, failed or diverged); 2 a user error
(one line on stderr, no result written); 130 interrupted (no result written).
"""

from __future__ import annotations

import dataclasses
import json

from compare.spec.identity import Implementation

SCHEMA_VERSION = 1
PROGRESS, NOTICE, DONE = "PROGRESS", "NOTICE", "DONE"
EXIT_USER_ERROR, EXIT_INTERRUPTED = 2, 130


@dataclasses.dataclass(frozen=True)
class RunRequest:
    """One run: (experiment as this side runs it, implementation, seed) and how."""

    experiment: dict  # the ExperimentSpec as a dict (`dataclasses.asdict`)
    spec_hash: str
    framework: str
    seed: int
    mode: str
    keras_backend: str | None
    threads: int
    device: str
    deterministic: bool
    profile: str
    data_dir: str | None
    result_path: str
    # The experiment's deliberate per-framework differences (empty: the same model).
    framework_overrides: dict = dataclasses.field(default_factory=dict)
    # Set by the runner: the worker dies with it, and measures its own startup (from
    # the moment the runner sent the request: interpreter start included for a new
    # worker, next to nothing for one that already ran a run).
    runner_pid: int | None = None
    spawn_time: float | None = None
    # Where the worker sends its stderr while it runs this request (None: unchanged).
    log_path: str | None = None
    # True when the runner guaranteed that no other run of the study ran meanwhile:
    # the report takes timing only from such runs (`compare.run.executor`).
    exclusive: bool = True
    jobs: int = 1

    @property
    def worker_key(self) -> tuple:
        return worker_key(
            self.framework, self.keras_backend, self.threads, self.device, self.deterministic
        )

    @property
    def implementation(self) -> Implementation:
        return Implementation(self.framework, self.keras_backend, self.mode)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RunRequest:
        return cls(**json.loads(text))


def worker_key(framework, keras_backend, threads, device, deterministic) -> tuple:
    """What a worker process is fixed to once its framework has started."""
    return (framework, keras_backend, threads, device, deterministic)


def result_header(request: RunRequest) -> dict:
    """The fields every result file starts with, whoever writes it."""
    return {
        "schema_version": SCHEMA_VERSION,
        "experiment": request.experiment["name"],
        "framework": request.framework,
        "seed": request.seed,
        "mode": request.mode,
        "keras_backend": request.keras_backend,
        "spec": request.experiment,
        "spec_hash": request.spec_hash,
        "framework_overrides": request.framework_overrides,
        "deterministic": request.deterministic,
        "profile": request.profile,
        "requested_device": request.device,
        "threads": request.threads,
        # Concurrency: how many runs the study ran at once, and whether this one had
        # the machine to itself (only such runs' timing is reported).
        "jobs": request.jobs,
        "exclusive": request.exclusive,
    }


def failed_result(
    request: RunRequest, reason: str, epochs: list | None = None, failed_epoch: int | None = None
) -> dict:
    """The result of a run whose worker wrote none (it died, or its node could not run it
    or was lost): its header, `failed`, why, and the epochs reported before."""
    return {
        **result_header(request),
        "status": "failed",
        "reason": reason,
        "failed_epoch": failed_epoch,
        "epochs": epochs or [],
    }


def event_line(kind: str, payload) -> str:
    """One stdout line of the worker: `KIND payload` (payload JSON unless a string)."""
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return f"{kind} {text}"


def parse_event(line: str) -> tuple[str, object] | None:
    """(kind, payload) of a whole worker line; None for anything else."""
    if not line.endswith("\n"):
        return None  # cut off by the worker's death: not a whole event
    kind, _, payload = line.rstrip("\n").partition(" ")
    if kind == PROGRESS:
        return kind, json.loads(payload)
    if kind == NOTICE:
        return kind, payload
    if kind == DONE:
        return kind, json.loads(payload)
    return None
