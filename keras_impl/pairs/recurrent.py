"""The Keras port of the bidirectional stacked RNN. torch's padding_idx row never trains;
Keras's Embedding has no padding index, so the port zeroes the padding positions'
embeddings (their gradient is then zero too)."""

from __future__ import annotations

import keras
from keras import layers


def birnn(
    mask_padding: bool = True, merge_mode: str = "concat", reset_after: bool = True
) -> keras.Model:
    tokens = keras.Input((7,), dtype="int32")
    x = layers.Embedding(30, 8, name="embedding")(tokens)
    if mask_padding:
        # Parity: torch's Embedding(padding_idx=0): row 0 is zero and never trains.
        keep = keras.ops.cast(keras.ops.not_equal(tokens, 0), x.dtype)
        x = x * keras.ops.expand_dims(keep, -1)
    # Parity: torch concatenates the two directions (merge_mode="concat").
    x = layers.Bidirectional(
        layers.LSTM(6, return_sequences=True), merge_mode=merge_mode, name="lstm_l0"
    )(x)
    x = layers.Bidirectional(layers.LSTM(6, return_sequences=True), name="lstm_l1")(x)
    x = layers.Bidirectional(
        layers.GRU(5, return_sequences=True, reset_after=reset_after), name="gru"
    )(x)
    return keras.Model(tokens, layers.Dense(3, name="head")(x[:, -1]))
