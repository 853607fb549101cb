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
