"""PyTorch halves of the parity zoo: models written as a user writes them, not from a
spec, to prove the pair engine on small architectures (keras_impl.pairs.small has the
other halves, in the same order; compare.parity.zoo the inputs and recipes).

Each builder takes the settings a porting bug changes; the defaults are the torch
defaults, which the Keras halves align to with `# Parity:` comments.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


class ResNetBN(nn.Module):
    """conv-BN-ReLU stem, one residual block (two conv-BN, identity shortcut), a stride-2
    conv-BN, global average pooling, a linear head. Input (B, 1, 12, 12)."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.block_conv1 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.block_bn1 = nn.BatchNorm2d(8)
        self.block_conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.block_bn2 = nn.BatchNorm2d(8)
        self.down = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False)
        self.down_bn = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):  # (B, 1, H, W)
        x = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.block_bn1(self.block_conv1(x)))
        x = torch.relu(x + self.block_bn2(self.block_conv2(y)))
        x = torch.relu(self.down_bn(self.down(x)))  # (B, 16, H/2, W/2)
        return self.fc(x.mean(dim=(2, 3)))


def resnet_bn() -> nn.Module:
    return ResNetBN()


class TextRNN(nn.Module):
    """Embedding -> LSTM (whole sequence) -> GRU (last step) -> linear. Input (B, T) ids."""

    def __init__(self, vocabulary: int = 50, classes: int = 3):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary, 8)
        self.lstm = nn.LSTM(8, 16, batch_first=True)
        # Parity: Keras's LSTM has one bias; torch's two (b_ih + b_hh) both train, which
        # moves their sum twice a step. bias_hh stays zero, so the sum trains as Keras's.
        with torch.no_grad():
            self.lstm.bias_hh_l0.zero_()
        self.lstm.bias_hh_l0.requires_grad = False
        self.gru = nn.GRU(16, 12, batch_first=True)
        self.fc = nn.Linear(12, classes)

    def forward(self, tokens):  # (B, T)
        x, _ = self.lstm(self.embedding(tokens))
        x, _ = self.gru(x)  # (B, T, 12)
        return self.fc(x[:, -1])


def text_rnn() -> nn.Module:
    return TextRNN()


def layernorm_mlp() -> nn.Module:
    """Linear -> LayerNorm -> ReLU, twice, then a linear head. Input (B, 20)."""
    return nn.Sequential(
        OrderedDict(
            fc1=nn.Linear(20, 32),
            ln1=nn.LayerNorm(32),
            relu1=nn.ReLU(),
            fc2=nn.Linear(32, 32),
            ln2=nn.LayerNorm(32),
            relu2=nn.ReLU(),
            head=nn.Linear(32, 3),
        )
    )


class DenseNetTransfer(nn.Module):
    """torchvision's DenseNet-121, features frozen, and the tutorial's classifier
    1024 -> 500 -> ReLU -> 2 -> log-softmax (Part 8). Input (B, 3, S, S)."""

    def __init__(self, weights=None):
        super().__init__()
        import torchvision  # only here: `import pytorch_impl` stays light

        base = torchvision.models.densenet121(weights=weights)
        self.features = base.features
        for parameter in self.features.parameters():
            parameter.requires_grad = False
        self.classifier = nn.Sequential(
            nn.Linear(1024, 500), nn.ReLU(), nn.Linear(500, 2), nn.LogSoftmax(dim=1)
        )

    def train(self, mode: bool = True):
        # Frozen features stay in inference mode (their running statistics), as a
        # Keras layer with trainable=False runs; the tutorial's notebook leaves them in
        # training mode, which normalises with each batch's statistics instead.
        super().train(mode)
        self.features.eval()
        return self

    def forward(self, x):  # (B, 3, S, S)
        x = torch.relu(self.features(x))
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def densenet121_transfer() -> nn.Module:
    return DenseNetTransfer()
