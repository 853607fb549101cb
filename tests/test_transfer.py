"""The transfer study: DenseNet-121 features in both frameworks from torchvision's
weights, Part 2's augmentation applied alike by both, the shared two-class resized data.

Keras runs on TensorFlow in this process; the augmentation is also checked on Keras's
jax backend, and the runner test trains Keras on its torch backend (no XLA compilation
of DenseNet-121, which alone takes about 50 s a run on TensorFlow).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT, run_cli
from keras import ops
from torchvision.transforms.v2 import functional

import keras_impl
import pytorch_impl
from compare.data import augment, fashion_mnist, split
from compare.errors import UserError
from compare.run import initial_weights, plan
from compare.spec import catalog, parse, studies
from compare.spec.schema import DataSpec
from compare.spec.validate import validate
from keras_impl import augment as keras_augment
from pytorch_impl import augment as torch_augment
from pytorch_impl import transfer as torch_transfer

TRANSFER = catalog.TRANSFER
SIZE = TRANSFER.data.image_size
# Both sides compute sample positions in float32 by different formulas (torchvision
# normalises them to [-1, 1] and back, Keras uses pixel indices), so a position differs
# by a few float32 ulps of a 64-pixel coordinate (~4e-6 px) per stage; on images whose
# neighbouring pixels differ by up to 1 (the noise images), a value moves by about that
# much per stage. Measured: at most 5.5e-6 on every backend.
AUGMENT_ATOL = 2e-5
# Logits of the same DenseNet-121 in both frameworks: 121 float32 layers summed in other
# orders. Measured 3e-7 to 4e-7 on logits of size 0.1 to 1; a BatchNorm epsilon left at
# Keras's 1.001e-5 gives 1.6e-4 (see stand_in_torch_home).
LOGITS_ATOL = 1e-5
AUGMENTATION_FIELDS = ("rotation_degrees", "crop_scale", "crop_ratio", "flip_probability")


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """(16, 64, 64): eight real sandals and sneakers resized as the study resizes them,
    and eight uniform-noise images (the hardest case for interpolation)."""
    data = DataSpec(
        classes=TRANSFER.data.classes,
        image_size=SIZE,
        pixel_divisor=255.0,
        mean=0.0,
        std=1.0,
        validation_size=0,
        train_limit=16,
        test_limit=16,
    )
    real = split.load_shared(data).x_train[:8]
    noise = np.random.default_rng(0).random((8, SIZE, SIZE), dtype=np.float32)
    return np.concatenate([real, noise])


def both_augmentations(images: np.ndarray, parameters) -> tuple[np.ndarray, np.ndarray]:
    torch_out = torch_augment.augment(torch.from_numpy(images), parameters).numpy()
    keras_out = ops.convert_to_numpy(keras_augment.augment(images, parameters))
    return torch_out, np.asarray(keras_out)


def test_the_study_is_built_in_listed_and_not_in_the_default_study():
    study = studies.builtin_study("transfer")
    assert [e.name for e in study.experiments] == ["transfer"] and study.seeds == 3
    assert "transfer" not in catalog.STUDIES["default"] and "transfer" not in catalog.MODELS
    assert "study transfer: transfer" in catalog.listing()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("data.image_size=28", "must be >= 32 for densenet121"),
        ("data.classes=[5]", "at least two"),
        ("data.classes=[5, 5]", "distinct labels"),
        ("model.num_classes=10", "model.num_classes must be 2"),
        ("data.crop_scale=[0.5]", "both empty"),
        ("model.features='pretrained'", "model.features = 'pretrained' is unknown"),
        ("model.input_std=[0.2, 0.2]", "three values each"),
        ("data.pipeline='native'", "shared pipeline only"),
    ],
)
def test_impossible_transfer_settings_name_the_key(setting, message):
    with pytest.raises(UserError, match=message):
        validate(parse.apply_overrides(TRANSFER, [setting]))


def test_other_models_refuse_the_transfer_fields_and_idiomatic_mode_refuses_transfer():
    with pytest.raises(UserError, match="only densenet121 takes resized"):
        validate(parse.apply_overrides(catalog.MODELS["mlp"], ["data.image_size=64"]))
    study = studies.builtin_study("transfer")
    with pytest.raises(UserError, match="run it in tuned or compiled mode"):
        plan.plan(study, plan.Options(modes=("idiomatic",)))
    assert {run.mode for run in plan.plan(study, plan.Options())} == {"tuned"}


def test_the_shared_split_keeps_two_classes_resized():
    shared = split.load_shared(dataclasses.replace(TRANSFER.data, train_limit=64, test_limit=64))
    assert shared.x_train.shape == (64, SIZE, SIZE) and shared.x_test.shape == (64, SIZE, SIZE)
    # Sandal (5) and sneaker (7) become 0 and 1, stratified.
    assert np.bincount(shared.y_train).tolist() == [32, 32]
    assert shared.manifest["classes"] == [5, 7]
    assert shared.x_train.min() >= 0 and shared.x_train.max() <= 1
    # The NumPy resize is torchvision's bilinear one (half-pixel centres, enlarging).
    stored = split.load_raw()
    raw = stored.train_images[np.isin(stored.train_labels, (5, 7))][:8]
    expected = functional.resize(
        torch.from_numpy(raw.astype(np.float32) / 255), [SIZE, SIZE], antialias=True
    ).numpy()
    np.testing.assert_allclose(split.preprocess(raw, TRANSFER.data), expected, atol=1e-6)


def test_augmentation_parameters_are_torchvisions_and_seeded():
    data = TRANSFER.data
    first = augment.draw(data, seed=0, epoch=0, size=2_000)
    again = augment.draw(data, seed=0, epoch=0, size=2_000)
    later = augment.draw(data, seed=0, epoch=1, size=2_000)
    for name, value in vars(first).items():
        np.testing.assert_array_equal(value, getattr(again, name))
    assert not np.array_equal(first.angles, later.angles)
    assert np.abs(first.angles).max() <= 30 and np.abs(first.angles).max() > 29
    assert 0.4 < first.flips.mean() < 0.6
    top, left, height, width = first.boxes.T
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + height <= SIZE).all() and (left + width <= SIZE).all()
    # Area share in scale and aspect in ratio, up to the rounding of the box's sides.
    share = height * width / SIZE**2
    assert share.min() >= 0.08 * 0.8 and share.max() <= 1
    aspect = width / height
    assert aspect.min() >= 3 / 4 * 0.8 and aspect.max() <= 4 / 3 * 1.25
    assert augment.draw(dataclasses.replace(data, rotation_degrees=0), 0, 0, 4).angles is None
    assert augment.draw(catalog.MODELS["mlp"].data, 0, 0, 4) is None


def test_both_frameworks_augment_alike(images):
    parameters = augment.draw(TRANSFER.data, seed=3, epoch=0, size=len(images))
    torch_out, keras_out = both_augmentations(images, parameters)
    np.testing.assert_allclose(keras_out, torch_out, rtol=0, atol=AUGMENT_ATOL)
    # Not vacuous: the images changed, and each transform alone agrees too.
    assert np.abs(torch_out - images).max() > 0.5
    for field in ("angles", "boxes", "flips"):
        only = augment.Augmentation(
            **{name: value if name == field else None for name, value in vars(parameters).items()}
        )
        torch_out, keras_out = both_augmentations(images, only)
        np.testing.assert_allclose(keras_out, torch_out, rtol=0, atol=AUGMENT_ATOL, err_msg=field)
    # The tolerance tells conventions apart: rotating about (W/2, H/2), the classic
    # half-pixel slip, instead of the pixel grid's centre moves values by 0.05 or more.
    slipped = ops.image.affine_transform(
        images[..., None],
        keras_augment.rotation_transforms(parameters.angles, SIZE + 1, SIZE + 1),
        interpolation="bilinear",
        fill_mode="constant",
        fill_value=0.0,
    )
    rotated, _ = both_augmentations(images, augment.Augmentation(parameters.angles, None, None))
    assert np.abs(np.asarray(slipped)[..., 0] - rotated).max() > 0.05


# Keras's augmentation on the jax backend against torchvision's output written by the test.
ON_JAX = """
import sys
import keras
import numpy as np
from compare.data import augment
from keras_impl import augment as keras_augment
saved = np.load(sys.argv[1])
parameters = augment.Augmentation(saved["angles"], saved["boxes"], saved["flips"])
out = keras.ops.convert_to_numpy(keras_augment.augment(saved["images"], parameters))
print(keras.backend.backend(), float(np.abs(out - saved["torch"]).max()))
"""


def test_keras_augments_alike_on_the_jax_backend(images, tmp_path):
    parameters = augment.draw(TRANSFER.data, seed=4, epoch=2, size=len(images))
    torch_out, _ = both_augmentations(images, parameters)
    np.savez(tmp_path / "case.npz", images=images, torch=torch_out, **vars(parameters))
    done = subprocess.run(
        [sys.executable, "-c", ON_JAX, str(tmp_path / "case.npz")],
        cwd=ROOT,
        env={**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    backend, max_abs_diff = done.stdout.split()
    assert backend == "jax" and 0 < float(max_abs_diff) <= AUGMENT_ATOL


def test_both_trainers_step_on_the_same_augmented_batches():
    """Each Trainer's epoch entry point augments before batching (here the headline MLP on
    TensorFlow, cheap to compile): the batches they consume agree, and so do the losses."""
    experiment = studies.apply_profile(catalog.MODELS["mlp"], "quick")
    augmented = {name: getattr(TRANSFER.data, name) for name in AUGMENTATION_FIELDS}
    data = dataclasses.replace(experiment.data, image_size=28, **augmented)
    shared = split.load_shared(data)
    x, y = shared.x_train[:128], shared.y_train[:128]  # two full batches: one compiled shape
    order = split.epoch_order(0, 0, len(y))
    parameters = augment.draw(data, 0, 0, len(y))
    torch.manual_seed(0)  # configure() would also pin this session's thread pools
    models = [impl.build_model(experiment.model) for impl in (pytorch_impl, keras_impl)]
    keras_impl.set_weights(models[1], pytorch_impl.get_weights(models[0]))
    losses, fed = [], []
    for impl, model in zip((pytorch_impl, keras_impl), models, strict=True):
        trainer = impl.Trainer(model, experiment.train)
        trainer.fed_batches = []
        losses.append(trainer.train_epoch(x, y, order, parameters))
        fed.append(trainer.fed_batches)
    assert len(fed[0]) == len(fed[1]) == 2
    for (torch_x, torch_y), (keras_x, keras_y) in zip(*fed, strict=True):
        np.testing.assert_array_equal(torch_y, keras_y)
        np.testing.assert_allclose(keras_x, torch_x, rtol=0, atol=AUGMENT_ATOL)
    expected = torch_augment.augment(torch.from_numpy(x), parameters).numpy()[order[:64]]
    np.testing.assert_array_equal(fed[0][0][0], expected)
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


def test_hub_paths_are_torchvisions(tmp_path, monkeypatch):
    from torchvision.models import DenseNet121_Weights

    monkeypatch.delenv("TORCH_HOME", raising=False)
    for variable in ("TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(variable, str(tmp_path / variable))
        expected = torch_transfer.checkpoint_file(DenseNet121_Weights.IMAGENET1K_V1)
        assert str(initial_weights.checkpoint_path()) == expected
        assert str(initial_weights.torch_hub_dir()) == torch.hub.get_dir()
        monkeypatch.delenv("TORCH_HOME", raising=False)
    # No checkpoint here: "auto" resolves to random features; asking for ImageNet says where.
    assert initial_weights.resolve_features(TRANSFER).model.features == "random"
    imagenet = dataclasses.replace(TRANSFER.model, features="imagenet")
    with pytest.raises(FileNotFoundError, match="densenet121-a639ec97.pth"):
        initial_weights.cache_key(imagenet, 0)


@pytest.fixture(scope="module")
def stand_in_torch_home(tmp_path_factory):
    """A torch hub cache holding a stand-in for torchvision's ImageNet checkpoint: a
    randomly initialised DenseNet-121's state_dict under the checkpoint's file name.

    Its BatchNorm variances are drawn log-uniform in [1e-5, 0.1] (a fresh model's are all
    1), as small as a trained network's, where Keras's stock epsilon 1.001e-5 instead of
    1e-5 moves the logits by 1.6e-4 (measured) against 3e-7 when aligned; gamma =
    sqrt(var + 1e-5) keeps every layer's output near its input's scale."""
    home = tmp_path_factory.mktemp("torch-home")
    torch.manual_seed(1234)
    from torchvision.models import densenet121

    state = densenet121(weights=None).state_dict()
    generator = torch.Generator().manual_seed(0)
    for name in [name for name in state if name.endswith("running_var")]:
        variance = 10 ** (-5 + 4 * torch.rand(state[name].shape, generator=generator))
        state[name] = variance
        state[name.removesuffix("running_var") + "weight"] = torch.sqrt(variance + 1e-5)
    (home / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(state, home / "hub" / "checkpoints" / initial_weights.CHECKPOINT)
    return home, state


def test_the_transfer_study_trains_in_both_frameworks(stand_in_torch_home, tmp_path, monkeypatch):
    """The runner's whole path, tiny: 32 training images at 32x32, one epoch. The torch
    hub cache holds the stand-in checkpoint, so "auto" features are "imagenet" and both
    sides start from it (read through torchvision's own loading path)."""
    home, state = stand_in_torch_home
    cache = tmp_path / "cache"
    tiny = (
        "data.image_size=32",
        "data.train_limit=32",
        "data.validation_size=16",
        "data.test_limit=32",
        "train.epochs=1",
    )
    result = run_cli(
        *("run", "--study", "transfer", "--seeds", "1", "--keras-backend", "torch"),
        *(arg for setting in tiny for arg in ("--set", setting)),
        *("--jobs", "2", "--threads", "1", "--no-progress", "--out", str(tmp_path / "out")),
        # The data where this session finds it: the cache moves to a fresh directory.
        *("--data-dir", str(fashion_mnist.locate())),
        env={"TORCH_HOME": str(home), "KVP_CACHE_DIR": str(cache)},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = {
        path.stem: json.loads(path.read_text())
        for path in (tmp_path / "out" / "runs" / "transfer").glob("*.json")
    }
    torch_run, keras_run = runs["torch-seed0"], runs["keras_torch-seed0"]
    for run in (torch_run, keras_run):
        assert run["status"] == "ok", run.get("reason")
        assert run["features"] == run["spec"]["model"]["features"] == "imagenet"
        assert run["parameter_count"] == 7_467_358  # DenseNet-121 features + 1024-500-2
        assert len(run["test_predictions"]) == 32
    assert keras_run["runtime"]["keras_backend"] == "torch"
    assert torch_run["spec_hash"] == keras_run["spec_hash"]
    assert torch_run["split_manifest_hash"] == keras_run["split_manifest_hash"]
    # Same start, same augmented batches, same frozen inference-mode features: the epoch's
    # loss agrees far inside what different starts or batches would give.
    assert torch_run["epochs"][0]["train_loss"] == pytest.approx(
        keras_run["epochs"][0]["train_loss"], rel=1e-4
    )
    assert torch_run["test_loss"] == pytest.approx(keras_run["test_loss"], rel=1e-3)

    # The weights both sides loaded: the stand-in's features, read through torchvision's
    # IMAGENET1K_V1 path, and the same network in Keras computes the same logits.
    model_spec = dataclasses.replace(TRANSFER.model, features="imagenet")
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setenv("KVP_CACHE_DIR", str(cache))
    started = initial_weights.prepared(model_spec, 0)  # the runs' cache entry, no build
    torch_model = pytorch_impl.build_model(model_spec)  # reads the stand-in itself
    features = {f"features.{k}": v for k, v in torch_model.network.features.state_dict().items()}
    for name, tensor in state.items():
        if name.startswith("features."):
            assert torch.equal(features[name], tensor), name
    head = 4  # the classifier's two kernels and biases, seeded apart from the checkpoint
    loaded = pytorch_impl.get_weights(torch_model)
    assert all(np.array_equal(a, b) for a, b in zip(loaded[:-head], started[:-head], strict=True))
    pytorch_impl.set_weights(torch_model, started)
    keras_model = keras_impl.build_model(model_spec)
    keras_impl.set_weights(keras_model, started)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(keras_impl.get_weights(keras_model), started, strict=True)
    )
    # The pair engine (compare.pair) pairs every tensor alike: its copy from the torch
    # DenseNet changes nothing in the Keras model.
    from compare import pair

    x_stem = np.random.default_rng(1).random((2, 32, 32), dtype=np.float32)
    pair.check_pair(torch_model, keras_model, x_stem, keras_inputs=x_stem, levels=("structure",))
    assert all(
        np.array_equal(a, b)
        for a, b in zip(keras_impl.get_weights(keras_model), started, strict=True)
    )
    x = np.random.default_rng(0).random((4, 32, 32), dtype=np.float32)
    torch_model.eval()
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x)).numpy()
    logits = ops.convert_to_numpy(keras_model(x, training=False))
    np.testing.assert_allclose(logits, expected, rtol=0, atol=LOGITS_ATOL)
