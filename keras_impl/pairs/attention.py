"""Keras ports of the attention pairs, with keras.layers.MultiHeadAttention.

Masks mean the opposite: torch's key_padding_mask is True where a key is ignored,
Keras's attention_mask True where it is attended, so the ports invert it; a causal
torch mask is Keras's use_causal_mask.
"""

from __future__ import annotations

import keras
from keras import layers


def _attention_mask(padding, invert: bool):
    # Parity: torch's padding mask is True where a key is ignored; Keras's True where
    # one is attended: (B, T) -> (B, 1, T), broadcast over the queries.
    keep = keras.ops.logical_not(padding) if invert else padding
    return keras.ops.expand_dims(keep, 1)


def _encoder(norm_first: bool, activation, invert_mask: bool = True, num_heads: int = 4):
    x = keras.Input((6, 16), name="x")
    padding = keras.Input((6,), dtype="bool", name="padding")
    mask = _attention_mask(padding, invert_mask)
    attention = layers.MultiHeadAttention(num_heads, 16 // num_heads, dropout=0.1, name="self_attn")
    # Parity: torch's LayerNorm epsilon 1e-5, Keras's default 1e-3.
    norm1 = layers.LayerNormalization(epsilon=1e-5, name="norm1")
    norm2 = layers.LayerNormalization(epsilon=1e-5, name="norm2")
    linear1 = layers.Dense(32, activation=activation, name="linear1")
    linear2 = layers.Dense(16, name="linear2")

    def feed_forward(h):
        return layers.Dropout(0.1)(linear2(layers.Dropout(0.1)(linear1(h))))

    if norm_first:
        h = norm1(x)
        h = x + layers.Dropout(0.1)(attention(h, h, attention_mask=mask))
        h = h + feed_forward(norm2(h))
    else:
        h = norm1(x + layers.Dropout(0.1)(attention(x, x, attention_mask=mask)))
        h = norm2(h + feed_forward(h))
    # Parity: torch's mean over time counts the padded positions too.
    out = layers.Dense(3, name="head")(layers.GlobalAveragePooling1D()(h))
    return keras.Model({"x": x, "padding": padding}, out)


def encoder_postnorm(invert_mask: bool = True, num_heads: int = 4) -> keras.Model:
    return _encoder(False, "relu", invert_mask, num_heads)


def encoder_prenorm(gelu=None) -> keras.Model:
    # Parity: torch's "gelu" is exact (erf); keras.activations.gelu too, keras.ops.gelu
    # approximates by default.
    return _encoder(True, gelu or keras.activations.gelu)


def decoder_prenorm(causal: bool = True) -> keras.Model:
    target = keras.Input((5, 16), name="target")
    memory = keras.Input((7, 16), name="memory")
    norm = [layers.LayerNormalization(epsilon=1e-5, name=f"norm{i}") for i in (1, 2, 3)]
    h = norm[0](target)
    # Parity: torch's causal tgt_mask is Keras's use_causal_mask.
    h = target + layers.MultiHeadAttention(4, 4, name="self_attn")(h, h, use_causal_mask=causal)
    h = h + layers.MultiHeadAttention(4, 4, name="multihead_attn")(norm[1](h), memory)
    f = layers.Dense(16, name="linear2")(
        layers.Dense(32, activation="relu", name="linear1")(norm[2](h))
    )
    return keras.Model({"target": target, "memory": memory}, layers.Dense(5, name="head")(h + f))


def bert_tiny(epsilon: float = 1e-12, invert_mask: bool = False, gelu=None) -> keras.Model:
    """The tiny BERT classifier (pytorch_impl.pairs.attention.BERT) in Keras layers."""
    length = 10
    ids = keras.Input((length,), dtype="int32", name="input_ids")
    attention_mask = keras.Input((length,), dtype="int32", name="attention_mask")
    types = keras.Input((length,), dtype="int32", name="token_type_ids")
    positions = keras.ops.zeros_like(ids) + keras.ops.arange(length)
    h = layers.Embedding(50, 32, name="word_embeddings")(ids)
    h = h + layers.Embedding(2, 32, name="token_type_embeddings")(types)
    h = h + layers.Embedding(16, 32, name="position_embeddings")(positions)
    # Parity: BERT's LayerNorm epsilon is 1e-12 (layer_norm_eps).
    h = layers.Dropout(0.1)(layers.LayerNormalization(epsilon=epsilon, name="embeddings_norm")(h))
    # Parity: Hugging Face's attention_mask is 1 where a token is attended, as Keras's.
    mask = keras.ops.expand_dims(keras.ops.cast(attention_mask, "bool"), 1)
    if invert_mask:
        mask = keras.ops.logical_not(mask)
    for i in range(2):
        a = layers.MultiHeadAttention(4, 8, dropout=0.1, name=f"layer{i}_attention")(
            h, h, attention_mask=mask
        )
        h = layers.LayerNormalization(epsilon=epsilon, name=f"layer{i}_attention_norm")(
            h + layers.Dropout(0.1)(a)
        )
        f = layers.Dense(
            37, activation=gelu or keras.activations.gelu, name=f"layer{i}_intermediate"
        )(h)
        f = layers.Dropout(0.1)(layers.Dense(32, name=f"layer{i}_output")(f))
        h = layers.LayerNormalization(epsilon=epsilon, name=f"layer{i}_output_norm")(h + f)
    pooled = layers.Dense(32, activation="tanh", name="pooler")(h[:, 0])
    logits = layers.Dense(3, name="classifier")(layers.Dropout(0.1)(pooled))
    return keras.Model(
        {"input_ids": ids, "attention_mask": attention_mask, "token_type_ids": types}, logits
    )
