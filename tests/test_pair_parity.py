"""The parity proof for a user's own pair (compare.parity.pair): the zoo's pairs pass
every level on every Keras backend and their wrong ports fail at the level and layer
they must; the pytest plugin works in a suite with no conftest; the CLI's --pair."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import ROOT, run_cli

from compare.parity.pair import mapping, zoo

CASES = zoo.cases()


@pytest.mark.parametrize("name", ["resnet_bn", "text_rnn", "layernorm_mlp"])
def test_zoo_pair_passes_every_level_and_its_wrong_ports_fail_where_they_must(name):
    rows = zoo.check_case(CASES[name])
    correct = rows[0]
    assert correct["port"] == "correct" and correct["passed"], correct["first_failure"]
    assert [c["name"] for c in correct["report"].entry["checks"]] == list(zoo.PAIR_LEVELS)
    for row in rows[1:]:
        assert row["as_expected"], (row["port"], row["failed_at"], row["first_failure"])


def test_densenet121_maps_and_the_keras_applications_epsilon_fails_at_a_batchnorm():
    # Every level of DenseNet-121 took 15-22 s on TensorFlow here (55 s on JAX):
    # `python -m compare parity --zoo` runs them (README); the test proves the mapping,
    # forward and the epsilon finding.
    rows = zoo.check_case(CASES["densenet121"], levels=zoo.PAIR_LEVELS[:3])
    assert rows[0]["passed"], rows[0]["first_failure"]
    stock = rows[1]
    assert stock["as_expected"] and stock["failed_at"] == "forward"
    assert "epsilon torch 1e-05 vs keras 1.001e-05" in stock["first_failure"]
    pairs = rows[0]["report"].entry["details"]["structure"]["layer_pairs"]
    kinds = [pair.split(" (")[1].split(")")[0] for pair in pairs]  # the torch module types
    assert (kinds.count("Conv2d"), kinds.count("BatchNorm2d"), kinds.count("Linear")) == (
        120,
        121,
        2,
    )


def _zoo_rows_on(backend: str, names: list[str]) -> list[dict]:
    script = textwrap.dedent(
        f"""
        import json, torch._dynamo
        from compare.parity.pair import zoo
        rows = []
        for name in {names!r}:
            for row in zoo.check_case(zoo.cases()[name]):
                rows.append({{k: v for k, v in row.items() if k != "report"}})
        print(json.dumps(rows))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "backend, names",
    [("jax", ["resnet_bn"]), ("torch", ["text_rnn", "layernorm_mlp"])],
)
def test_the_zoo_on_the_other_keras_backends(backend, names):
    # One process per backend (Keras fixes it at import). A share of the zoo each, to
    # keep the suite short: `python -m compare parity --zoo` runs all of it everywhere.
    rows = _zoo_rows_on(backend, names)
    assert {row["pair"] for row in rows} == set(names)
    for row in rows:
        assert row["as_expected"], (backend, row)


def test_mapping_refuses_unknown_layers_and_names_them():
    import keras
    import torch

    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(3))

        def forward(self, x):
            return x * self.scale

    with pytest.raises(mapping.MappingError, match="'1' \\(Scaled\\)"):
        mapping.torch_layers(torch.nn.Sequential(torch.nn.Linear(4, 3), Scaled()))
    # Orders that differ are a kind mismatch with the remedy; an explicit mapping fixes it.
    torch_model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    norm_first = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.LayerNormalization(name="ln"),
            keras.layers.Dense(4, name="fc"),
        ]
    )
    with pytest.raises(mapping.MappingError, match="mapping="):
        mapping.pair_layers(torch_model, norm_first)
    pairs = mapping.pair_layers(torch_model, norm_first, {"0": "fc", "1": "ln"})
    assert [(p.torch_name, p.keras_name) for p in pairs] == [("0", "fc"), ("1", "ln")]


def test_grouped_depthwise_and_1d_convolutions_map_exactly():
    import keras
    import torch

    from compare.parity.pair import check_pair

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    images = torch.nn.Sequential(
        torch.nn.Conv2d(4, 8, 3, groups=4, padding=1),  # depthwise, multiplier 2
        torch.nn.Conv2d(8, 8, 3, groups=2, padding=1),
    )
    keras_images = keras.Sequential(
        [
            keras.Input((6, 6, 4)),
            keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same"),
            keras.layers.Conv2D(8, 3, groups=2, padding="same"),
        ]
    )
    sequences = torch.nn.Sequential(torch.nn.Conv1d(4, 6, 3, padding=1), torch.nn.BatchNorm1d(6))
    keras_sequences = keras.Sequential(
        [
            keras.Input((10, 4)),
            keras.layers.Conv1D(6, 3, padding="same"),
            keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9),
        ]
    )
    # No declared input: built on the first call, channels last (the torch side convolves).
    unbuilt = keras.Sequential(
        [keras.layers.Conv2D(3, 3, padding="same"), keras.layers.BatchNormalization(epsilon=1e-5)]
    )
    plain = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.BatchNorm2d(3))
    for torch_model, keras_model, shape in (
        (images, keras_images, (2, 4, 6, 6)),
        (sequences, keras_sequences, (3, 4, 10)),
        (plain, unbuilt, (2, 2, 5, 5)),
    ):
        x = rng.normal(size=shape).astype(np.float32)
        report = check_pair(torch_model, keras_model, x, levels=("structure", "weights", "forward"))
        assert report.passed, report.first_failure


