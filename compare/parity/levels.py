"""The parity levels that need no training: structure, weights, forward, gradients, data.

Each check builds what it needs through the implementation contract alone and compares
the two sides in the canonical NumPy layout, the Keras model holding the torch model's
weights. `compare.parity.training` has the levels that train; `compare.parity.suite`
runs every level per model. Tolerances come from `compare.spec.schema.ParitySpec`.

Stage: parity.
"""

from __future__ import annotations

import pathlib
import tempfile

import numpy as np
from scipy.special import softmax

# isort: split
# The first torch optimizer imports torch._dynamo, which loads triton; triton loaded
# after TensorFlow crashes the process (segmentation fault, torch 2.14 + TF 2.21), so
# it is loaded here, before keras_impl brings TensorFlow in.
import torch._dynamo  # noqa: F401

# isort: split
from compare import pair
from compare.data import fashion_mnist, split
from compare.network import no_network
from compare.pair.result import Check, differences, tensor_gaps
from compare.run import contract
from compare.spec.schema import ExperimentSpec, ParitySpec

# Both sides of the proof, through the contract alone.
T = contract.load("torch")
K = contract.load("keras")


def tensor_names(model_spec) -> list[str]:
    """The canonical weights' names, in order: `conv1.kernel`, `conv1.bias`, ...,
    `dense1.kernel`, ...: what a failing level names."""
    layers = []
    if model_spec.architecture == "cnn":
        layers += [f"conv{i}" for i in range(1, len(model_spec.conv_filters) + 1)]
    if model_spec.logits_from == "dense":
        layers += [f"dense{i}" for i in range(1, len(model_spec.hidden_sizes) + 2)]
    return [f"{layer}.{part}" for layer in layers for part in ("kernel", "bias")]


def layer_names(kernels: list[np.ndarray]) -> list[str]:
    """`conv1`, ..., `dense1`, ... for canonical kernels (4-D: a convolution)."""
    counts, names = {"conv": 0, "dense": 0}, []
    for kernel in kernels:
        kind = "conv" if np.ndim(kernel) == 4 else "dense"
        counts[kind] += 1
        names.append(f"{kind}{counts[kind]}")
    return names


def transplant(torch_model, keras_model) -> None:
    """Copy the torch model's weights into the Keras model, through the canonical layout."""
    K.set_weights(keras_model, T.get_weights(torch_model))


def build_pair(experiment: ExperimentSpec):
    """(torch model, Keras model) of one experiment, with the same (torch-initialised) weights."""
    torch_model = T.build_model(experiment.model)
    keras_model = K.build_model(experiment.model)
    transplant(torch_model, keras_model)
    return torch_model, keras_model


def check_structure(torch_model, keras_model, x: np.ndarray) -> Check:
    """Same parameter count, same canonical weight shapes, same output shape."""
    counts = (T.count_parameters(torch_model), K.count_parameters(keras_model))
    shapes = (
        [w.shape for w in T.get_weights(torch_model)],
        [w.shape for w in K.get_weights(keras_model)],
    )
    outputs = (T.predict(torch_model, x[:2], 2).shape, K.predict(keras_model, x[:2], 2).shape)
    passed = counts[0] == counts[1] and shapes[0] == shapes[1] and outputs[0] == outputs[1]
    first = None
    if shapes[0] != shapes[1]:
        index = next(
            (i for i, (a, b) in enumerate(zip(*shapes, strict=False)) if a != b),
            min(len(shapes[0]), len(shapes[1])),
        )
        kernels = [np.empty((1,) * len(shape)) for shape in shapes[0][0::2]]
        names = [f"{n}.{part}" for n in layer_names(kernels) for part in ("kernel", "bias")]
        which = names[index] if index < len(names) else f"tensor {index}"
        first = (
            f"canonical shapes differ from {which}: torch "
            f"{shapes[0][index] if index < len(shapes[0]) else 'none'}, keras "
            f"{shapes[1][index] if index < len(shapes[1]) else 'none'}"
        )
    elif counts[0] != counts[1]:
        first = f"parameter counts differ: torch {counts[0]}, keras {counts[1]}"
    elif outputs[0] != outputs[1]:
        first = f"output shapes differ: torch {outputs[0]}, keras {outputs[1]}"
    return Check(
        "structure",
        passed,
        float(abs(counts[0] - counts[1])),
        float(abs(counts[0] - counts[1]) / max(counts[0], 1)),
        {"parameter_count": "equal", "shapes": "equal"},
        {
            "parameter_count": {"torch": counts[0], "keras": counts[1]},
            "output_shape": {"torch": list(outputs[0]), "keras": list(outputs[1])},
            "canonical_shapes": [list(s) for s in shapes[0]],
            "first_failure": first,
        },
    )


