"""How Keras realises each execution mode (mirrors pytorch_impl.execution).

The modes and what they mean are `compare.spec.identity`; this module owns only how
Keras is driven in each: `model.compile`'s execution options per backend. They change
the execution, never the updates: every batch is still one optimizer step.
"""

from __future__ import annotations

# Tuned: train steps per compiled call. On the headline MLP (2 CPU cores, 16,000
# examples, one exploratory run) XLA with 32 steps per call took 0.42 s per epoch against
# 0.85 s with 1; other values were not measured.
TUNED_STEPS_PER_EXECUTION = 32


def options(mode: str, backend: str, dropout: bool = False) -> dict:
    """`model.compile` execution options for a run in `mode` on `backend`.

    Idiomatic: compile's defaults (no XLA on a CPU-only machine).

    Tuned on the PyTorch backend stays eager with one step per call: Keras refuses
    `steps_per_execution` > 1 there, and `jit_compile=True` means `torch.compile`, which
    made the MLP's CPU step slower, not faster, when measured here.

    Tuned on TensorFlow with dropout in the model skips XLA: XLA's random-number kernels
    on this CPU made mlp_dropout's epoch 10.7 s against 2.6-3.0 s as a plain tf.function
    (both with 32 steps per call, 2 threads, one run); without dropout XLA was faster
    (1.3-1.7 s against 2.4 s). `compiled` compiles regardless.
    """
    if mode == "idiomatic":
        return {}
    compiled = mode == "compiled"
    if backend == "torch":
        return {"jit_compile": compiled}
    jit = compiled or not (dropout and backend == "tensorflow")
    return {"jit_compile": jit, "steps_per_execution": TUNED_STEPS_PER_EXECUTION}
