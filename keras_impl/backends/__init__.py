"""One module per Keras backend: the only backend-specific code in keras_impl.

Keras runs on the backend named by KERAS_BACKEND when it is first imported (tensorflow,
jax or torch). Each module here talks to that backend's library and exposes the same
functions, with the same signatures:

    configure(threads, deterministic) -> dict   threads and determinism, and what is in effect
    intra_op_threads(count)                     a context on `count` intra-op threads
    hide_gpu() -> str                           keep a CPU run off the GPU (before it starts)
    float32(on_gpu) -> dict                     full float32 (no TF32) on the GPU; the flags
    gpu_info() -> dict                          the GPU the backend runs on
    synchronize() -> None                       wait for the device work still queued
    float64_available() -> bool                 whether keras.ops computes float64 when asked
    float64_scope(enabled)                      a context in which float64 stays float64
    value_and_gradients(model, loss_of)         a loss and its gradients (see below)
    compile_step(step, variables)               `step`, compiled where the backend can
    run_optimizer(optimizer, variable, gradients, jit_compile) -> (steps, n) array
                                                an optimizer's steps on one vector

`value_and_gradients(model, loss_of)`: `loss_of(call)` returns a scalar loss, where
`call(*inputs, **kwargs)` runs `model` (training mode is the caller's keyword) so that
the loss can be differentiated with respect to `model.trainable_variables`. Returns
(loss, gradients), the gradients aligned with `model.trainable_variables`. A variable
the loss does not depend on gets None on TensorFlow and torch, and zeros on JAX (whose
gradients cannot tell "not used" from "zero").

`compile_step(step, variables)`: `step` as the backend runs it fastest: a graph
(tf.function), a jax.jit function, or as it is (torch, eager). `variables` is every
Keras variable the step reads or assigns: JAX passes their values through its pure
compiled function.

A module is imported only when asked for (`module`, `current`), so a process imports
the library of the backend it runs on and no other.
"""

from __future__ import annotations

import importlib
import types

NAMES = ("tensorflow", "jax", "torch")


def module(name: str) -> types.ModuleType:
    """The module for the Keras backend `name` (one of NAMES)."""
    if name not in NAMES:
        raise ValueError(f"unknown Keras backend {name!r} (choose one of: {', '.join(NAMES)})")
    return importlib.import_module(f"{__name__}.{name}")


def current() -> types.ModuleType:
    """The module for the backend Keras runs on in this process."""
    import keras

    return module(keras.backend.backend())
