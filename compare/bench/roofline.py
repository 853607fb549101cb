"""GEMM-bound time: what an epoch's matrix products alone cost on this machine.

Stage: bench.

For a stack of dense layers, one training step does per layer a forward product
(B, in) x (in, out), a weight-gradient product (in, B) x (B, out) and, except for the
first layer (its input needs no gradient), an input-gradient product (B, out) x (out, in).
We time each distinct shape on this machine with the fastest BLAS we have in process
(NumPy's, and PyTorch's when importable), take the best of several repeats, and add up
an epoch's worth. A run's steady epoch time divided by this is its "multiple of
GEMM-bound time": 1.0 would mean nothing but matrix products.

`noise_floor` replays the same epoch of products back to back several times: constant
work, so the spread of its times is the machine's own timing noise at that moment (a
shared virtual machine's neighbours show up here), against which a run's spread of
steady epochs can be read.
"""

from __future__ import annotations

import collections
import math

import numpy as np

from compare.run import timing
from compare.spec.schema import IMAGE_SHAPE


def dense_layers(model_spec) -> list[tuple[int, int]]:
    """(in, out) of each dense layer of an MLP spec."""
    widths = [math.prod(IMAGE_SHAPE), *model_spec.hidden_sizes, model_spec.num_classes]
    return list(zip(widths[:-1], widths[1:], strict=True))


def epoch_products(layers, examples: int, batch_size: int) -> collections.Counter:
    """Counter of (m, k, n) -> how many times an epoch multiplies (m, k) by (k, n)."""
    batches = collections.Counter({batch_size: examples // batch_size})
    if examples % batch_size:
        batches[examples % batch_size] += 1
    products: collections.Counter = collections.Counter()
    for size, count in batches.items():
        for index, (fan_in, fan_out) in enumerate(layers):
            products[(size, fan_in, fan_out)] += count  # forward
            products[(fan_in, size, fan_out)] += count  # weight gradient
            if index > 0:
                products[(size, fan_out, fan_in)] += count  # input gradient
    return products


def _backends():
    backends = {"numpy": lambda a, b: a @ b}
    try:
        import torch
    except ImportError:
        return backends
    backends["torch"] = lambda a, b: torch.mm(a, b)
    return backends


def _time_product(multiply, a, b, repeats: int, inner: int) -> float:
    best = math.inf
    for _ in range(repeats):
        start = timing.clock()
        for _ in range(inner):
            multiply(a, b)
        best = min(best, (timing.clock() - start) / inner)
    return best


def measure(products: collections.Counter, repeats: int = 5, inner: int = 50) -> dict:
    """Seconds per product shape (fastest backend, best repeat) and the epoch total."""
    rng = np.random.default_rng(0)
    backends = _backends()
    per_shape = []
    for (m, k, n), count in sorted(products.items()):
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        seconds = {}
        for name, multiply in backends.items():
            operands = (a, b)
            if name == "torch":
                import torch

                operands = (torch.from_numpy(a), torch.from_numpy(b))
            seconds[name] = _time_product(multiply, *operands, repeats, inner)
        best = min(seconds, key=seconds.get)
        per_shape.append(
            {
                "shape": [m, k, n],
                "count": count,
                "seconds": seconds[best],
                "backend": best,
                "gflops": 2 * m * k * n / seconds[best] / 1e9,
            }
        )
    total = sum(row["seconds"] * row["count"] for row in per_shape)
    flops = sum(2 * m * k * n * count for (m, k, n), count in products.items())
    return {"epoch_gemm_seconds": total, "epoch_flops": flops, "per_shape": per_shape}


def noise_floor(products: collections.Counter, replays: int = 8) -> dict:
    """Seconds of `replays` back-to-back replays of an epoch's products (torch's BLAS,
    the runs' own); their max/min is the spread a perfectly steady workload shows now."""
    import torch

    generator = torch.Generator().manual_seed(0)
    operands = [
        (torch.randn((m, k), generator=generator), torch.randn((k, n), generator=generator), count)
        for (m, k, n), count in sorted(products.items())
    ]
    seconds = []
    for _ in range(replays):
        start = timing.clock()
        for a, b, count in operands:
            for _ in range(count):
                torch.mm(a, b)
        seconds.append(timing.clock() - start)
    return {"replay_seconds": seconds, "spread": max(seconds) / min(seconds)}
