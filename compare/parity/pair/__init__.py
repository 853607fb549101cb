"""The parity proof as a library: is this torch module the same model as this Keras model?

    from compare.parity.pair import assert_same_model, check_pair, Optimizers

`api` has the entry points, `mapping` the layer matching and weight conversion,
`layer_defaults` the defaults detector, `levels` and `lockstep` the checks, `result` the
verdict type the study's own parity levels share. Names load on first use, so importing
`compare.parity.pair.result` does not import torch or Keras.

Stage: parity.
"""

from __future__ import annotations

_API = ("check_pair", "assert_same_model", "Optimizers", "Loss", "ParityReport", "PAIR_LEVELS")


def __getattr__(name: str):
    if name in _API:
        from compare.parity.pair import api

        return getattr(api, name)
    raise AttributeError(name)


__all__ = list(_API)
