"""The zoo's own layer pair, registered as a user registers theirs: the extension point.

    from compare import pair

    @pair.converter("mymodels.Scale", "mykeras.Scale")
    class ScaleConverter(pair.Converter):
        ...

Stage: parity.
"""

from __future__ import annotations

from compare import pair


class ScaleConverter(pair.Converter):
    """torch's `Scale` (a `gain` vector) and Keras's `Scale` (its `gain` weight)."""

    kind = "scale"
    torch_layout = "last"

    def to_keras(self, layer_pair, arrays):
        return [arrays["gain"]]

    def to_torch(self, layer_pair, weights):
        return {"gain": weights[0]}


def register() -> pair.Converter:
    """Register the converter (once); returns it (`pair.unregister` takes it back)."""
    global _registered
    if _registered is None:
        _registered = pair.register(
            ScaleConverter,
            "pytorch_impl.pairs.convolution.Scale",
            "keras_impl.pairs.convolution.Scale",
        )
    return _registered


_registered = None
