"""Bidirectional, stacked recurrent layers over token embeddings with a padding index:
Embedding(padding_idx=0) -> LSTM(num_layers=2, bidirectional) -> GRU(bidirectional) ->
linear on the last step. Input (B, T) token ids, 0 padding."""

from __future__ import annotations

import torch
from torch import nn


class BiRNN(nn.Module):
    def __init__(self, vocabulary: int = 30, classes: int = 3):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary, 8, padding_idx=0)
        self.lstm = nn.LSTM(8, 6, num_layers=2, bidirectional=True, batch_first=True)
        # Parity: Keras's LSTM has one bias; torch's two both train (their sum moves
        # twice a step). bias_hh stays zero, so the sum trains as Keras's one bias.
        with torch.no_grad():
            for name, parameter in self.lstm.named_parameters():
                if name.startswith("bias_hh"):
                    parameter.zero_()
                    parameter.requires_grad = False
        self.gru = nn.GRU(12, 5, bidirectional=True, batch_first=True)
        self.head = nn.Linear(10, classes)

    def forward(self, tokens):  # (B, T)
        x, _ = self.lstm(self.embedding(tokens))
        x, _ = self.gru(x)  # (B, T, 10)
        return self.head(x[:, -1])


def birnn() -> nn.Module:
    return BiRNN()
