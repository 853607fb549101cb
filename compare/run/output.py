"""The study's output directory: writable, locked while a study writes there, and free
of what a killed writer left behind.

Stage: run.
"""

from __future__ import annotations

import contextlib
import fcntl
import pathlib
import tempfile

from compare import files
from compare.errors import UserError

# The atomic writes a killed study can leave half-done (their temporaries are removed).
WRITTEN = ("runs/*/*.json", "study.json", "published.json")


def prepare_output(out: pathlib.Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        raise UserError(
            f"output directory {out} cannot be written ({error.strerror}): choose another --out"
        ) from None


@contextlib.contextmanager
def study_lock(out: pathlib.Path):
    """Hold an exclusive lock on OUT while a study writes there.

    The kernel drops the lock when the holder dies, even by SIGKILL, so a killed study
    never blocks the next one. Workers do not inherit it (Popen closes other fds).
    """
    handle = open(out / ".lock", "w")  # noqa: SIM115 - held for the whole block
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"another study is writing to {out}: wait for it or choose another --out"
            ) from None
        yield
    finally:
        handle.close()


def remove_stale_temporaries(out: pathlib.Path) -> list[pathlib.Path]:
    """Delete the temporary files of atomic writes that a killed process left behind.

    Only call this holding the study lock: then no writer of these files is alive.
    """
    return files.remove_stale_temporaries(out, WRITTEN)
