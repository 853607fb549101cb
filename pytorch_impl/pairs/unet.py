"""A small U-Net as diffusion backbones build them: convolutions with GroupNorm and SiLU,
max pooling down, bilinear upsampling and a transposed convolution up, skip
concatenations. Input (B, 3, 16, 16), output (B, 2, 16, 16)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class Block(nn.Module):
    def __init__(self, channels_in: int, channels_out: int):
        super().__init__()
        self.conv = nn.Conv2d(channels_in, channels_out, 3, padding=1)
        self.norm = nn.GroupNorm(4, channels_out)

    def forward(self, x):
        return F.silu(self.norm(self.conv(x)))


class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc1, self.enc2, self.mid = Block(3, 8), Block(8, 16), Block(16, 16)
        self.dec2 = Block(32, 16)
        self.up1 = nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1)
        self.dec1 = Block(16, 8)
        self.out = nn.Conv2d(8, 2, 1)

    def forward(self, x):  # (B, 3, 16, 16)
        a = self.enc1(x)  # (B, 8, 16, 16)
        b = self.enc2(F.max_pool2d(a, 2))  # (B, 16, 8, 8)
        c = self.mid(F.max_pool2d(b, 2))  # (B, 16, 4, 4)
        up = F.interpolate(c, scale_factor=2, mode="bilinear", align_corners=False)
        d = self.dec2(torch.cat([up, b], dim=1))  # (B, 16, 8, 8)
        e = self.dec1(torch.cat([self.up1(d), a], dim=1))  # (B, 8, 16, 16)
        return self.out(e)


def unet() -> nn.Module:
    return UNet()
