"""The training augmentation in Keras ops (mirrors pytorch_impl.augment).

Part 2's transforms with their random parameters given, not drawn: the runner draws them
once per image and epoch (`compare.data.augment`) for both frameworks. The whole batch
goes through at once, in `keras.ops` only, so it runs on every backend: rotate, crop and
resize back, mirror. Images are (N, H, W) grey tensors; the model repeats them to RGB
and normalises afterwards (the tutorial's Normalize comes last too).
"""

from __future__ import annotations

import math

from keras import ops


def rotation_transforms(angles, height: int, width: int):
    """(N, 8) `ops.image.affine_transform` rows turning each image by its angle
    (degrees, counter-clockwise on screen) about the image centre.

    Parity: torchvision rotates about the centre of the pixel grid, ((W - 1) / 2,
    (H - 1) / 2) in pixel-index coordinates (its grid_sample runs with
    align_corners=False on pixel-centre coordinates), and samples output pixel p at
    input R(angle) (p - c) + c; these rows say the same in affine_transform's
    output-to-input form, where pixel centres sit at integer coordinates.
    """
    radians = ops.convert_to_tensor(angles, dtype="float32") * (math.pi / 180)
    cos, sin = ops.cos(radians), ops.sin(radians)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    zeros = ops.zeros_like(cos)
    return ops.stack(
        [cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, zeros, zeros],
        axis=1,
    )


def resize_weights(start, length, size_in: int, size_out: int, mirror=None):
    """(N, size_out, size_in) matrices: row i of image n samples its crop
    [start, start + length) bilinearly at (i + 0.5) * length / size_out - 0.5,
    clamped to the crop's edge pixels, torch's align_corners=False resize of the crop;
    with `mirror` (N,) true, output positions are taken right to left."""
    start = ops.cast(ops.convert_to_tensor(start), "float32")[:, None]
    length = ops.cast(ops.convert_to_tensor(length), "float32")[:, None]
    position = ops.arange(size_out, dtype="float32")[None, :]
    if mirror is not None:
        flipped = ops.convert_to_tensor(mirror, dtype="bool")[:, None]
        position = ops.where(flipped, (size_out - 1) - position, position)
    source = ops.maximum((position + 0.5) * (length / size_out) - 0.5, 0.0)
    low = ops.floor(source)
    fraction = (source - low)[..., None]
    high = ops.minimum(low + 1, length - 1)
    return (
        ops.one_hot(ops.cast(start + low, "int32"), size_in) * (1 - fraction)
        + ops.one_hot(ops.cast(start + high, "int32"), size_in) * fraction
    )


def augment(images, augmentation):
    """(N, H, W) -> (N, H, W): row i transformed with row i of `augmentation`'s
    parameters (`compare.data.augment.Augmentation`; None fields are skipped)."""
    images = ops.convert_to_tensor(images, dtype="float32")
    count, height, width = images.shape
    if augmentation.angles is not None:
        # Parity: bilinear with a constant fill of 0 outside the image: torchvision's
        # grid_sample with zero padding (pytorch_impl.augment says why not nearest).
        turned = ops.image.affine_transform(
            ops.expand_dims(images, -1),
            rotation_transforms(augmentation.angles, height, width),
            interpolation="bilinear",
            fill_mode="constant",
            fill_value=0.0,
            data_format="channels_last",
        )
        images = ops.squeeze(turned, -1)
    boxes, mirror = augmentation.boxes, augmentation.flips
    if boxes is None and mirror is None:
        return images
    if boxes is None:  # the whole image: an identity resize that only mirrors
        boxes = [[0, 0, height, width]] * count
    boxes = ops.convert_to_tensor(boxes, dtype="int32")
    # Parity: a crop then a resize is separable, so each is a matrix per image: rows
    # (N, H, H) @ image (N, H, W) @ columns^T (N, W, W); the mirror reverses the column
    # matrix's rows. torchvision crops the tensor, then interpolates it.
    rows = resize_weights(boxes[:, 0], boxes[:, 2], height, height)
    columns = resize_weights(boxes[:, 1], boxes[:, 3], width, width, mirror)
    return ops.matmul(ops.matmul(rows, images), ops.transpose(columns, (0, 2, 1)))
