"""Fashion-MNIST as torchvision's own loader reads it (mirrors keras_impl.data).

The study never trains on this: `compare.data.split` makes the shared arrays. The parity
suite uses it to show that torchvision, given the same files, reads the same pixels.
"""

from __future__ import annotations

import gzip
import pathlib
import shutil

import numpy as np


def load_fashion_mnist(source: pathlib.Path, scratch: pathlib.Path, names):
    """((x_train, y_train), (x_test, y_test)) as uint8 arrays, from the .gz files `names`
    (the four IDX files, without .gz) in `source`.

    torchvision reads decompressed files from ROOT/FashionMNIST/raw; `scratch` becomes
    ROOT. download=False: it reads what is there or raises, it never downloads.
    """
    # Imported here: training runs never need torchvision, and importing it at the
    # top would add to their measured import time.
    from torchvision import datasets

    raw = scratch / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in names:
        with gzip.open(source / f"{name}.gz", "rb") as packed, open(raw / name, "wb") as plain:
            shutil.copyfileobj(packed, plain)
    arrays = []
    for train in (True, False):
        dataset = datasets.FashionMNIST(str(scratch), train=train, download=False)
        arrays.append((dataset.data.numpy(), dataset.targets.numpy().astype(np.uint8)))
    return tuple(arrays)
