"""TensorFlow's start-up lines kept off the console of `python -m compare`.

Stage: the entry point. TensorFlow 2.21 writes its start-up lines (the absl
pre-initialisation warning, "oneDNN custom operations are on", the CPU feature guard)
from C++ to standard error at import, whatever TF_CPP_MIN_LOG_LEVEL says, on CPUs
where oneDNN's custom operations apply. Whoever imports it first (the package, or a
user's pair module) would put them around a one-line error. `install` makes that first
import run with file descriptor 2 pointed at /dev/null; an import error still raises.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import sys


@contextlib.contextmanager
def _stderr_silenced():
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _QuietFirstImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` once, and runs its module body with standard error silenced."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        real = spec.loader

        class Loader(importlib.abc.Loader):
            def create_module(self, spec):
                return real.create_module(spec)

            def exec_module(self, module):
                with _stderr_silenced():
                    real.exec_module(module)

        spec.loader = Loader()
        return spec


def install() -> None:
    """Quiet TensorFlow's first import in this process (unless `--debug` is asked for)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "--debug" not in sys.argv and "tensorflow" not in sys.modules:
        sys.meta_path.insert(0, _QuietFirstImport())
