"""A level's verdict and the comparisons every level makes, for a user's pair and the
study's own parity levels alike (`compare.parity` imports them from here).

Stage: pair.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np


@dataclasses.dataclass
class Check:
    """One level's verdict: max differences are max|torch - keras| and that over max|torch|."""

    name: str
    passed: bool
    max_abs_diff: float
    max_rel_diff: float
    tolerance: dict
    detail: dict = dataclasses.field(default_factory=dict)

    def summary(self) -> dict:
        """The verdict without the detail: what a report table shows."""
        return {key: value for key, value in dataclasses.asdict(self).items() if key != "detail"}


def gap(reference, other) -> float:
    """max |reference - other| in float64; infinite when the shapes differ."""
    reference, other = np.asarray(reference, np.float64), np.asarray(other, np.float64)
    if reference.shape != other.shape:
        return float("inf")
    if not reference.size:
        return 0.0
    with np.errstate(invalid="ignore"):
        delta = np.abs(reference - other)
    # inf - inf is NaN: a non-finite output is a difference, never a pass.
    return float(np.max(np.where(np.isnan(delta), np.inf, delta)))


def bound_of(reference, rtol: float, atol: float) -> float:
    """rtol * max|reference| + atol: the bound of one tensor's gap."""
    reference = np.asarray(reference, np.float64)
    return rtol * (float(np.max(np.abs(reference))) if reference.size else 0.0) + atol


def differences(reference: list[np.ndarray], other: list[np.ndarray]) -> tuple[float, float]:
    """(max abs difference, max abs difference / max |reference|) over lists of arrays."""
    abs_diff, rel_diff = 0.0, 0.0
    for a, b in zip(reference, other, strict=True):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if a.size == 0:
            continue
        delta = float(np.max(np.abs(a - b)))
        scale = float(np.max(np.abs(a)))
        abs_diff = max(abs_diff, delta)
        rel_diff = max(rel_diff, delta / scale if scale > 0 else (0.0 if delta == 0 else np.inf))
    return abs_diff, rel_diff


def tensor_gaps(reference: list[np.ndarray], other: list[np.ndarray]) -> list[float]:
    """max |reference - other| per tensor."""
    return [gap(a, b) for a, b in zip(reference, other, strict=True)]


def first_past(gaps: list[float], bounds: list[float], names: list[str]) -> str | None:
    """The first tensor whose gap passes its bound, with both; None when none does."""
    for value, bound, name in zip(gaps, bounds, names, strict=True):
        if not value <= bound:
            return f"{name} differs by {value:.2e} (bound {bound:.2e})"
    return None


def where(ours: np.ndarray, theirs: np.ndarray, bound: float) -> str:
    """Where two arrays part most: the index, both values, how many elements are off."""
    ours64, theirs64 = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    with np.errstate(invalid="ignore"):
        delta = np.abs(ours64 - theirs64)
    delta = np.where(np.isnan(delta), np.inf, delta)
    index = np.unravel_index(int(np.argmax(delta)), delta.shape) if delta.size else ()
    return (
        f"at index {tuple(int(i) for i in index)}: torch {float(ours64[index]):.6g}, keras "
        f"{float(theirs64[index]):.6g}; {int(np.count_nonzero(delta > bound))} of "
        f"{delta.size} elements off"
    )


def say(error: BaseException) -> str:
    """An exception as one line of a reason: its type and its text, without the terminal
    colour codes Keras decorates its texts with."""
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(error)).split())
    return f"{type(error).__name__}: {text[:300]}"


def could_not_run(level: str, error: BaseException) -> Check:
    """A level that raised: a failed check whose reason is the exception, in one line
    (a port that breaks a level is a finding, never a traceback)."""
    reason = f"the level could not run: {say(error)}"
    return Check(level, False, float("inf"), float("inf"), {}, {"first_failure": reason})


def guarded(level: str, run_level) -> list[Check]:
    """`run_level()` (its checks), or, where it raises, the level failed with the
    exception as its one-line reason: a port that breaks a level (shapes that do not fit,
    an op a backend refuses, a diverged net) is a finding, and the next levels still run."""
    try:
        return run_level()
    except Exception as error:  # noqa: BLE001 - the port's failure, not the checker's
        return [could_not_run(level, error)]
