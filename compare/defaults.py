"""The defaults that differ between Keras and PyTorch, next to what the study sets.

Each framework reports its own defaults, read from default-constructed objects of the
installed version (`keras_impl.defaults`, `pytorch_impl.defaults`); this module pairs
them and adds the value the study's specs set, so the table cannot drift from either
the frameworks or the study. The rows go into `parity.json` for the report.
"""

from __future__ import annotations

from compare.spec import ExperimentSpec

CONVOLUTIONAL = ()  # architectures with convolutions; none in the catalog yet
NOT_USED = "not used by the study"


def _per_experiment(experiments: list[ExperimentSpec], value) -> str:
    """One value when every experiment agrees, else `name: value` for each."""
    values = {e.name: value(e) for e in experiments}
    distinct = set(values.values())
    if len(distinct) == 1:
        return distinct.pop()
    return "; ".join(f"{name}: {v}" for name, v in values.items())


def _uses_convolutions(experiment: ExperimentSpec) -> bool:
    return experiment.model.architecture in CONVOLUTIONAL


def _conv(text: str):
    return lambda e: text if _uses_convolutions(e) else NOT_USED


def _adam(text_of):
    return lambda e: text_of(e.train) if e.train.optimizer == "adam" else NOT_USED


def study_values(experiments: list[ExperimentSpec]) -> dict[str, str]:
    """What the study sets for each row, from the specs."""
    adam_formula = {
        "native": "each side's stock update (train.adam_formula = native)",
        "torch": "torch's update on both sides (train.adam_formula = torch)",
    }
    rules = {
        "dense kernel init (784->256)": lambda e: e.model.kernel_init,
        "dense bias init (784->256)": lambda e: e.model.bias_init,
        "conv kernel init (3x3, 1->32)": _conv("model.kernel_init"),
        "conv bias init (3x3, 1->32)": _conv("model.bias_init"),
        "dense kernel layout": lambda e: "canonical (in, out); torch transposes",
        "conv kernel layout": _conv("canonical (kH, kW, in, out); torch permutes"),
        "image layout": lambda e: "each side's own" if _uses_convolutions(e) else NOT_USED,
        "flatten order after convolutions": _conv("first dense kernel permuted"),
        "'same' padding, 3x3 stride 2 on 28x28": _conv("explicit symmetric padding"),
        "adam epsilon": _adam(lambda t: f"{t.epsilon:g}"),
        "adam epsilon as added to sqrt(v_hat), step 1": _adam(
            lambda t: f"{t.epsilon:g}, {adam_formula[t.adam_formula]}"
        ),
        "sgd learning rate": lambda e: (
            f"{e.train.learning_rate:g}" if e.train.optimizer == "sgd" else NOT_USED
        ),
        "batchnorm momentum": lambda e: NOT_USED,
        "batchnorm epsilon": lambda e: NOT_USED,
        "loss reduction": lambda e: "mean over the batch on both sides",
        "dropout when not training": lambda e: (
            f"dropout_rate {e.model.dropout_rate:g}; evaluation in inference mode on both sides"
        ),
    }
    return {what: _per_experiment(experiments, rule) for what, rule in rules.items()}


def table(experiments: list[ExperimentSpec]) -> list[dict]:
    """Rows {what, keras, torch, study} for every default on which the frameworks differ."""
    from keras_impl import defaults as keras_defaults
    from pytorch_impl import defaults as torch_defaults

    keras_values = keras_defaults.framework_defaults()
    torch_values = torch_defaults.framework_defaults()
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
