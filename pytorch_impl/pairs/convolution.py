"""Convolution pairs: a mobile block (stride-2 stem on an even input, depthwise,
hard-swish, ReLU6, squeeze-excitation with hard-sigmoid, PReLU, ceil-mode max pooling,
average pooling without the padded cells), a 1-D signal net (dilation, instance norm,
a transposed convolution), a 3-D volume net, a depthwise + pointwise pair (Keras's
SeparableConv2D) and an MLP with a layer of the user's own (a learned scale the engine
only knows through a registered converter)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class MobileBlock(nn.Module):
    def __init__(self, classes: int = 5):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(8)
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.depthwise_bn = nn.BatchNorm2d(8)
        self.squeeze = nn.Conv2d(8, 4, 1)
        self.excite = nn.Conv2d(4, 8, 1)
        self.project = nn.Conv2d(8, 16, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(16)
        self.prelu = nn.PReLU(16)
        self.max_pool = nn.MaxPool2d(3, 2, padding=1, ceil_mode=True)
        self.avg_pool = nn.AvgPool2d(3, 1, padding=1, count_include_pad=False)
        self.head = nn.Linear(16, classes)

    def forward(self, x):  # (B, 3, 16, 16)
        x = F.hardswish(self.stem_bn(self.stem(x)))  # (B, 8, 8, 8)
        y = F.relu6(self.depthwise_bn(self.depthwise(x)))
        gate = F.hardsigmoid(self.excite(F.relu(self.squeeze(F.adaptive_avg_pool2d(y, 1)))))
        y = torch.relu(self.prelu(self.project_bn(self.project(y * gate))))
        y = self.avg_pool(self.max_pool(y))  # (B, 16, 5, 5)
        return self.head(y.mean(dim=(2, 3)))


def mobile_block() -> nn.Module:
    return MobileBlock()


class Signal1D(nn.Module):
    def __init__(self, classes: int = 3):
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 3, dilation=2, padding=2)
        self.norm = nn.InstanceNorm1d(8, affine=True)
        self.up = nn.ConvTranspose1d(8, 4, 4, stride=2, padding=1)
        self.head = nn.Linear(4, classes)

    def forward(self, x):  # (B, 4, 16)
        x = self.up(torch.relu(self.norm(self.conv(x))))  # (B, 4, 32)
        return self.head(x.mean(dim=2))


def signal_1d() -> nn.Module:
    return Signal1D()


class Volume3D(nn.Module):
    def __init__(self, classes: int = 3):
        super().__init__()
        self.conv = nn.Conv3d(1, 4, 3, padding=1)
        self.norm = nn.BatchNorm3d(4)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.head = nn.Linear(4, classes)

    def forward(self, x):  # (B, 1, 6, 6, 6)
        return self.head(torch.flatten(self.pool(torch.relu(self.norm(self.conv(x)))), 1))


def volume_3d() -> nn.Module:
    return Volume3D()


class Separable(nn.Module):
    def __init__(self, classes: int = 3):
        super().__init__()
        self.depthwise = nn.Conv2d(3, 3, 3, padding=1, groups=3, bias=False)
        self.pointwise = nn.Conv2d(3, 8, 1)
        self.head = nn.Linear(8, classes)

    def forward(self, x):  # (B, 3, 8, 8)
        return self.head(torch.relu(self.pointwise(self.depthwise(x))).mean(dim=(2, 3)))


def separable() -> nn.Module:
    return Separable()


class Scale(nn.Module):
    """A learned per-feature scale: a layer no converter knows until one is registered."""

    def __init__(self, features: int):
        super().__init__()
        self.gain = nn.Parameter(torch.linspace(0.5, 1.5, features))

    def forward(self, x):
        return x * self.gain


class ScaledMLP(nn.Module):
    def __init__(self, classes: int = 3):
        super().__init__()
        self.fc = nn.Linear(12, 16)
        self.scale = Scale(16)
        self.head = nn.Linear(16, classes)

    def forward(self, x):  # (B, 12)
        return self.head(torch.tanh(self.scale(self.fc(x))))


def scaled_mlp() -> nn.Module:
    return ScaledMLP()
