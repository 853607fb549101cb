"""Who ran: the frameworks, Keras's backends, the execution modes, the devices, and the
one spelling of an implementation used in file names, the report, parity and the bench.

Stage: spec.

An implementation is (framework, Keras backend, execution mode). It is spelled one way
everywhere: `torch`, `keras` (Keras on TensorFlow), `keras_jax`, `keras_torch`, with
`-idiomatic` or `-compiled` after it for a mode other than the default `tuned`
(`torch-idiomatic`, `keras_jax-compiled`). The defaults add nothing, so the plain names
mean the classic pairing: native PyTorch against Keras on TensorFlow, both tuned.

Execution modes say how a framework is driven, never what it computes:
- `tuned` (the default): each framework at its best on this hardware, as measured here
  (PyTorch: batches gathered by index from tensors loaded once per run, fused optimizer
  kernels; Keras: an XLA-compiled train step, several steps per compiled call, on
  TensorFlow a tf.data pipeline over tensors loaded once per run).
- `idiomatic`: what the tutorials do (PyTorch: a DataLoader converting each image with
  ToTensor and Normalize; Keras: `fit` on arrays with compile's defaults).
- `compiled`: `tuned` with the train step compiled on every side, even where compiling
  measured slower here (`torch.compile`; XLA for Keras everywhere).
Each implementation owns how it realises a mode (`pytorch_impl.execution`,
`keras_impl.execution`). All modes see the same batches in the same order, so their
accuracy must agree; only time may differ (`tests/test_modes.py`).
"""

from __future__ import annotations

import dataclasses

from compare.errors import UserError

FRAMEWORKS = ("torch", "keras")
# Keras 3's backends; TensorFlow is the default (the classic Keras vs PyTorch pairing).
KERAS_BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT_KERAS_BACKEND = "tensorflow"
MODES = ("tuned", "idiomatic", "compiled")
DEFAULT_MODE = "tuned"
# "auto": the GPU when the framework sees one, else the CPU (compare.run.devices).
DEVICES = ("auto", "cpu", "gpu")


@dataclasses.dataclass(frozen=True)
class Implementation:
    """(framework, Keras backend, execution mode); `name` is its one spelling."""

    framework: str
    keras_backend: str | None = None  # Keras only; None means the default
    mode: str = DEFAULT_MODE

    @property
    def name(self) -> str:
        name = self.framework
        if self.framework == "keras" and self.keras_backend not in (None, DEFAULT_KERAS_BACKEND):
            name += f"_{self.keras_backend}"
        if self.mode not in (None, DEFAULT_MODE):
            name += f"-{self.mode}"
        return name

    @property
    def is_reference(self) -> bool:
        """Native PyTorch or Keras on TensorFlow, both tuned: the pairing the
        equivalence verdict is about."""
        return self.name in FRAMEWORKS

    @classmethod
    def of(cls, record: dict) -> Implementation:
        """The implementation of a run request, a result or a plan entry."""
        backend = record.get("keras_backend") or (record.get("runtime") or {}).get("keras_backend")
        keras_backend = backend if record["framework"] == "keras" else None
        return cls(record["framework"], keras_backend, record.get("mode") or DEFAULT_MODE)


def implementation_name(framework: str, keras_backend: str | None = None, mode=None) -> str:
    """The one spelling of an implementation (see the module docstring)."""
    return Implementation(framework, keras_backend, mode or DEFAULT_MODE).name


def choose_device(
    requested: str, library: str, gpu_visible: bool, hint: str = ""
) -> tuple[str, str]:
    """(device, notice) for a run of `library`: one rule for both frameworks, given what
    each one sees; notice is "" when there is nothing to say.

    `cpu` runs on the CPU (each implementation keeps its library off any GPU it could
    see). `gpu` runs on the GPU, and is a user error when the library sees none. `auto`
    runs on the GPU when the library sees one, else on the CPU, and says which.

    `hint` says why the library sees no GPU, e.g. which package is installed.
    """
    if requested not in DEVICES:
        raise UserError(f"unknown device '{requested}' (choose one of: {', '.join(DEVICES)})")
    if requested == "gpu":
        if not gpu_visible:
            raise UserError(
                f"--device gpu: {library} sees no GPU{f' ({hint})' if hint else ''}; "
                "use --device cpu or auto"
            )
        return "gpu", ""
    if requested == "auto":
        if gpu_visible:
            return "gpu", f"--device auto: {library} sees a GPU, so this run uses it"
        return "cpu", f"--device auto: {library} sees no GPU, so this run uses the CPU"
    return "cpu", ""