def check_weights(experiment: ExperimentSpec, x: np.ndarray | None = None) -> Check:
    """Round trips torch -> canonical -> Keras -> canonical -> torch, and from Keras back."""
    torch_model, keras_model = T.build_model(experiment.model), K.build_model(experiment.model)
    start = T.get_weights(torch_model)
    K.set_weights(keras_model, start)
    via_keras = K.get_weights(keras_model)
    torch_again = T.build_model(experiment.model)
    T.set_weights(torch_again, via_keras)
    torch_trip = T.get_weights(torch_again)

    keras_start = K.get_weights(K.build_model(experiment.model))
    T.set_weights(torch_again, keras_start)
    keras_again = K.build_model(experiment.model)
    K.set_weights(keras_again, T.get_weights(torch_again))
    keras_trip = K.get_weights(keras_again)

    exact = all(
        a.dtype == b.dtype and np.array_equal(a, b)
        for a, b in [
            *zip(start, via_keras, strict=True),
            *zip(start, torch_trip, strict=True),
            *zip(keras_start, keras_trip, strict=True),
        ]
    )
    abs_diff, rel_diff = differences(start + keras_start, torch_trip + keras_trip)
    # The pair engine's layer mapping (compare.pair), written apart from the contract's
    # canonical layout, must put the same arrays in Keras: two conversions of one model
    # agreeing bit for bit (a wrong flatten permutation in either shows).
    mapped = K.build_model(experiment.model)
    if x is None:  # any images of the spec's size: the trace needs a forward pass
        size = experiment.data.image_size
        x = np.random.default_rng(0).normal(size=(2, size, size)).astype(np.float32)
    pair.check_pair(
        torch_again_for(experiment, start),
        mapped,
        x[:2],
        keras_inputs=x[:2],
        levels=("structure",),
    )
    engine = [
        a.shape == b.shape and np.array_equal(a, b)
        for a, b in zip(start, K.get_weights(mapped), strict=True)
    ]
    first = None
    if not all(engine):
        first = f"{tensor_names(experiment.model)[engine.index(False)]}: the contract's canonical "
        first += "layout and the pair engine's layer mapping put different arrays in Keras"
    elif not exact:
        first = "a round trip through the canonical layout changes the weights"
    return Check(
        "weights",
        exact and all(engine),
        abs_diff,
        rel_diff,
        {"exact": True},
        {"arrays": len(start), "engine_mapping_agrees": all(engine), "first_failure": first},
    )


def torch_again_for(experiment: ExperimentSpec, weights):
    """A torch model of the experiment holding `weights` (canonical layout)."""
    model = T.build_model(experiment.model)
    T.set_weights(model, weights)
    return model


def check_forward(torch_model, keras_model, x: np.ndarray, parity: ParitySpec) -> Check:
    """Same logits and probabilities in inference mode (the Keras model holds torch's weights)."""
    logits = T.predict(torch_model, x, len(x)), K.predict(keras_model, x, len(x))
    probabilities = softmax(logits[0].astype(np.float64), axis=1), softmax(logits[1], axis=1)
    close = all(
        np.allclose(other, reference, rtol=parity.forward_rtol, atol=parity.forward_atol)
        for reference, other in (logits, probabilities)
    )
    abs_diff, rel_diff = differences([logits[0], probabilities[0]], [logits[1], probabilities[1]])
    # Where the two part, when they do: the engine's layer-by-layer comparison of these
    # two models (compare.pair, their weights as the study set them), as for a user's
    # pair; the logits above are predict's.
    located, first = {}, None
    if not close:
        located = (
            pair.check_pair(
                torch_model,
                keras_model,
                x,
                keras_inputs=x,
                weights="as_given",
                levels=("structure", "weights", "forward"),
                spec=pair.PairSpec(
                    forward_rtol=parity.forward_rtol, forward_atol=parity.forward_atol
                ),
            )
            .entry["details"]
            .get("forward", {})
        )
        first = located.get("first_failure") or (
            "the logits differ, but every weighted layer's output agrees when both models "
            "run in inference mode: look at predict itself (its mode, batching)"
        )
    return Check(
        "forward",
        close,
        abs_diff,
        rel_diff,
        {"rtol": parity.forward_rtol, "atol": parity.forward_atol},
        {
            "first_failure": first,
            "layer_outputs_max_abs_diff": located.get("layer_outputs_max_abs_diff"),
            "examples": len(x),
            "logits_max_abs_diff": differences([logits[0]], [logits[1]])[0],
            "probabilities_max_abs_diff": differences([probabilities[0]], [probabilities[1]])[0],
        },
    )


