"""The parity levels on small batches, and the traps each level must catch.

Every level is run on the real MLP and real Fashion-MNIST; each trap builds a known
wrong variant and asserts that the level's check fails on it.
"""

from __future__ import annotations

import dataclasses
import json

import keras_traps
import numpy as np
import pytest
import torch

from compare import cli
from compare.data import split
from compare.parity import defaults, levels, training
from compare.parity import suite as parity
from compare.parity.levels import K, T
from compare.spec import catalog, studies
from compare.spec.schema import ParitySpec

MLP = studies.apply_profile(catalog.MODELS["mlp"], "quick")
# Small batches and 30 steps keep these fast; the CLI test runs the full ParitySpec.
SPEC = ParitySpec(batch_size=64, steps=30)


def with_train(experiment, **changes):
    return dataclasses.replace(experiment, train=dataclasses.replace(experiment.train, **changes))


@pytest.fixture(scope="module")
def shared():
    parity.configure(threads=1, seed=SPEC.seed)
    return split.load_shared(MLP.data)


@pytest.fixture(scope="module")
def batch(shared):
    return shared.x_test[: SPEC.batch_size], shared.y_test[: SPEC.batch_size]


def test_weights_round_trip_exactly_both_ways():
    check = levels.check_weights(MLP)
    assert check.passed and check.max_abs_diff == 0.0


def test_structure_forward_and_gradients_agree(batch):
    x, y = batch
    torch_model, keras_model = levels.build_pair(MLP)
    structure = levels.check_structure(torch_model, keras_model, x)
    assert structure.passed, structure.detail
    assert structure.detail["parameter_count"]["torch"] == 218_058
    forward = levels.check_forward(torch_model, keras_model, x, SPEC)
    assert forward.passed and 0 < forward.max_abs_diff <= 1e-5, forward
    gradients = levels.check_gradients(MLP, T.get_weights(torch_model), x, y, SPEC)
    assert gradients.passed, gradients.detail
    assert len(gradients.detail["tensors"]) == 6


def test_untransplanted_weights_fail_forward(batch):
    # Each side's own initialisation: the same spec, but not the same function.
    x, _ = batch
    torch_model, keras_model = T.build_model(MLP.model), K.build_model(MLP.model)
    assert not levels.check_forward(torch_model, keras_model, x, SPEC).passed


def initial_weights():
    """The MLP's torch initialisation after seeding, as `python -m compare parity` draws it."""
    parity.configure(threads=1, seed=SPEC.seed)
    return T.get_weights(T.build_model(MLP.model))


@pytest.mark.parametrize(
    "train",
    [
        {"optimizer": "sgd", "learning_rate": 0.1, "momentum": 0.9, "nesterov": True},
        {"optimizer": "adam", "adam_formula": "torch"},
    ],
    ids=["sgd-nesterov", "adam-aligned"],
)
def test_optimizer_and_lockstep_agree(shared, train):
    experiment = with_train(MLP, **train)
    weights = initial_weights()
    optimizer = training.check_optimizer(experiment, weights, SPEC)
    assert optimizer.passed, optimizer.detail
    # In float32 Adam amplifies rounding where a gradient is near zero, so this level
    # depends on the initial weights (see ParitySpec.lockstep_adam_atol); the seed is fixed.
    lockstep = training.check_lockstep(experiment, shared, weights, SPEC)
    assert lockstep.passed, lockstep.detail
    assert lockstep.detail["steps"] == SPEC.steps
    if train["optimizer"] == "adam":
        # In float64 the aligned update rules leave nothing but float64 rounding.
        assert max(lockstep.detail["float64"]["params_max_abs_diff_after_step"].values()) < 1e-11


def test_trap_stock_adam_fails_optimizer_and_lockstep(shared):
    stock = with_train(MLP, optimizer="adam", adam_formula="native")
    weights = initial_weights()
    optimizer = training.check_optimizer(stock, weights, SPEC)
    assert not optimizer.passed and optimizer.max_abs_diff > 100 * SPEC.optimizer_atol
    lockstep = training.check_lockstep(stock, shared, weights, SPEC)
    assert not lockstep.passed and lockstep.max_abs_diff > 10 * SPEC.lockstep_adam_atol
    # Not rounding: in float64 stock Adam is just as far apart.
    float64 = lockstep.detail["float64"]["params_max_abs_diff_after_step"]
    assert max(float64.values()) > 10 * SPEC.lockstep_adam_atol


