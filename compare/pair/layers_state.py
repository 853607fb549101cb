"""Levels leave the models as they found them: every torch tensor and every Keras
variable saved before a level steps or trains them, and put back after.

Stage: pair.
"""

from __future__ import annotations

import contextlib

import numpy as np


@contextlib.contextmanager
def kept_torch(model):
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    mode = model.training
    try:
        yield
    finally:
        model.load_state_dict(saved)
        model.train(mode)


@contextlib.contextmanager
def kept_keras(model):
    from compare.pair import trace

    saved = [(v, np.array(trace.to_numpy(v), copy=True)) for v in model.variables]
    try:
        yield
    finally:
        for variable, value in saved:
            variable.assign(value)
