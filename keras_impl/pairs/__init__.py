"""Keras halves of the parity zoo: the ports of pytorch_impl.pairs' models, module by
module, in the same order. The correct port is the default; each builder's keyword
arguments are the porting bugs the zoo injects (a Keras default left in place, another
padding, a mask not inverted), and a library pair's `stock=True` is
keras.applications' model as it comes.
"""

from __future__ import annotations

from keras_impl.pairs import attention, convolution, library, recurrent, small, unet

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
    return PAIRS[name](**port)