# A conv -> flatten -> dense network (28 -> 14 -> 7, 16 channels): the flatten order
# matters here, unlike in the seed CNNs, which pool to 1x1 first.
CONV_DENSE = dataclasses.replace(
    studies.apply_profile(catalog.MODELS["cnn"], "quick"),
    name="conv_dense",
    model=dataclasses.replace(
        catalog.MODELS["cnn"].model,
        conv_filters=(8, 16),
        pooling="none",
        hidden_sizes=(32,),
        logits_from="dense",
    ),
)


def test_conv_flatten_dense_passes_forward_and_gradients(batch):
    x, y = batch
    torch_model, keras_net = levels.build_pair(CONV_DENSE)
    assert levels.check_structure(torch_model, keras_net, x).passed
    assert levels.check_weights(CONV_DENSE).passed
    assert levels.check_forward(torch_model, keras_net, x, SPEC).passed
    assert levels.check_gradients(CONV_DENSE, T.get_weights(torch_model), x, y, SPEC).passed


@pytest.mark.parametrize("trap", ["same_padding", "unpermuted_flatten"])
def test_trap_wrong_conv_ports_fail_forward_and_gradients(batch, trap, monkeypatch):
    # Keras padding="same" at stride 2 (odd pixel bottom/right only), and a flatten whose
    # first dense kernel keeps Keras's (H, W, C) row order.
    x, y = batch
    torch_model = T.build_model(CONV_DENSE.model)
    wrong = keras_traps.build_trap_model(CONV_DENSE.model, trap)
    levels.transplant(torch_model, wrong)
    assert levels.check_structure(torch_model, wrong, x).passed  # same shapes: the trap
    forward = levels.check_forward(torch_model, wrong, x, SPEC)
    assert not forward.passed and forward.max_abs_diff > 100 * SPEC.forward_atol
    # Named where the two part (the layer-by-layer comparison of compare.pair):
    # the padding at the first convolution, with the default that differs there; the row
    # order at the first dense layer, after every convolution agreed.
    first = forward.detail["first_failure"]
    if trap == "same_padding":
        assert "(Conv2d) / conv2d" in first and "(Conv2D): output differs" in first, first
        assert (
            "it is the first layer compared" in first and "padding torch [(1, 1), (1, 1)]" in first
        )
    else:
        assert "(Linear) / " in first and "every layer up to" in first, first
        gaps = list(forward.detail["layer_outputs_max_abs_diff"].items())
        named = [name for name, _ in gaps].index(first.split(" ")[0])
        assert named > 0 and all(gap < 1e-4 for _, gap in gaps[:named])  # convolutions agree
    monkeypatch.setattr(K, "build_model", lambda spec: keras_traps.build_trap_model(spec, trap))
    gradients = levels.check_gradients(CONV_DENSE, T.get_weights(torch_model), x, y, SPEC)
    assert not gradients.passed and "kernel" in gradients.detail["first_failure"]


def test_data_level_and_its_trap(shared, monkeypatch):
    loaders = levels.check_loaders()
    assert all(loader["identical"] for loader in loaders.values()), loaders
    check = levels.check_data(MLP, shared, loaders)
    assert check.passed, check.detail

    # Trap: Keras fed through fit's own shuffling instead of the shared order.
    def shuffled(x, y, batch_size, order=None):
        own_order = np.random.default_rng(12345).permutation(len(x))
        yield x[own_order], y[own_order]

    monkeypatch.setattr(K, "training_batches", shuffled)
    trapped = levels.check_data(MLP, shared, loaders)
    assert not trapped.passed
    assert not trapped.detail["training_inputs"]["keras"]["identical"]

    # Trap: PyTorch's index batching ignoring the epoch order it is given.
    def in_place(x, y, batch_size, order=None):
        yield torch.from_numpy(x), torch.from_numpy(y)

    monkeypatch.setattr(T, "training_batches", in_place)
    trapped = levels.check_data(MLP, shared, loaders)
    assert not trapped.detail["training_inputs"]["torch"]["identical"]


