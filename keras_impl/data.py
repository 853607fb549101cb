"""Fashion-MNIST as keras.datasets' own loader reads it (mirrors pytorch_impl.data).

The study never trains on this: `compare.data.split` makes the shared arrays. The parity
suite uses it to show that Keras, given the same files, reads the same pixels.
"""

from __future__ import annotations

import pathlib
import shutil

import keras
from keras.src.backend import config


def load_fashion_mnist(source: pathlib.Path, scratch: pathlib.Path, names):
    """((x_train, y_train), (x_test, y_test)) as uint8 arrays, from the .gz files `names`
    (the four IDX files, without .gz) in `source`.

    keras.datasets caches the .gz files under KERAS_HOME/datasets/fashion-mnist and,
    with no checksum to verify, uses any file found there instead of downloading.
    `scratch` becomes KERAS_HOME for the call.
    """
    cache = scratch / "datasets" / "fashion-mnist"
    cache.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(source / f"{name}.gz", cache / f"{name}.gz")
    # KERAS_HOME is read once, at import; the loader takes no path, so point the
    # module-level value (private) at scratch for this one call.
    previous = config._KERAS_DIR
    config._KERAS_DIR = str(scratch)
    try:
        return keras.datasets.fashion_mnist.load_data()
    finally:
        config._KERAS_DIR = previous
