"""What the engine needs of the frameworks at run time, loaded only when a check runs:
the import order that keeps one process alive with both, each Keras backend's
gradients, and randomness switched off for the training levels.

torch 2.14's first optimizer imports torch._dynamo, which loads triton; triton loaded
after TensorFlow crashes the process (a segmentation fault, TensorFlow 2.21), and so does
`import keras` before `import torchvision` (which imports torch._dynamo). On a machine
with no NVIDIA device (where triton has nothing to run on), `guard_import_order()`
makes triton unimportable, which torch handles (torch.compile falls back to its C++ CPU
code): the pytest plugin does it when a suite starts, at no cost. With a GPU,
`prepare()` loads triton before TensorFlow, or, when TensorFlow came first, says how to
fix the order.

Stage: pair.
"""

from __future__ import annotations

import contextlib
import os
import sys


class ImportOrderError(RuntimeError):
    """TensorFlow was loaded before triton on a CUDA machine: the message says the fix."""


def _no_gpu_for_triton() -> bool:
    """No NVIDIA device here (and no TRITON_INTERPRET): triton could only be loaded to
    sit unused. Read from the device files, without importing anything."""
    if os.environ.get("TRITON_INTERPRET"):
        return False
    return not (os.path.exists("/dev/nvidia0") or os.path.exists("/proc/driver/nvidia"))


def guard_import_order() -> None:
    """Where no GPU can use triton, make it unimportable (torch handles that: its CPU
    code needs no triton), so TensorFlow and torch load in either order. Imports nothing:
    the pytest plugin calls it when a suite starts."""
    if "triton" not in sys.modules and _no_gpu_for_triton():
        sys.modules["triton"] = None


def prepare() -> None:
    """Make this process safe for both frameworks (idempotent; quiet TensorFlow logs)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    guard_import_order()
    if "triton" in sys.modules:
        return
    if "tensorflow" in sys.modules:
        raise ImportOrderError(
            "TensorFlow was imported before torch._dynamo on a CUDA machine, and triton "
            "loaded after TensorFlow crashes the process: add `import torch._dynamo` "
            "before `import keras` (e.g. at the top of your conftest.py)"
        )
    import torch._dynamo  # noqa: F401  (loads triton, before TensorFlow)


def keras_backend() -> str:
    import keras

    return keras.backend.backend()


def keras_value_and_gradients(model, loss_of):
    """(loss, gradients of the trainable variables, None where the loss does not reach
    one) on Keras's backend; `loss_of(call)` computes the loss through `call(...)`, the
    model's call (stateless on JAX)."""
    import keras

    backend = keras.backend.backend()
    variables = model.trainable_variables
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_of(model)
        return loss, tape.gradient(loss, variables)
    if backend == "jax":
        import jax

        non_trainable = [v.value for v in model.non_trainable_variables]

        def loss_at(trainable):
            def call(*args, **kwargs):
                outputs, _ = model.stateless_call(trainable, non_trainable, *args, **kwargs)
                return outputs

            return loss_of(call)

        return jax.value_and_grad(loss_at)([v.value for v in variables])
    if backend == "torch":
        import torch

        loss = loss_of(model)
        return loss, torch.autograd.grad(loss, [v.value for v in variables], allow_unused=True)
    raise RuntimeError(f"the pair engine does not know Keras's {backend} backend")


@contextlib.contextmanager
def no_torch_randomness():
    """torch's dropout functions (in every nn.Dropout and functional call) and the
    attention functions' dropout_p as the identity, for the training levels."""
    import torch
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode

    dropouts = {
        F.dropout,
        F.dropout1d,
        F.dropout2d,
        F.dropout3d,
        F.alpha_dropout,
        F.feature_alpha_dropout,
        torch.dropout,
        torch.nn.functional.dropout,
    }
    attention = {F.scaled_dot_product_attention}

    class Mode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = dict(kwargs or {})
            if func in dropouts:
                return args[0] if args else kwargs["input"]
            if func in attention and kwargs.get("dropout_p"):
                kwargs["dropout_p"] = 0.0
            return func(*args, **kwargs)

    with Mode():
        yield


@contextlib.contextmanager
def switched_off(units):
    """Every random unit (dropout, stochastic depth, recurrent dropout) as the identity."""
    undo = []
    try:
        for unit in units:
            undo.append(unit.converters[0].switch_off(unit.obj))
        yield
    finally:
        for step in reversed(undo):
            step()


@contextlib.contextmanager
def quiet():
    """TensorFlow's Python warnings off for a check (a layer called eagerly on inputs of
    several shapes logs "triggered tf.function retracing", which says nothing about the
    pair); the user's logging level comes back after."""
    import logging

    logger = logging.getLogger("tensorflow")
    before = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(before)
