"""PyTorch training and prediction on the shared arrays (mirrors keras_impl.train).

The runner hands each epoch the shared arrays and the shared shuffled order, so both
frameworks see the same batches; the loss reported per epoch is the mean over
examples, which is what Keras's `fit` logs. With `data.pipeline = "native"` the
examples come instead through each framework's own input path, as the seed scripts
feed them (`train_epoch_native`). The parity suite also takes single steps, computes
gradients and applies given gradients, always in the canonical layout.

On the GPU the Trainer holds the model there; the shared arrays go to it once per
run (tuned mode, batches gathered there by index) or batch by batch, as the
tutorials' `.to(device)` (DataLoader paths). `predict` runs where the model is and
returns NumPy. The CPU is the default.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional

from compare.spec.identity import DEFAULT_MODE
from pytorch_impl import augment, execution, runtime
from pytorch_impl.model import get_weights, set_weights
from pytorch_impl.optimizers import make_optimizer

CPU = torch.device("cpu")


def loss_fn(logits: torch.Tensor, labels: torch.Tensor, loss: str = "cross_entropy"):
    """The training loss, mean over the batch; the model always returns logits."""
    if loss == "cross_entropy":
        return functional.cross_entropy(logits, labels)
    if loss == "log_softmax_nll":
        # As the tutorials write it: a log-softmax output layer, then NLLLoss.
        return functional.nll_loss(functional.log_softmax(logits, dim=1), labels)
    if loss == "softmax_categorical_crossentropy":
        # Parity: Keras takes one-hot targets (made before fit, as the seed script does);
        # here they are made per batch. Keras computes CCE after a softmax output from
        # the softmax's logits (softmax_cross_entropy_with_logits), never from clipped
        # probabilities, so the same function is written out here.
        one_hot = functional.one_hot(labels, logits.shape[1]).to(logits.dtype)
        return -(one_hot * functional.log_softmax(logits, dim=1)).sum(dim=1).mean()
    raise ValueError(f"unknown loss {loss!r}")


def training_batches(x: np.ndarray, y: np.ndarray, batch_size: int, order=None, device=CPU):
    """The (inputs, labels) tensors `train_epoch` feeds the model, in order: the arrays'
    rows in `order` (all of them, in place, without one)."""
    inputs, labels = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    yield from _index_batches(inputs, labels, batch_size, order)


def _index_batches(inputs: torch.Tensor, labels: torch.Tensor, batch_size: int, order):
    # Parity: PyTorch only. The arrays stay where they are (zero-copy on the CPU, copied
    # to the GPU once per run) and each batch is gathered by index there; Keras's input
    # pipeline gathers its epoch itself (keras_impl.train.training_batches).
    if order is None:
        for start in range(0, len(inputs), batch_size):
            yield inputs[start : start + batch_size], labels[start : start + batch_size]
        return
    index = torch.from_numpy(np.asarray(order, dtype=np.int64)).to(inputs.device)
    for start in range(0, len(index), batch_size):
        rows = index[start : start + batch_size]
        yield inputs.index_select(0, rows), labels.index_select(0, rows)


def _as_canonical(model: torch.nn.Module, tensors) -> list[np.ndarray]:
    """Per-parameter tensors (gradients) in the canonical layout.

    Gradients have their parameters' shapes, so the model's own weight mapping lays them
    out: one definition of the canonical layout serves weights and gradients alike.
    """
    saved = get_weights(model)
    with torch.no_grad():
        for parameter, tensor in zip(model.parameters(), tensors, strict=True):
            parameter.copy_(tensor)
    canonical = get_weights(model)
    set_weights(model, saved)
    return canonical


def _as_native(model: torch.nn.Module, arrays: list[np.ndarray]) -> list[torch.Tensor]:
    """Canonical-layout arrays as tensors shaped like the model's parameters."""
    saved = get_weights(model)
    set_weights(model, arrays)
    tensors = [parameter.detach().clone() for parameter in model.parameters()]
    set_weights(model, saved)
    return tensors


def _device_of(model: torch.nn.Module) -> torch.device:
    """Where the model's parameters live: its inputs must go there too."""
    return next(model.parameters()).device


