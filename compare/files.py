"""Writing and reading the package's files: atomically, as strict JSON.

Below every stage (like `compare.errors`). A file is written to a temporary name in the
same directory, flushed, fsynced and renamed, so a crash at any moment leaves either
the old complete file or the new complete file; `remove_stale_temporaries` removes
what a killed writer left behind.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pathlib
import tempfile
from collections.abc import Callable

TEMPORARY_SUFFIX = ".tmp"


def finite_or_none(value):
    """`value` with every NaN/inf float replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite_or_none(item) for item in value]
    return value


def write_atomic(path: pathlib.Path, write: Callable, mode: str = "w") -> None:
    """Create `path` through `write(handle)` so that readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: pathlib.Path, payload) -> None:
    """Write JSON atomically. Strict JSON: NaN/inf are not JSON; writers turn them into
    null first (`finite_or_none`)."""
    write_atomic(
        path, lambda handle: json.dump(payload, handle, indent=1, sort_keys=True, allow_nan=False)
    )


def read_json(path: pathlib.Path):
    with open(path) as handle:
        return json.load(handle)


def remove_stale_temporaries(directory: pathlib.Path, patterns: tuple[str, ...]) -> list:
    """Delete the temporary files of atomic writes matching `patterns` (globs of the
    final names, e.g. "runs/*/*.json") that a killed writer left behind. Only call this
    holding the directory's lock: then no writer of these files is alive."""
    stale = []
    for pattern in patterns:
        folder, _, name = pattern.rpartition("/")
        stale += directory.glob(f"{folder + '/' if folder else ''}.{name}.*{TEMPORARY_SUFFIX}")
    for path in stale:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return stale