def check_gradients(experiment: ExperimentSpec, weights, x, y, parity: ParitySpec) -> Check:
    """Same training-mode loss and per-tensor gradients on one batch, each computed by the
    side's own Trainer (the spec's loss and target form, as `train_step` computes them):
    per tensor |delta| <= rtol * max|g| + atol. Fails naming the first tensor off."""
    sides = []
    for impl in (T, K):
        model = impl.build_model(experiment.model)
        impl.set_weights(model, weights)
        sides.append(impl.Trainer(model, experiment.train).loss_and_gradients(x, y))
    (torch_loss, torch_grads), (keras_loss, keras_grads) = sides
    loss_diff = abs(torch_loss - keras_loss)
    passed = loss_diff <= parity.loss_atol
    names = tensor_names(experiment.model)
    # The first tensor off names where the two part; the loss only when all agree.
    first = None
    tensors = []
    for index, (reference, other) in enumerate(zip(torch_grads, keras_grads, strict=True)):
        scale = float(np.max(np.abs(reference)))
        delta = tensor_gaps([reference], [other])[0]
        # A parameter whose true gradient is zero has nothing to compare but rounding.
        skipped = scale == 0.0
        bound = parity.gradient_rtol * scale + parity.gradient_atol
        ok = skipped or delta <= bound
        if not ok and first is None:
            first = f"the gradient of {names[index]} differs by {delta:.2e} (bound {bound:.2e})"
        passed = passed and ok
        tensors.append(
            {
                "tensor": names[index],
                "max_abs": scale,
                "max_abs_diff": delta,
                "ok": ok,
                "skipped": skipped,
            }
        )
    if first is None and loss_diff > parity.loss_atol:
        first = f"the loss differs by {loss_diff:.2e} (bound {parity.loss_atol:.2e})"
    abs_diff, rel_diff = differences(torch_grads, keras_grads)
    return Check(
        "gradients",
        passed,
        max(abs_diff, loss_diff),
        rel_diff,
        {
            "loss_atol": parity.loss_atol,
            "per_tensor": f"|delta| <= {parity.gradient_rtol} * max|g| + {parity.gradient_atol}",
        },
        {
            "loss_form": experiment.train.loss,
            "examples": len(x),
            "first_failure": first,
            "loss": {"torch": torch_loss, "keras": keras_loss},
            "loss_abs_diff": loss_diff,
            "tensors": tensors,
        },
    )


def check_loaders(data_dir: str | None = None) -> dict:
    """torchvision's and keras.datasets' Fashion-MNIST against `compare.data`, bitwise.

    Both read copies of the same local files in a temporary directory, with the network
    disabled. Returns, per framework, whether every array matched and how many differ.
    """
    raw = fashion_mnist.load_raw(data_dir)
    expected = ((raw.train_images, raw.train_labels), (raw.test_images, raw.test_labels))
    source = fashion_mnist.locate(data_dir)
    outcome = {}
    for impl in (T, K):
        with tempfile.TemporaryDirectory() as scratch, no_network():
            loaded = impl.load_fashion_mnist(source, pathlib.Path(scratch), fashion_mnist.FILES)
        # (ours, theirs) for train images, train labels, test images, test labels.
        pairs = [
            pair
            for ours, theirs in zip(expected, loaded, strict=True)
            for pair in zip(ours, theirs, strict=True)
        ]
        outcome[impl.FRAMEWORK] = {
            "identical": all(a.shape == b.shape and np.array_equal(a, b) for a, b in pairs),
            "differing_values": int(
                sum(np.count_nonzero(a != b) if a.shape == b.shape else a.size for a, b in pairs)
            ),
        }
    return outcome


def check_data(experiment: ExperimentSpec, shared: split.SharedData, loaders: dict) -> Check:
    """Each framework's training input path yields an epoch of the shared split bitwise,
    in the runner's order (its first epoch of seed 0); the dataset loaders agree."""
    fed = {}
    order = split.epoch_order(0, 0, len(shared.y_train))
    expected_x, expected_y = shared.x_train[order], shared.y_train[order]
    for impl in (T, K):
        batches = list(
            impl.training_batches(
                shared.x_train, shared.y_train, experiment.train.batch_size, order
            )
        )
        x = np.concatenate([np.asarray(bx) for bx, _ in batches])
        y = np.concatenate([np.asarray(by) for _, by in batches])
        fed[impl.FRAMEWORK] = {
            "identical": bool(
                x.dtype == expected_x.dtype
                and y.dtype == expected_y.dtype
                and np.array_equal(x, expected_x)
                and np.array_equal(y, expected_y)
            ),
            "max_abs_diff": differences([expected_x], [x])[0]
            if x.shape == expected_x.shape
            else np.inf,
        }
    passed = all(f["identical"] for f in fed.values()) and all(
        loader["identical"] for loader in loaders.values()
    )
    abs_diff = max(f["max_abs_diff"] for f in fed.values())
    return Check(
        "data",
        passed,
        abs_diff,
        abs_diff / float(np.max(np.abs(shared.x_train))),
        {"exact": True},
        {
            "split_manifest_hash": shared.manifest_hash,
            "training_inputs": fed,
            "dataset_loaders": loaders,
        },
    )