class Trainer:
    """Owns the optimizer state for one model, on the run's device ("cpu" or "gpu")."""

    def __init__(
        self,
        model: torch.nn.Module,
        train_spec,
        mode: str = DEFAULT_MODE,
        device: str = "cpu",
    ):
        self.device = runtime.torch_device(device)
        # Moved before the optimizer is made: it keeps (and fuses over) these parameters.
        self.model = model.to(self.device)
        self.batch_size = train_spec.batch_size
        self.loss = train_spec.loss
        # Frozen parameters (the transfer model's features) are not the optimizer's.
        trained = [parameter for parameter in model.parameters() if parameter.requires_grad]
        self.optimizer = make_optimizer(trained, train_spec, mode)
        self._native_dataset = None
        self._native_loader = None
        self._resident = None  # (x, y, their tensors on the device)
        # Parity's study-path level sets a list here: every batch the epoch steps on is
        # appended (NumPy), so what the entry point really consumed can be compared.
        self.fed_batches: list | None = None
        # Compiled: model and loss (so also their backward) through torch.compile,
        # Inductor's C++ kernels on the CPU; static shapes, so the last, smaller batch
        # compiles once more instead of every batch running a shape-generic kernel. The
        # optimizer step stays the fused eager kernel: compiled, it took 2.9 s per epoch
        # against 1.1 s eager (headline MLP, 2 threads, one exploratory run each).
        self._loss_of = self._batch_loss
        if execution.options(mode)["compile"]:
            self._loss_of = torch.compile(self._batch_loss, dynamic=False)

    def _batch_loss(self, batch_x: torch.Tensor, batch_y: torch.Tensor) -> torch.Tensor:
        return loss_fn(self.model(batch_x), batch_y, self.loss)

    def _backward(self, batch_x: torch.Tensor, batch_y: torch.Tensor) -> torch.Tensor:
        """The training step's loss, its gradients left in the parameters' .grad."""
        loss = self._loss_of(batch_x, batch_y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        return loss

    def _step(self, batch_x: torch.Tensor, batch_y: torch.Tensor) -> torch.Tensor:
        loss = self._backward(batch_x, batch_y)
        self.optimizer.step()
        return loss.detach()

    def _train_batches(self, batches) -> float:
        """One optimizer step per (inputs, targets) batch; the mean loss over examples."""
        self.model.train()
        total, count = torch.zeros((), dtype=torch.float64, device=self.device), 0
        for batch_x, batch_y in batches:
            # DataLoader batches come from the CPU: copied per step, as the tutorials
            # do (a no-op for batches already on the device, and on the CPU).
            batch_x, batch_y = batch_x.to(self.device), batch_y.to(self.device)
            if self.fed_batches is not None:
                self.fed_batches.append((batch_x.cpu().numpy(), batch_y.cpu().numpy()))
            # Accumulate on the device: no per-step host sync.
            total += self._step(batch_x, batch_y) * len(batch_x)
            count += len(batch_x)
        return float(total) / count

    def train_epoch(self, x: np.ndarray, y: np.ndarray, order=None, augmentation=None) -> float:
        """One pass over the rows of (x, y) in `order` (the arrays' own order without
        one); returns the mean training loss. The arrays go to the device on the first
        call and stay there while the same arrays come back (one run's training set).
        With `augmentation`, every row is first transformed with its parameters
        (`pytorch_impl.augment`), on the device, inside the epoch."""
        if self._resident is None or self._resident[0] is not x or self._resident[1] is not y:
            tensors = (torch.from_numpy(x).to(self.device), torch.from_numpy(y).to(self.device))
            self._resident = (x, y, *tensors)
        _, _, inputs, labels = self._resident
        if augmentation is not None:
            inputs = augment.augment(inputs, augmentation)
        return self._train_batches(_index_batches(inputs, labels, self.batch_size, order))

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One optimizer step on one batch, as `train_epoch` takes it; returns its loss."""
        self.model.train()
        inputs, labels = torch.from_numpy(x).to(self.device), torch.from_numpy(y).to(self.device)
        return float(self._step(inputs, labels))

    def loss_and_gradients(self, x: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
        """The loss of one batch as `train_step` computes it (the spec's loss and target
        form, training mode) and its gradients in the canonical layout; no update."""
        self.model.train()
        inputs, labels = torch.from_numpy(x).to(self.device), torch.from_numpy(y).to(self.device)
        loss = self._backward(inputs, labels)
        parameters = list(self.model.parameters())
        gradients = [torch.zeros_like(p) if p.grad is None else p.grad for p in parameters]
        canonical = _as_canonical(self.model, gradients)
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach()), canonical

    def apply_gradients(self, gradients: list[np.ndarray]) -> None:
        """One optimizer step with the given canonical-layout gradients."""
        tensors = _as_native(self.model, gradients)
        for parameter, gradient in zip(self.model.parameters(), tensors, strict=True):
            parameter.grad = gradient
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def train_epoch_native(
        self, images: np.ndarray, y: np.ndarray, data_spec, seed: int, order=None
    ) -> float:
        """One epoch the way the PyTorch seed scripts feed data: a map-style dataset
        converting each uint8 image with torchvision's ToTensor and Normalize, batched by
        a DataLoader. With `order` (idiomatic mode) the loader follows the shared epoch
        order; without it, it shuffles every epoch itself (its generator seeded once,
        from `seed`), as the seed scripts do."""
        if self._native_dataset is None:
            self._native_dataset = NativeImages(images, y, data_spec)
        if order is not None:
            loader = torch.utils.data.DataLoader(
                self._native_dataset, batch_size=self.batch_size, sampler=order.tolist()
            )
            return self._train_batches(loader)
        if self._native_loader is None:
            generator = torch.Generator().manual_seed(seed)
            self._native_loader = torch.utils.data.DataLoader(
                self._native_dataset,
                batch_size=self.batch_size,
                shuffle=True,
                generator=generator,
            )
        return self._train_batches(self._native_loader)


# Parity: PyTorch only. Keras's native path (train_epoch_native) feeds fit the whole
# preprocessed array, as the Keras seed script does; there is no per-example step.
class NativeImages(torch.utils.data.Dataset):
    """uint8 images converted one at a time, as torchvision's FashionMNIST dataset does:
    PIL image, then ToTensor (divides by 255), then Normalize(mean, std)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, data_spec):
        from torchvision import transforms

        if data_spec.pixel_divisor == 255.0:
            to_tensor = transforms.ToTensor()
        else:  # ToTensor's division is fixed at 255; keep its per-example cost anyway.
            divisor = data_spec.pixel_divisor
            to_tensor = transforms.Compose(
                [transforms.PILToTensor(), transforms.Lambda(lambda t: t.float() / divisor)]
            )
        self.transform = transforms.Compose(
            [to_tensor, transforms.Normalize((data_spec.mean,), (data_spec.std,))]
        )
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):
        from PIL import Image

        image = self.transform(Image.fromarray(self.images[index], mode="L"))  # (1, 28, 28)
        return image[0], self.labels[index]


def predict(model: torch.nn.Module, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Logits for x in inference mode (dropout off), computed where the model is."""
    model.eval()
    inputs = torch.from_numpy(x).to(_device_of(model))  # one copy to the device
    with torch.inference_mode():
        outputs = [model(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)]
    return torch.cat(outputs).cpu().numpy()  # one copy back
