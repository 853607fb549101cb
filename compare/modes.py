"""Execution modes: how a framework is driven, never what it computes.

- `tuned` (the default): each framework at its best on this hardware, as measured here.
  PyTorch gathers each batch by index from tensors loaded once per run and uses the
  fused optimizer kernels; Keras compiles the train step with XLA (`jit_compile=True`)
  and runs several steps per compiled call (`steps_per_execution`), so the host
  synchronises once per call instead of per step; on TensorFlow it reads the epoch
  from a tf.data pipeline over tensors loaded once per run.
- `idiomatic`: what the tutorials do. PyTorch iterates a `DataLoader` over a dataset that
  converts each uint8 image with torchvision's `ToTensor` and `Normalize`; Keras calls
  `model.fit` on arrays with its compile defaults (no XLA on a CPU-only machine).
- `compiled`: `tuned` with the train step compiled on every side, including where
  compiling measured slower on this CPU: PyTorch's model, loss and their backward (the
  fused optimizer step stays eager) and Keras on its torch backend through
  `torch.compile`; Keras on TensorFlow through XLA even with dropout. It answers "what
  does the compiler give?" apart from "what is fastest here?".

All modes see the same batches in the same order (the shared epoch order), so their
accuracy must agree; only time may differ. `tests/test_modes.py` checks that.
"""

MODES = ("tuned", "idiomatic", "compiled")
DEFAULT_MODE = "tuned"

# Keras tuned: train steps per compiled call. On the headline MLP (2 CPU cores, 16,000
# examples, one exploratory run) XLA with 32 steps per call took 0.42 s per epoch against
# 0.85 s with 1; other values were not measured. It changes the execution, not the
# updates: every batch is still one optimizer step.
KERAS_TUNED_STEPS_PER_EXECUTION = 32


def keras_compile_options(mode: str, backend: str, dropout: bool = False) -> dict:
    """`model.compile` execution options for a Keras run in `mode` on `backend`.

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
    return {"jit_compile": jit, "steps_per_execution": KERAS_TUNED_STEPS_PER_EXECUTION}


def torch_compiles(mode: str) -> bool:
    """Whether native PyTorch runs its model through `torch.compile` in `mode`."""
    return mode == "compiled"


def fused_optimizer(mode: str) -> bool:
    """Whether native PyTorch uses the fused optimizer kernels in `mode`."""
    return mode in ("tuned", "compiled")
