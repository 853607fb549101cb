"""Figures the tutorials published, shown next to the measured ones.

Stage: spec.
"""

from __future__ import annotations

from compare.spec.schema import StudySpec

# Figures the tutorials published, shown next to the measured ones. One entry per
# experiment: `figures` is a list of {framework, metric, epoch, value, value_high,
# text}; `metric` is a result field (test_accuracy, test_loss, val_loss) read at
# `epoch` (None = the end of training), or "speed" for a claim with no number.
# `value_high` is set when the text gives a range. Figures from MNIST are context.
MLP_512_ACCURACY = (0.523, 0.533, 0.552, 0.579, 0.602, 0.609, 0.619, 0.630, 0.636, 0.643)
MLP_512_LOSS = (2.200312, 2.048256, 1.841357, 1.632644, 1.468750, 1.345098, 1.255917,
                1.195613, 1.151816, 1.116730)  # fmt: skip


def _figure(framework, metric, value, text, epoch=None, value_high=None) -> dict:
    return {
        "framework": framework,
        "metric": metric,
        "epoch": epoch,
        "value": value,
        "value_high": value_high,
        "text": text,
    }


PUBLISHED: dict[str, dict] = {
    "seed002": {
        "source": "seed 002, Udacity Intro to PyTorch part 4: the author's two scripts",
        "dataset": "Fashion-MNIST",
        "figures": [
            _figure("torch", "test_accuracy", 0.86, "86-87 %", value_high=0.87),
            _figure("keras", "test_accuracy", 0.70, "about 70 %"),
            _figure("keras", "speed", None, "Keras trains much faster than PyTorch"),
        ],
    },
    "mlp_512_tutorial": {
        "source": "seed 001, PyTorch basics: test accuracy and loss printed after each epoch",
        "dataset": "Fashion-MNIST",
        "figures": [
            *(
                _figure("torch", "test_accuracy", value, f"{100 * value:.1f} %", epoch=i + 1)
                for i, value in enumerate(MLP_512_ACCURACY)
            ),
            *(
                _figure("torch", "test_loss", value, f"{value:.4f}", epoch=i + 1)
                for i, value in enumerate(MLP_512_LOSS)
            ),
        ],
    },
    "mlp_512": {
        "source": "seed 001, PyTorch basics: test accuracy after 10 epochs",
        "dataset": "Fashion-MNIST",
        "figures": [_figure("torch", "test_accuracy", 0.643, "64.3 %")],
    },
    "cnn": {
        "source": "seeds 000/003, What is torch.nn really?: validation loss per epoch "
        "(another run: 0.3732, 0.2651)",
        "dataset": "MNIST (context only: this study runs Fashion-MNIST)",
        "figures": [
            _figure("torch", "val_loss", 0.3528, "0.3528", epoch=1),
            _figure("torch", "val_loss", 0.2879, "0.2879", epoch=2),
        ],
    },
    "cnn_adaptive": {
        "source": "seeds 000/003, What is torch.nn really?: validation loss per epoch",
        "dataset": "MNIST (context only: this study runs Fashion-MNIST)",
        "figures": [
            _figure("torch", "val_loss", 0.4404, "0.4404", epoch=1),
            _figure("torch", "val_loss", 0.2957, "0.2957", epoch=2),
        ],
    },
    "logreg": {
        "source": "seeds 000/003, What is torch.nn really?: validation loss per epoch",
        "dataset": "MNIST (context only: this study runs Fashion-MNIST)",
        "figures": [
            _figure("torch", "val_loss", 0.3051, "0.3051", epoch=1),
            _figure("torch", "val_loss", 0.2858, "0.2858", epoch=2),
        ],
    },
}


def published_for(study: StudySpec) -> dict[str, dict]:
    """The published figures of the study's experiments (see PUBLISHED)."""
    return {e.name: PUBLISHED[e.name] for e in study.experiments if e.name in PUBLISHED}
