"""Spec validation, overrides and study files: every mistake names its key."""

from __future__ import annotations

import pytest

from compare.errors import UserError
from compare.spec import catalog, parse, schema, studies
from compare.spec.validate import validate

MLP = catalog.MODELS["mlp"]


def test_override_types_are_checked():
    changed = parse.apply_overrides(MLP, ["train.learning_rate=0.01", "model.hidden_sizes=[32]"])
    assert changed.train.learning_rate == 0.01 and changed.model.hidden_sizes == (32,)
    assert parse.apply_overrides(MLP, ["train.learning_rate=1"]).train.learning_rate == 1.0
    with pytest.raises(UserError, match="train.batch_size must be an integer"):
        parse.apply_overrides(MLP, ["train.batch_size=abc"])
    with pytest.raises(UserError, match="train.batch_size must be an integer"):
        parse.apply_overrides(MLP, ["train.batch_size=1.5"])
    with pytest.raises(UserError, match="unknown key 'train.learnin_rate'"):
        parse.apply_overrides(MLP, ["train.learnin_rate=0.1"])
    with pytest.raises(UserError, match="unknown section 'trian'"):
        parse.apply_overrides(MLP, ["trian.learning_rate=0.1"])
    with pytest.raises(UserError, match="use section.key=value"):
        parse.apply_overrides(MLP, ["learning_rate"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.batch_size=0", "train.batch_size must be between 1"),
        ("train.batch_size=60000", "train.batch_size must be between 1"),
        ("train.learning_rate=0", "train.learning_rate must be > 0"),
        ("train.learning_rate=-0.1", "train.learning_rate must be > 0"),
        ("train.epochs=0", "train.epochs must be >= 1"),
        ("model.dropout_rate=1.0", "model.dropout_rate must be in"),
        ("model.dropout_rate=-0.1", "model.dropout_rate must be in"),
        ("model.hidden_sizes=[]", "model.hidden_sizes must not be empty"),
        ("data.validation_size=60000", "it would leave no training data"),
        ("train.optimizer='adagrad'", "train.optimizer = 'adagrad' is unknown"),
        ("train.loss='hinge'", "train.loss = 'hinge' is unknown"),
        ("model.activation='gelu'", "model.activation = 'gelu' is unknown"),
        ("train.adam_formula='keras'", "train.adam_formula = 'keras' is unknown"),
    ],
)
def test_impossible_values_are_rejected(override, message):
    with pytest.raises(UserError, match=message):
        validate(parse.apply_overrides(MLP, [override]))


def test_spec_hash_is_stable_and_sensitive():
    assert MLP.spec_hash() == catalog.MODELS["mlp"].spec_hash()
    assert parse.apply_overrides(MLP, ["train.epochs=3"]).spec_hash() != MLP.spec_hash()


def test_spec_round_trips_through_dict():
    assert parse.from_dict(schema.ExperimentSpec, MLP.to_dict()) == MLP


def test_study_file(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        'name = "mine"\nseeds = 2\n[[experiment]]\nname = "wide"\nbase = "mlp"\n'
        "[experiment.model]\nhidden_sizes = [512, 128]\n[experiment.train]\nepochs = 3\n"
    )
    study = studies.load_study_file(path)
    assert study.name == "mine" and study.seeds == 2
    (experiment,) = study.experiments
    assert experiment.model.hidden_sizes == (512, 128)
    assert experiment.train.epochs == 3 and experiment.train.learning_rate == 0.003


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = [", "is not valid TOML"),
        ('nmae = "x"\n[[experiment]]\nname="a"', "unknown key 'nmae'"),
        ('[[experiment]]\nname = "a"\n[experiment.train]\nlr = 1', "unknown key .*train.lr"),
        ('[[experiment]]\nname = "a"\nbase = "nope"', "is not a built-in model"),
        ('[[experiment]]\nname = "a"\n[experiment.train]\nepochs = "ten"', "must be an integer"),
        ('name = "x"', "needs at least one"),
        ('[[experiment]]\nbase = "mlp"', "needs a name"),
    ],
)
def test_bad_study_files(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        studies.load_study_file(path)


def test_quick_profile_is_small():
    quick = studies.apply_profile(MLP, "quick")
    assert quick.train.epochs <= 2 and quick.data.train_limit <= 5_000
    assert quick.spec_hash() != MLP.spec_hash()
    with pytest.raises(UserError, match="unknown profile"):
        studies.apply_profile(MLP, "fast")
