"""The training augmentation in torchvision (mirrors keras_impl.augment).

Part 2's transforms with their random parameters given, not drawn: the runner draws them
once per image and epoch (`compare.data.augment`) for both frameworks. Each image goes
through torchvision's functional ops one at a time, as a Dataset's transform would:
rotate, crop and resize back, mirror. Images are (N, H, W) grey tensors; the model
repeats them to RGB and normalises afterwards (the tutorial's Normalize comes last too).
"""

from __future__ import annotations

import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as transforms


def augment(images: torch.Tensor, augmentation) -> torch.Tensor:
    """(N, H, W) -> (N, H, W): row i transformed with row i of `augmentation`'s
    parameters (`compare.data.augment.Augmentation`; None fields are skipped)."""
    size = list(images.shape[-2:])
    out = []
    for index in range(len(images)):
        image = images[index : index + 1]  # (C=1, H, W), as torchvision takes it
        if augmentation.angles is not None:
            # Parity: bilinear, where RandomRotation defaults to nearest: with nearest,
            # a sample position one float32 rounding away from a pixel boundary picks
            # the other pixel, so two correct implementations would disagree by whole
            # pixel values. fill=None: zero padding inside grid_sample, as Keras's
            # constant fill 0 reads; fill=0 would also scale the border by an
            # interpolated mask. Centre: the image centre, torchvision's default.
            image = transforms.rotate(
                image,
                float(augmentation.angles[index]),
                interpolation=InterpolationMode.BILINEAR,
                expand=False,
                center=None,
                fill=None,
            )
        if augmentation.boxes is not None:
            top, left, height, width = (int(v) for v in augmentation.boxes[index])
            # Crop, then bilinear back to the full size with half-pixel centres
            # (align_corners=False); the crop is never larger than the image, so this
            # only enlarges and the antialias filter changes nothing.
            image = transforms.resized_crop(
                image,
                top,
                left,
                height,
                width,
                size,
                interpolation=InterpolationMode.BILINEAR,
                antialias=True,
            )
        if augmentation.flips is not None and augmentation.flips[index]:
            image = transforms.horizontal_flip(image)
        out.append(image)
    return torch.cat(out)
