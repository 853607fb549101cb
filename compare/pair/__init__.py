"""The pair engine: is this torch module the same model as this Keras model? It stands
alone (nothing of the study is imported) and loads no framework until a check runs.

    from compare import pair

    report = pair.check_pair(torch_model, keras_model, x, y=y, loss="cross_entropy",
                             optimizers=pair.Optimizers(...))
    pair.assert_same_model(...)          # AssertionError naming the level and the layer
    ported = pair.port_weights(torch_model, keras_model, x)   # or Keras -> torch
    ported.save("model.weights.h5")      # only when the proof passed

    @pair.converter(MyTorchLayer, MyKerasLayer)   # a layer pair the engine does not know
    class MyConverter(pair.Converter): ...

Modules: `api` (entry points), `io` (inputs and outputs), `units` and `trace` (each
side's layers and a recorded forward pass), `matching` (which layer is which),
`registry` and `layers` (converters), `levels` (the checks), `spec` (tolerances),
`report` (the verdict), `command` (the CLI), `pytest_plugin`.

Stage: pair.
"""

from __future__ import annotations

_LAZY = {
    "check_pair": "compare.pair.api",
    "assert_same_model": "compare.pair.api",
    "ParityReport": "compare.pair.report",
    "Loss": "compare.pair.recipe",
    "Optimizers": "compare.pair.recipe",
    "loss_named": "compare.pair.recipe",
    "PairSpec": "compare.pair.spec",
    "Converter": "compare.pair.registry",
    "Setting": "compare.pair.registry",
    "converter": "compare.pair.registry",
    "register": "compare.pair.registry",
    "unregister": "compare.pair.registry",
    "LEVELS": "compare.pair.levels",
    "port_weights": "compare.pair.port",
    "load_ported": "compare.pair.port",
    "Ported": "compare.pair.port",
    "PortFileError": "compare.pair.saved",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'compare.pair' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = sorted(_LAZY)
