"""The random parameters of the training augmentation, drawn once for both frameworks.

Stage: data. Part 2's transforms (RandomRotation, RandomResizedCrop,
RandomHorizontalFlip) draw their parameters per image each time the image is loaded.
Here each training image gets its parameters once per epoch from a NumPy generator
seeded by (run seed, epoch), in the row order of the shared arrays, and each framework
applies exactly those (`pytorch_impl.augment`, `keras_impl.augment`), so both train on
the same transformed images. The draws follow torchvision's `get_params` of each
transform, with NumPy's generator in place of torch's.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from compare.spec.schema import DataSpec

# A third seed word keeps these draws apart from `split.epoch_order`'s (seed, epoch).
STREAM = 1
# torchvision's RandomResizedCrop tries this many boxes before its central fallback.
CROP_ATTEMPTS = 10


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Per-image parameters for one epoch, row i for the shared array's row i. A field is
    None when the spec leaves that transform off."""

    angles: np.ndarray | None  # (N,) float64 degrees, counter-clockwise
    boxes: np.ndarray | None  # (N, 4) int64: top, left, height, width of each crop
    flips: np.ndarray | None  # (N,) bool: mirror left-right


def augments(data: DataSpec) -> bool:
    """Whether the spec turns any training augmentation on."""
    return data.rotation_degrees > 0 or bool(data.crop_scale) or data.flip_probability > 0


def crop_box(rng: np.random.Generator, height: int, width: int, scale, ratio) -> tuple:
    """(top, left, height, width) as torchvision's RandomResizedCrop.get_params draws it:
    an area share in `scale` and a log-uniform aspect ratio in `ratio`, retried until
    the box fits, else the largest central box within `ratio`."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(CROP_ATTEMPTS):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect_ratio = math.exp(rng.uniform(*log_ratio))
        w = round(math.sqrt(target_area * aspect_ratio))
        h = round(math.sqrt(target_area / aspect_ratio))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        h, w = height, round(height * max(ratio))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def draw(data: DataSpec, seed: int, epoch: int, size: int) -> Augmentation | None:
    """The parameters of epoch `epoch` for `size` training images of the spec's
    image_size; None when the spec augments nothing."""
    if not augments(data):
        return None
    rng = np.random.default_rng([seed, epoch, STREAM])
    angles = boxes = flips = None
    if data.rotation_degrees > 0:
        angles = rng.uniform(-data.rotation_degrees, data.rotation_degrees, size)
    if data.crop_scale:
        side = data.image_size
        boxes = np.array(
            [crop_box(rng, side, side, data.crop_scale, data.crop_ratio) for _ in range(size)],
            dtype=np.int64,
        ).reshape(size, 4)
    if data.flip_probability > 0:
        flips = rng.random(size) < data.flip_probability
    return Augmentation(angles=angles, boxes=boxes, flips=flips)
