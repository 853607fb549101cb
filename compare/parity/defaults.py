"""The defaults that differ between Keras and PyTorch, next to what the study sets.

Stage: parity.

Each framework reports its own defaults, read from default-constructed objects of the
installed version (`keras_impl.defaults`, `pytorch_impl.defaults`); this module pairs
them and adds the value the study's specs set, so the table cannot drift from either
the frameworks or the study. The rows go into `parity.json` for the report.
"""

from __future__ import annotations

from compare.spec.schema import ExperimentSpec, conv_output_shape

NOT_USED = "not used by the study"


def _per_experiment(experiments: list[ExperimentSpec], value) -> str:
    """One value when every experiment agrees, else `name: value` for each."""
    values = {e.name: value(e) for e in experiments}
    distinct = set(values.values())
    if len(distinct) == 1:
        return distinct.pop()
    return "; ".join(f"{name}: {v}" for name, v in values.items())


def _has_convolutions(experiment: ExperimentSpec) -> bool:
    return experiment.model.architecture == "cnn"


def _has_dense(experiment: ExperimentSpec) -> bool:
    return experiment.model.logits_from == "dense"


def _flatten(experiment: ExperimentSpec) -> str:
    if not _has_convolutions(experiment):
        return NOT_USED
    _channels, height, width = conv_output_shape(experiment.model)
    if height * width == 1 or not _has_dense(experiment):
        return "the map is pooled to 1x1 before the flatten: the order cannot matter"
    return "canonical (C, H, W) rows; Keras permutes the first dense kernel's rows"


def _padding(experiment: ExperimentSpec) -> str:
    if not _has_convolutions(experiment):
        return NOT_USED
    pad = experiment.model.conv_padding
    if pad == 0:
        return "no padding: 'valid' on both sides"
    return f"torch padding={pad}; Keras ZeroPadding2D({pad}) + 'valid' (symmetric, exact)"


def _adam(experiment: ExperimentSpec) -> bool:
    return experiment.train.optimizer == "adam"


def _when(condition, text_of):
    return lambda e: text_of(e) if condition(e) else NOT_USED


def study_values(experiments: list[ExperimentSpec]) -> dict[str, str]:
    """What the study sets for each row, from the specs."""
    adam_formula = {
        "native": "each side's stock update (train.adam_formula = native)",
        "torch": "torch's update on both sides (train.adam_formula = torch)",
    }
    rules = {
        "dense kernel init (784->256)": _when(_has_dense, lambda e: e.model.kernel_init),
        "dense bias init (784->256)": _when(_has_dense, lambda e: e.model.bias_init),
        "conv kernel init (3x3, 1->32)": _when(_has_convolutions, lambda e: e.model.kernel_init),
        "conv bias init (3x3, 1->32)": _when(_has_convolutions, lambda e: e.model.bias_init),
        "dense kernel layout": _when(_has_dense, lambda e: "canonical (in, out); torch transposes"),
        "conv kernel layout": _when(
            _has_convolutions, lambda e: "canonical (kH, kW, in, out); torch permutes"
        ),
        "image layout": _when(
            _has_convolutions, lambda e: "each side's own: (B, 28, 28) reshaped to NHWC / NCHW"
        ),
        "flatten order after convolutions": _flatten,
        "'same' padding, 3x3 stride 2 on 28x28": _padding,
        "adam epsilon": _when(_adam, lambda e: f"{e.train.epsilon:g}"),
        "adam epsilon as added to sqrt(v_hat), step 1": _when(
            _adam, lambda e: f"{e.train.epsilon:g}, {adam_formula[e.train.adam_formula]}"
        ),
        "sgd learning rate": _when(
            lambda e: e.train.optimizer == "sgd", lambda e: f"{e.train.learning_rate:g}"
        ),
        "batchnorm momentum": lambda e: NOT_USED,
        "batchnorm epsilon": lambda e: NOT_USED,
        "loss reduction": lambda e: "mean over the batch on both sides",
        "dropout when not training": lambda e: (
            f"dropout_rate {e.model.dropout_rate:g}; evaluation in inference mode on both sides"
        ),
    }
    return {what: _per_experiment(experiments, rule) for what, rule in rules.items()}


def table(experiments: list[ExperimentSpec], keras_values: dict, torch_values: dict) -> list[dict]:
    """Rows {what, keras, torch, study} for every default on which the frameworks differ,
    given each framework's own defaults (`framework_defaults` of the contract)."""
    study = study_values(experiments)
    return [
        {
            "what": what,
            "keras": keras_values[what],
            "torch": torch_values[what],
            "study": study[what],
        }
        for what in torch_values
        if keras_values[what] != torch_values[what]
    ]
