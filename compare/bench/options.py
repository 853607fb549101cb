"""What `make bench` measures, with its defaults (the CLI reads them from here).

Stage: bench. Kept apart from `bench` so that `python -m compare --help` imports no
pandas.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

from compare.spec import identity


@dataclasses.dataclass(frozen=True)
class BenchOptions:
    out: pathlib.Path = pathlib.Path("reports")
    repeats: int = 3
    epochs: int = 5
    threads: int = os.cpu_count() or 1
    thread_sweep: bool = True
    frameworks: tuple[str, ...] = identity.FRAMEWORKS
    modes: tuple[str, ...] = identity.MODES
    progress: bool = True
