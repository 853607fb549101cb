"""The library pairs of the zoo: torchvision's models against keras.applications'
(MobileNetV2, ConvNeXt-Tiny, EfficientNet-B0, ResNet-50), each aligned (a correct port,
33x33 inputs: Keras's stride-2 padding is symmetric there) and stock (a wrong port: the
libraries' own settings, which must fail naming their real differences).

Stage: parity.
"""

from __future__ import annotations

from compare.parity.zoo.cases import LIBRARY, Case, WrongPort, _images


def cases(m: dict, sgd) -> list[Case]:
    """The library cases, from the zoo's (torch, Keras) builders `m`."""
    found = []
    for name, size in (
        ("mobilenet_v2", 33),
        ("convnext_tiny", 33),
        ("efficientnet_b0", 33),
        ("resnet50", 33),
    ):
        torch_half, keras_half = m[name]
        stock_size = 32 if name == "mobilenet_v2" else size
        found.append(
            Case(
                name,
                torch_half,
                lambda keras_half=keras_half, size=size: keras_half(image_size=size),
                _images((4, 3, size, size), 10),
                "cross_entropy",
                sgd,
                (
                    WrongPort(
                        "stock",
                        lambda keras_half=keras_half, s=stock_size: keras_half(
                            stock=True, image_size=s
                        ),
                        "structure",
                        *STOCK[name],
                        torch=lambda torch_half=torch_half: torch_half(stock=True),
                        inputs=_images((4, 3, stock_size, stock_size), 10),
                    ),
                ),
                options={"spec": LIBRARY},
                library=True,
            )
        )
    return found


# What each stock library pair must fail naming first: the real difference.
STOCK = {
    # torchvision's dropout, which Keras lacks; at an even size, 'same' at stride 2.
    "mobilenet_v2": ("classifier.0", None),
    "convnext_tiny": ("stochastic_depth", None),  # torchvision's stochastic depth
    "efficientnet_b0": ("normalization", None),  # keras.applications' preprocessing layer
    "resnet50": ("conv", None),  # v1 against v1.5: biases and strides
}
