"""Attention pairs: transformer blocks built from nn.MultiheadAttention (post-norm with
ReLU, pre-norm with GELU, a causal pre-norm decoder with cross-attention), and a
tiny-config Hugging Face BERT classifier (`transformers`, a test dependency)."""

from __future__ import annotations

from torch import nn


class Encoder(nn.Module):
    """nn.TransformerEncoderLayer over (B, T, 16) with a key padding mask, mean over
    time, a linear head."""

    def __init__(self, norm_first: bool, activation: str):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(
            16, 4, 32, dropout=0.1, activation=activation, batch_first=True, norm_first=norm_first
        )
        self.head = nn.Linear(16, 3)

    def forward(self, x, padding):  # (B, T, 16), (B, T) True where padded
        return self.head(self.layer(x, src_key_padding_mask=padding).mean(dim=1))


def encoder_postnorm() -> nn.Module:
    return Encoder(norm_first=False, activation="relu")


def encoder_prenorm() -> nn.Module:
    return Encoder(norm_first=True, activation="gelu")


class Decoder(nn.Module):
    """nn.TransformerDecoderLayer (pre-norm, causal self-attention, cross-attention to a
    memory), a linear head per position."""

    def __init__(self):
        super().__init__()
        self.layer = nn.TransformerDecoderLayer(
            16, 4, 32, dropout=0.0, batch_first=True, norm_first=True
        )
        self.head = nn.Linear(16, 5)

    def forward(self, target, memory):  # (B, T, 16), (B, S, 16)
        causal = nn.Transformer.generate_square_subsequent_mask(target.shape[1])
        return self.head(self.layer(target, memory, tgt_mask=causal, tgt_is_causal=True))


def decoder_prenorm() -> nn.Module:
    return Decoder()


BERT = dict(
    vocab_size=50,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=16,
    type_vocab_size=2,
    num_labels=3,
    hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1,
)


def bert_tiny() -> nn.Module:
    """transformers' BertForSequenceClassification, a tiny config (random weights)."""
    import transformers  # a test dependency: only here

    return transformers.BertForSequenceClassification(transformers.BertConfig(**BERT))