def test_defaults_table_is_read_from_the_frameworks():
    rows = {
        row["what"]: row
        for row in defaults.table(
            [MLP], levels.K.framework_defaults(), levels.T.framework_defaults()
        )
    }
    assert rows["adam epsilon"]["keras"] == "1e-07" and rows["adam epsilon"]["torch"] == "1e-08"
    assert rows["adam epsilon"]["study"] == "1e-08"
    assert rows["dense kernel layout"]["keras"] == "(in, out)"
    assert rows["flatten order after convolutions"]["torch"] == "(C, H, W)"
    assert "top/left 0, bottom/right 1" in rows["'same' padding, 3x3 stride 2 on 28x28"]["keras"]
    assert rows["dense kernel init (784->256)"]["keras"].startswith("GlorotUniform")
    assert all(row["keras"] != row["torch"] for row in rows.values())


def test_cli_reports_json_and_exit_code(tmp_path, capsys, monkeypatch):
    # Every Keras backend by default: TensorFlow in this process, jax and torch in one
    # subprocess each, merged into one report.
    reports = []
    real_run = parity.run_backends
    monkeypatch.setattr(
        parity, "run_backends", lambda *a, **k: reports.append(real_run(*a, **k)) or reports[-1]
    )
    # A small MLP with the headline's recipe (Adam) for one epoch, one parity seed: the
    # command's path on every backend at a fraction of the catalog's cost (the stock
    # optimizer's horizon is the study's run); test_merge_seeds covers several seeds.
    study = tmp_path / "small.toml"
    study.write_text(
        'name = "small"\n[[experiment]]\nname = "small_mlp"\nbase = "mlp"\n'
        "[experiment.model]\nhidden_sizes = [32]\n[experiment.train]\nepochs = 1\n"
    )
    out = tmp_path / "out"
    command = ["parity", "--study", str(study), "--json", "--seeds", "1", "--out", str(out)]
    assert cli.main(command) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((out / "parity.json").read_text())
    assert printed["passed"] and written["schema"] == parity.SCHEMA
    assert set(written["keras_backends"]) == set(parity.KERAS_BACKENDS)
    entries = {
        "small_mlp/keras": "tensorflow",
        "small_mlp/keras_jax": "jax",
        "small_mlp/keras_torch": "torch",
    }
    assert set(written["models"]) == set(entries)
    for name, backend in entries.items():
        model = written["models"][name]
        assert model["keras_backend"] == backend
        assert written["keras_backends"][backend]["versions"]["keras"]
        assert [check["name"] for check in model["checks"]] == list(parity.LEVELS)
        for check in model["checks"]:
            assert check["passed"] and check["tolerance"] and check["max_abs_diff"] >= 0
        assert set(model["details"]) == set(parity.LEVELS)
        gap = model["details"]["stock_optimizer"]["stock_formula_gap"]
        assert gap["differs"] and "epsilon" in gap["why"] and gap["max_relative_deviation"] > 0
    # What the other backends cannot match is said, with the measured difference.
    assert any("float32" in note for note in written["models"]["small_mlp/keras_torch"]["notes"])
    row = written["defaults"][0]
    assert {"what", "keras", "torch", "study"} <= set(row)
    assert set(row["keras_by_backend"]) == set(parity.KERAS_BACKENDS)

    # The same report with one level failed: the command fails and names the entry.
    (report,) = reports
    entry = report["models"]["small_mlp/keras_jax"]
    entry["checks"][2]["passed"] = entry["passed"] = report["passed"] = False
    monkeypatch.setattr(parity, "run_backends", lambda *a, **k: report)
    assert cli.main(["parity", "--study", str(study), "--seeds", "1"]) == 1
    assert "FAILED for small_mlp/keras_jax" in capsys.readouterr().out


def test_cli_rejects_an_unknown_keras_backend(capsys):
    assert cli.main(["parity", "--models", "mlp", "--keras-backends", "theano"]) == 2
    assert "unknown Keras backend 'theano'" in capsys.readouterr().err


