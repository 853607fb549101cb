"""Helpers of the weightless converters (activations, pooling, resampling, dropout):
reading a functional call's arguments, and the layout a weightless layer inherits from
the pair before it.

Stage: pair.
"""

from __future__ import annotations

import numpy as np


def _bind(args, kwargs, names, defaults):
    """Positional and keyword arguments of a functional call, by name (input excluded)."""
    values = dict(defaults)
    for name, value in zip(names, args[1:], strict=False):
        values[name] = value
    values.update({k: v for k, v in kwargs.items() if k in names})
    return values


def _rank(args) -> int:
    return max(int(np.ndim(args[0]) if not hasattr(args[0], "dim") else args[0].dim()) - 2, 0)


def _tuple(value, rank):
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        return tuple(int(v) for v in value)
    return (int(value),) * rank


class _Inherit:
    """Weightless layers keep the layout of what feeds them: the pair before them."""

    @staticmethod
    def torch_layout(pair):
        return pair.context.get("torch_layout", "last")

    def align(self, pair, torch_output, keras_shape):
        from compare.pair import layout

        return layout.align(
            torch_output,
            keras_shape,
            self.torch_layout(pair),
            pair.context.get("keras_layout", "last"),
        )
