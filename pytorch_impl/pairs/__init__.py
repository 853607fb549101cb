"""PyTorch halves of the parity zoo: models written as users write them, not from a spec,
to prove the pair engine (`compare.pair`) on the layers people port (keras_impl.pairs
has the other halves, module by module, in the same order; compare.parity.zoo the
inputs, recipes and wrong ports).

The torch halves are the reference; porting bugs are injected on the Keras side. A
library pair's torch half takes `stock=True` for the library's own settings.
"""

from __future__ import annotations

from pytorch_impl.pairs import attention, convolution, library, recurrent, small, unet

PAIRS = {
    "resnet_bn": small.resnet_bn,
    "text_rnn": small.text_rnn,
    "layernorm_mlp": small.layernorm_mlp,
    "densenet121_transfer": small.densenet121_transfer,
    "encoder_postnorm": attention.encoder_postnorm,
    "encoder_prenorm": attention.encoder_prenorm,
    "decoder_prenorm": attention.decoder_prenorm,
    "bert_tiny": attention.bert_tiny,
    "unet": unet.unet,
    "birnn": recurrent.birnn,
    "mobile_block": convolution.mobile_block,
    "signal_1d": convolution.signal_1d,
    "volume_3d": convolution.volume_3d,
    "separable": convolution.separable,
    "scaled_mlp": convolution.scaled_mlp,
    "mobilenet_v2": library.mobilenet_v2,
    "convnext_tiny": library.convnext_tiny,
    "efficientnet_b0": library.efficientnet_b0,
    "resnet50": library.resnet50,
}


def pair_model(name: str, **port):
    # Parity: the torch halves are the reference; only a library pair takes `stock`.
    unknown = set(port) - {"stock"}
    if unknown:
        raise ValueError(f"the torch half of {name} takes no port options, got {sorted(unknown)}")
    return PAIRS[name](**port)