def test_this_suite_uses_the_plugin_fixture_too(assert_same_model):
    # The fixture comes from the installed package's pytest11 entry point, not a conftest.
    import torch

    torch_model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.LayerNorm(4))
    case = CASES["layernorm_mlp"]
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 20)).astype(np.float32), rng.integers(0, 3, 8)
    report = assert_same_model(
        case.torch(), case.keras(), x, y=y, loss="cross_entropy", optimizers=case.optimizers()
    )
    assert report.passed and report.first_failure is None
    with pytest.raises(AssertionError, match=r"structure: torch layer '1' \(LayerNorm\)"):
        import keras

        assert_same_model(
            torch_model, keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)]), x[:, :6]
        )


PLUGIN_TEST = """
import numpy as np, torch, keras
from compare.parity.pair import Optimizers
from keras_impl.pairs import resnet_bn as keras_port
from pytorch_impl.pairs import resnet_bn

def test_my_port(assert_same_model, port=keras_port):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 1, 12, 12)).astype("float32"), rng.integers(0, 10, 16)
    sgd = Optimizers(lambda m: torch.optim.SGD(m.parameters(), lr=0.05),
                     lambda: keras.optimizers.SGD(0.05))
    assert_same_model(resnet_bn(), port(), x, y=y, loss="cross_entropy", optimizers=sgd)

def test_epsilon(assert_same_model):
    test_my_port(assert_same_model, lambda: keras_port(epsilon=1e-3))

def test_momentum(assert_same_model):
    test_my_port(assert_same_model, lambda: keras_port(momentum=0.99))

def test_padding(assert_same_model):
    test_my_port(assert_same_model, lambda: keras_port(down_padding="same"))
"""


def test_the_pytest_plugin_needs_no_conftest(pytester):
    # A user's suite: one file, no conftest, no plugin named; the installed package's
    # pytest11 entry point gives it the fixture.
    pytester.makepyfile(test_user=PLUGIN_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "-p", "no:xdist")
    result.assert_outcomes(passed=1, failed=3)
    text = result.stdout.str()
    assert "forward: bn1 (BatchNorm2d) / bn1 (BatchNormalization)" in text  # epsilon
    assert "epsilon torch 1e-05 vs keras 0.001" in text
    assert "lockstep: step 1: bn1.moving_mean" in text  # momentum
    assert "forward: down (Conv2d) / down (Conv2D)" in text  # padding
    assert "padding torch (1, 1) on both sides vs keras 'same'" in text


def test_cli_pair_checks_a_users_factories(tmp_path, monkeypatch, capsys):
    (tmp_path / "mine.py").write_text(
        "from pytorch_impl.pairs import layernorm_mlp as torch_net\n"
        "from keras_impl.pairs import layernorm_mlp as keras_net\n"
        "def wrong():\n    return keras_net(epsilon=1e-3)\n"
        "def broken():\n    raise RuntimeError('no weights here')\n"
    )
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT}"}
    common = ("--input-shape", "20", "--classes", "3", "--keras-backends", "tensorflow")
    # As a user runs it: a fresh process importing the factories from PYTHONPATH.
    ok = run_cli("parity", "--pair", "mine:torch_net,mine:keras_net", *common, "--json", env=env)
    assert ok.returncode == 0, ok.stderr[-2000:]
    report = json.loads(ok.stdout)
    assert report["passed"] and list(report["models"]) == ["torch_net/keras"]
    assert [c["name"] for c in report["models"]["torch_net/keras"]["checks"]] == list(
        zoo.PAIR_LEVELS
    )
    # The failing and the refused pair in this process (Keras on TensorFlow is loaded).
    from compare import cli

    monkeypatch.syspath_prepend(str(tmp_path))
    capsys.readouterr()
    assert cli.main(["parity", "--pair", "mine:torch_net,mine:wrong", *common]) == 1
    assert "forward: ln1 (LayerNorm)" in capsys.readouterr().out
    # A factory that raises is the user's mistake: its message, not a traceback.
    assert cli.main(["parity", "--pair", "mine:torch_net,mine:broken", *common]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --pair: the keras factory broken() raised RuntimeError: no weights here "
        "(run it alone, or use --debug for the traceback)"
    )
    for argv, words in (
        (("--pair", "mine.torch_net"), "MODULE:TORCH_FACTORY"),
        (("--pair", "nosuch:a,nosuch:b", "--input-shape", "20"), "nosuch (no such module)"),
        (("--pair", "mine:torch_net,mine:keras_net", "--input-shape", "x"), "--input-shape"),
        (
            (
                "--pair",
                "mine:torch_net,mine:keras_net",
                "--input-shape",
                "20",
                "--optimizer",
                "lbfgs:1",
            ),
            "--optimizer",
        ),
    ):
        refused = run_cli("parity", *argv, env=env)
        assert refused.returncode == 2 and words in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
