"""How a run is timed: one definition, used for both frameworks.

Stage: run. Measurement is written once, here.

The clock is `time.perf_counter` (monotonic). Each phase is bracketed by the
implementation's `synchronize()` so queued device work is counted where it belongs.
The first epoch includes tracing/compilation and is reported apart; the steady-state
epoch time is the median of the remaining epochs. Nothing but the work being timed
runs inside a timed region: progress events are emitted after the clock is read.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable

clock = time.perf_counter


class PhaseTimer:
    """Accumulates wall seconds per named phase."""

    def __init__(self, synchronize: Callable[[], None] = lambda: None):
        self.synchronize = synchronize
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str):
        self.synchronize()
        start = clock()
        try:
            yield
        finally:
            self.synchronize()
            self.seconds[name] = self.seconds.get(name, 0.0) + clock() - start

    def time(self, fn: Callable, *args, **kwargs):
        """Run `fn` and return (result, seconds), synchronising before each clock read."""
        self.synchronize()
        start = clock()
        result = fn(*args, **kwargs)
        self.synchronize()
        return result, clock() - start


def summarize_epochs(epoch_seconds: list[float], train_examples: int) -> dict:
    """First epoch apart; steady state = median of the rest, with its spread."""
    summary = {
        "first_epoch_seconds": epoch_seconds[0] if epoch_seconds else None,
        "steady_epoch_seconds": None,
        "steady_epoch_min_seconds": None,
        "steady_epoch_max_seconds": None,
        "steady_epoch_spread": None,
        "samples_per_second": None,
    }
    steady = epoch_seconds[1:]
    if steady:
        median = statistics.median(steady)
        summary.update(
            steady_epoch_seconds=median,
            steady_epoch_min_seconds=min(steady),
            steady_epoch_max_seconds=max(steady),
            steady_epoch_spread=max(steady) / min(steady),
            samples_per_second=train_examples / median,
        )
    return summary


def time_to_target(epoch_seconds: list[float], val_accuracy: list[float], target: float):
    """Training seconds (first epoch included) until validation accuracy >= target
    (None when it never does, or when there is no validation set)."""
    elapsed = 0.0
    for seconds, accuracy in zip(epoch_seconds, val_accuracy, strict=True):
        elapsed += seconds
        if accuracy is not None and accuracy >= target:
            return elapsed
    return None


def training_seconds(epoch_seconds: list[float]) -> float:
    """The seconds a run spent training: every epoch, the first one counted at the
    steady median (its excess over that is tracing/compilation, not training)."""
    if not epoch_seconds:
        return 0.0
    steady = epoch_seconds[1:]
    first = min(epoch_seconds[0], statistics.median(steady)) if steady else epoch_seconds[0]
    return first + sum(steady)


def epoch_seconds(result: dict) -> list[float]:
    return [e["epoch_seconds"] for e in result.get("epochs", []) if e.get("epoch_seconds")]


def study_overhead(results: list[dict], wall_seconds: float, jobs: int) -> dict:
    """How much of a study's capacity (wall seconds x jobs) went to training epochs,
    and how much to everything else: process start, imports, data, compilation,
    evaluation, writing results, and slots left idle (while a timing run ran alone)."""
    capacity = wall_seconds * jobs
    training = sum(training_seconds(epoch_seconds(r)) for r in results)
    phases: dict[str, float] = {}
    for result in results:
        for name, seconds in (result.get("phase_seconds") or {}).items():
            phases[name] = phases.get(name, 0.0) + seconds
    return {
        "capacity_seconds": capacity,
        "training_seconds": training,
        "outside_training_seconds": max(capacity - training, 0.0),
        "outside_training_share": max(capacity - training, 0.0) / capacity if capacity else None,
        "phase_seconds": phases,
        "startup_seconds": sum(r.get("startup_seconds") or 0.0 for r in results),
    }