def test_merge_seeds_passes_a_level_only_if_every_seed_passed():
    def entry(passed_lockstep, gap):
        checks = [
            {"name": "forward", "passed": True, "max_abs_diff": 1e-7, "max_rel_diff": None},
            {"name": "lockstep", "passed": passed_lockstep, "max_abs_diff": gap, "max_rel_diff": 0},
        ]
        return {
            "passed": passed_lockstep,
            "checks": checks,
            "details": {"lockstep": {"gap": gap}},
        }

    merged = parity.merge_seeds([entry(True, 1e-6), entry(False, 3e-4)], [0, 1])
    assert not merged["passed"]
    assert [c["passed"] for c in merged["checks"]] == [True, False]
    assert merged["checks"][1]["max_abs_diff"] == 3e-4
    assert merged["seeds"] == {"0": [], "1": ["lockstep"]}
    # The details shown are the failing seed's.
    assert merged["details_seed"] == 1 and merged["details"]["lockstep"]["gap"] == 3e-4


def test_weights_level_fails_when_the_contract_forgets_the_flatten_permutation(monkeypatch):
    # get_weights and set_weights both skip the (C, H, W) <-> (H, W, C) row permutation:
    # every round trip is exact, yet Keras holds other weights than torch; the pair
    # engine's mapping, written apart, disagrees at the first dense layer.
    import keras_impl.model

    monkeypatch.setattr(keras_impl.model, "_to_canonical", lambda kernel, flattened: kernel)
    monkeypatch.setattr(keras_impl.model, "_from_canonical", lambda kernel, flattened: kernel)
    check = levels.check_weights(CONV_DENSE)
    assert not check.passed and check.detail["engine_mapping_agrees"] is False
    assert check.detail["first_failure"].startswith("dense1.kernel"), check.detail


def test_shards_deal_each_backend_into_groups_of_about_equal_cost():
    models = [catalog.MODELS[name] for name in catalog.MODELS]
    assert parity.shards(models, ["tensorflow", "jax"], jobs=1) == [
        ("tensorflow", models),
        ("jax", models),
    ]
    planned = parity.shards(models, ["tensorflow", "jax"], jobs=2)
    assert [backend for backend, _ in planned] == ["tensorflow"] * 2 + ["jax"] * 2
    first, second = (group for _, group in planned[:2])
    # Every model once per backend; the dearest two (the convolutions) apart, the
    # regression nets (the cheapest) dealt last.
    assert sorted(e.name for e in first + second) == sorted(catalog.MODELS)
    assert {"cnn", "cnn_adaptive"} & {e.name for e in first} == {"cnn"}
    assert first[-1].model.architecture in ("two_layer_net", "dynamic_net")
    # More jobs than models: one model per process, no empty process.
    assert len(parity.shards(models[:2], ["tensorflow"], jobs=8)) == 2


def test_run_backends_splits_a_backend_between_this_process_and_another(monkeypatch):
    # Two regression nets with two jobs: one shard here, the other sent to another
    # process. That process is stood in for by a report made beforehand, here (a real
    # one costs ~10 s of imports; test_cli_reports_json_and_exit_code runs real ones):
    # what is tested is the dealing, the queue and the merge of one backend's shards.
    nets = [catalog.MODELS["two_layer_net"], catalog.MODELS["dynamic_net"]]
    made = {e.name: parity.run([e], 1, levels=("structure",)) for e in nets}
    ran_elsewhere = []

    def elsewhere(backend, experiments, *args):
        ran_elsewhere.append((backend, [e.name for e in experiments]))
        (experiment,) = experiments
        return made[experiment.name]

    monkeypatch.setattr(parity, "_run_in_subprocess", elsewhere)
    report = parity.run_backends(nets, 1, ["tensorflow"], jobs=2, levels=("structure",))
    assert len(ran_elsewhere) == 1 and ran_elsewhere[0][0] == "tensorflow"
    assert set(report["models"]) == {"two_layer_net/keras", "dynamic_net/keras"}
    assert report["passed"] and report["keras_backends"]["tensorflow"]["passed"]
    # The defaults table covers both, not only the shard that came back first.
    study = {row["what"]: row["study"] for row in report["defaults"]}
    assert "two_layer_net: standard_normal" in study["dense kernel init (784->256)"]
    assert "dynamic_net: uniform_fan_in" in study["dense kernel init (784->256)"]
