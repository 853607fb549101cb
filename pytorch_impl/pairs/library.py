"""torchvision's models against keras.applications': MobileNetV2, ConvNeXt-Tiny,
EfficientNet-B0 and ResNet-50, random weights (no download), ten classes. `stock=True`
keeps torchvision's own settings; the default is the torch side of an aligned port:

- MobileNetV2: no dropout before the classifier (keras.applications has none);
- ConvNeXt-Tiny: no stochastic depth (keras.applications' default drop_path_rate is 0);
- EfficientNet-B0: no stochastic depth (the Keras half switches its drop-connect off);
- ResNet-50: Keras's is v1 (the stride in each stage's first 1x1 convolution, biases on
  every convolution), torchvision's v1.5 (the stride in the 3x3, no biases): the aligned
  torch half moves the strides and gives the convolutions biases.
"""

from __future__ import annotations

from torch import nn


def mobilenet_v2(stock: bool = False) -> nn.Module:
    import torchvision

    model = torchvision.models.mobilenet_v2(num_classes=10)
    if not stock:
        model.classifier[0].p = 0.0  # Parity: keras.applications' MobileNetV2 has no dropout
    return model


def convnext_tiny(stock: bool = False) -> nn.Module:
    import torchvision

    # Parity: keras.applications' ConvNeXt has drop_path_rate 0 by default, torchvision 0.1.
    return torchvision.models.convnext_tiny(
        num_classes=10, stochastic_depth_prob=0.1 if stock else 0.0
    )


def efficientnet_b0(stock: bool = False) -> nn.Module:
    import torchvision

    return torchvision.models.efficientnet_b0(
        num_classes=10, stochastic_depth_prob=0.2 if stock else 0.0
    )


def resnet50(stock: bool = False) -> nn.Module:
    import torchvision

    model = torchvision.models.resnet50(num_classes=10)
    if stock:
        return model
    # Parity: Keras's ResNet50 is v1: each stage's stride in its first 1x1 convolution.
    for stage in (model.layer2, model.layer3, model.layer4):
        block = stage[0]
        block.conv1.stride, block.conv2.stride = block.conv2.stride, (1, 1)
    # Parity: keras.applications' convolutions all have biases; torchvision's none.
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Conv2d) and child.bias is None:
                with_bias = nn.Conv2d(
                    child.in_channels,
                    child.out_channels,
                    child.kernel_size,
                    child.stride,
                    child.padding,
                    bias=True,
                )
                with_bias.weight.data.copy_(child.weight.data)
                setattr(module, name, with_bias)
    return model
