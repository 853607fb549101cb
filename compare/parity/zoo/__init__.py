"""The parity zoo: user-style pairs (pytorch_impl.pairs, keras_impl.pairs) with their
inputs, recipe and deliberately wrong ports, checked by `python -m compare parity --zoo`
and the tests through the pair engine's public API (`compare.pair`), as a user's own
pairs are: the engine's first client.

`cases` has the cases, `check` runs them, `converters` the layer converter a user would
register for a layer of their own (the extension point, used by the `scaled_mlp` case).

Stage: parity.
"""

from __future__ import annotations

from compare.parity.zoo.cases import Case, WrongPort
from compare.parity.zoo.catalog import cases
from compare.parity.zoo.check import check_case

__all__ = ["Case", "WrongPort", "cases", "check_case"]
