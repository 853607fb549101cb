"""The pair engine (compare.pair) on a user's pairs: the zoo's correct ports pass every
level and its wrong ports fail at the level, layer and setting they must, on every
Keras backend; the library pairs (torchvision against keras.applications); what the
engine refuses and how a user extends it; the CLI. (The pytest plugin: test_pair_plugin.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import ROOT, run_cli

from compare import pair
from compare.parity import zoo

CASES = zoo.cases()
SMALL = [name for name, case in CASES.items() if not case.library]
# On the other Keras backends, the pairs that together hold every kind of layer the
# engine maps (one process per backend: Keras fixes it at import); the rest run there
# under `python -m compare parity --zoo`.
COVERING = ["encoder_prenorm", "unet", "signal_1d", "birnn", "mobile_block", "separable"]
# On JAX, Keras compiles every operation of a new shape, model building included (the
# covering pairs took 198 s there on 2 cores, against 18 s on the torch backend): JAX
# checks the pairs of the layers new to the engine, every level.
SHARES = {"torch": COVERING, "jax": ["encoder_prenorm", "signal_1d"]}


def _assert_rows(rows):
    correct = rows[0]
    assert correct["port"] == "correct" and correct["passed"], correct["first_failure"]
    for row in rows[1:]:
        assert row["as_expected"], (
            row["pair"],
            row["port"],
            row["failed_at"],
            row["first_failure"],
        )


def _kinds(report) -> set[str]:
    return set(report.entry["details"]["structure"]["kinds"])


@pytest.mark.parametrize("name", SMALL)
def test_zoo_pair_passes_every_level_and_its_wrong_ports_fail_where_they_must(name):
    rows = zoo.check_case(CASES[name])
    _assert_rows(rows)
    checks = [c["name"] for c in rows[0]["report"].entry["checks"]]
    assert checks == list(pair.LEVELS)


def test_the_covering_pairs_hold_every_kind_of_layer_of_the_small_pairs():
    def kinds(names):
        found = set()
        for name in names:
            row = zoo.check_case(CASES[name], wrong=False, levels=("structure",))[0]
            found |= _kinds(row["report"])
        return found

    every = kinds(SMALL)
    assert {"attention", "recurrent", "conv_transpose", "groupnorm", "upsample", "pool"} <= every
    assert kinds(COVERING) >= every - {"scale"}  # the user's own converter: TensorFlow only
    assert kinds(SHARES["jax"]) >= {"attention", "conv_transpose", "instancenorm"}


def _zoo_rows_on(backend: str, names: list[str]) -> list[dict]:
    script = textwrap.dedent(
        f"""
        import json
        from compare.parity import zoo
        rows = []
        for name in {names!r}:
            for row in zoo.check_case(zoo.cases()[name]):
                rows.append({{k: v for k, v in row.items() if k != "report"}})
        print(json.dumps(rows))
        """
    )
    # XLA's optimisation level 0 halves JAX's compile time here; the programs are the same.
    flags = {"XLA_FLAGS": "--xla_backend_optimization_level=0"} if backend == "jax" else {}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT), **flags},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_the_covering_pairs_on_the_other_keras_backends(backend):
    rows = _zoo_rows_on(backend, SHARES[backend])
    assert {row["pair"] for row in rows} == set(SHARES[backend])
    for name in SHARES[backend]:
        _assert_rows([row for row in rows if row["pair"] == name])


@pytest.mark.parametrize("name", ["mobilenet_v2", "convnext_tiny", "efficientnet_b0", "resnet50"])
def test_library_pairs_map_aligned_and_fail_stock_naming_the_difference(name):
    # Every level of the aligned pairs (14-49 s each on TensorFlow, 2 cores):
    # `python -m compare parity --zoo`; the suite proves their pairing, weights and forward.
    rows = zoo.check_case(CASES[name], levels=pair.LEVELS[:3])
    _assert_rows(rows)
    if name == "resnet50":  # v1 against v1.5: the strides are named too
        stock = rows[1]["report"].entry["details"]["structure"]["problems"]
        assert any("strides torch (1, 1) vs keras (2, 2)" in p for p in stock), stock


def test_densenet121_epsilon_of_keras_applications_is_named():
    rows = zoo.check_case(CASES["densenet121"], levels=pair.LEVELS[:3])
    _assert_rows(rows)
    assert "epsilon torch 1e-05 vs keras 1.001e-05" in rows[1]["first_failure"]
    layer_pairs = rows[0]["report"].entry["details"]["structure"]["layer_pairs"]
    kinds = [p.split(" (")[1].split(")")[0] for p in layer_pairs]  # the torch module types
    assert (kinds.count("Conv2d"), kinds.count("BatchNorm2d"), kinds.count("Linear")) == (
        120,
        121,
        2,
    )


def _torch_keras():
    import keras
    import torch

    return torch, keras


def test_a_layer_no_converter_knows_is_refused_by_name_and_the_model_levels_still_run():
    torch, keras = _torch_keras()

    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(3))

        def forward(self, x):
            return x * self.scale

    torch_model = torch.nn.Sequential(torch.nn.Linear(4, 3), Scaled())
    keras_model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    report = pair.check_pair(torch_model, keras_model, x)
    assert (
        "torch module '1' (Scaled) holds scale, and no converter knows it" in report.first_failure
    )
    levels = {c["name"]: c["passed"] for c in report.entry["checks"]}
    assert levels == {"structure": False, "weights": True, "forward": True}  # scale is ones
    # Weights as given (the user ported them, here the first check did): nothing copied,
    # the unknown layer a note; a scale torch has and Keras lacks fails after the Linear.
    report = pair.check_pair(torch_model, keras_model, x, weights="as_given")
    assert report.passed and any("Scaled" in note for note in report.entry["notes"])
    with torch.no_grad():
        torch_model[1].scale.mul_(2.0)
    report = pair.check_pair(torch_model, keras_model, x, weights="as_given")
    assert report.first_failure.startswith("forward: the outputs differ by")
    assert "look after 0 (Linear) / " in report.first_failure


def test_the_users_converter_is_the_extension_point():
    # The zoo registers one for its Scale layers (compare/parity/zoo/converters.py);
    # without it the same pair is refused by name.
    from compare.parity.zoo import converters

    case = CASES["scaled_mlp"]
    converter = converters.register()
    pair.unregister(converter)
    converters._registered = None
    try:
        torch_model, keras_model = case.torch(), case.keras()
        x, y = case.inputs(np.random.default_rng(0))
        refused = pair.check_pair(torch_model, keras_model, x, levels=("structure",))
        assert "torch module 'scale' (Scale) holds gain" in refused.first_failure
    finally:
        converters.register()
    assert pair.check_pair(
        case.torch(), case.keras(), x, y=y, loss="cross_entropy", optimizers=case.optimizers()
    ).passed


def test_layout_comes_from_each_layers_data_format_not_from_shapes():
    # After a stride-2 block the map is (N, 8, 8, 8): channels-first and channels-last
    # alike. A 1x1 convolution there must still be compared channels-last.
    torch, keras = _torch_keras()
    torch.manual_seed(0)
    torch_model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 1)
    )
    inputs = keras.Input((17, 17, 3))
    h = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    keras_model = keras.Model(inputs, keras.layers.Conv2D(8, 1)(h))
    x = np.random.default_rng(0).normal(size=(4, 3, 17, 17)).astype(np.float32)
    report = pair.check_pair(torch_model, keras_model, x)
    assert report.passed, report.first_failure


def test_same_shaped_layers_pair_by_execution_order_and_names_not_declaration():
    torch, keras = _torch_keras()

    class Attention(torch.nn.Module):
        """q/k/v declared in another order than they run."""

        def __init__(self):
            super().__init__()
            self.value = torch.nn.Linear(8, 8)
            self.key = torch.nn.Linear(8, 8)
            self.query = torch.nn.Linear(8, 8)

        def forward(self, x):
            q, k, v = self.query(x), self.key(x), self.value(x)
            weights = torch.softmax(q @ k.transpose(1, 2) / 8**0.5, dim=-1)
            return weights @ v

    x_in = keras.Input((5, 8))
    q = keras.layers.Dense(8, name="query")(x_in)
    k = keras.layers.Dense(8, name="key")(x_in)
    v = keras.layers.Dense(8, name="value")(x_in)
    scores = keras.ops.softmax(keras.ops.matmul(q, keras.ops.transpose(k, (0, 2, 1))) / 8**0.5)
    keras_model = keras.Model(x_in, keras.ops.matmul(scores, v))
    x = np.random.default_rng(0).normal(size=(3, 5, 8)).astype(np.float32)
    report = pair.check_pair(Attention(), keras_model, x)
    assert report.passed, report.first_failure
    pairs = report.entry["details"]["structure"]["layer_pairs"]
    assert [p.split(" ")[0] for p in pairs[:3]] == ["query", "key", "value"], pairs


def test_real_model_inputs_outputs_and_buffers():
    # Several keyword inputs, a ModelOutput dataclass, integer buffers that are not
    # weights (position_ids), a position embedding broadcast over the batch: BERT.
    case = CASES["bert_tiny"]
    if zoo.check_case(case, wrong=False, levels=("structure",))[0].get("skipped"):
        pytest.fail("transformers is a test dependency (requirements.txt)")
    rows = zoo.check_case(case, wrong=False, levels=pair.LEVELS[:3])
    detail = rows[0]["report"].entry["details"]
    assert (
        "bert.embeddings.position_ids (1, 16) torch.int64"
        in detail["structure"]["buffers_not_weights"]
    )
    assert "bert.embeddings.position_embeddings" in detail["forward"]["layer_outputs_max_abs_diff"]


def test_bad_inputs_are_a_failed_check_with_a_reason_never_a_traceback():
    torch, keras = _torch_keras()
    torch_model = torch.nn.Linear(4, 3)
    keras_model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    report = pair.check_pair(torch_model, keras_model, np.zeros((2, 4), np.float32))
    assert report.first_failure.startswith(
        "structure: the Keras model cannot be called on these inputs"
    )
    report = pair.check_pair(
        torch_model, keras_model, {"a": np.zeros((2, 4)), "b": np.zeros((3, 4))}
    )
    assert "same batch size" in report.first_failure
    ok = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    report = pair.check_pair(torch_model, ok, np.zeros((2, 4), np.float32), output="logits")
    assert report.passed  # a plain tensor is its own only output
    with pytest.raises(ValueError, match="unknown level"):
        pair.check_pair(torch_model, ok, np.zeros((2, 4), np.float32), levels=("speed",))


def test_failure_messages_give_the_first_failure_then_a_line_per_level_and_ten_settings():
    case = CASES["resnet_bn"]
    port = next(w for w in case.wrong if w.name == "keras_bn_epsilon")
    torch_model = case.torch()
    x, y = case.inputs(np.random.default_rng(0))
    with pytest.raises(AssertionError) as raised:
        pair.assert_same_model(
            torch_model,
            port.keras(),
            x,
            y=y,
            loss="cross_entropy",
            optimizers=case.optimizers(),
            spec=pair.PairSpec(message_settings=2),
        )
    lines = str(raised.value).splitlines()
    assert lines[0].startswith("pair/keras is not the same model: structure: bn1 (BatchNorm2d)")
    assert [line.split()[0] for line in lines[2:8]] == list(pair.LEVELS)
    assert "and 2 more (the report lists them all)" in lines[-1]


def test_cli_pair_checks_a_users_factories(tmp_path, monkeypatch, capsys):
    (tmp_path / "mine.py").write_text(
        "from pytorch_impl.pairs.small import layernorm_mlp as torch_net\n"
        "from keras_impl.pairs.small import layernorm_mlp as keras_net\n"
        "from pytorch_impl.pairs.attention import encoder_postnorm as torch_encoder\n"
        "from keras_impl.pairs.attention import encoder_postnorm as keras_encoder\n"
        "import numpy as np\n"
        "def wrong():\n    return keras_net(epsilon=1e-3)\n"
        "def broken():\n    raise RuntimeError('no weights here')\n"
        "def encoder_inputs():\n"
        "    padding = np.zeros((4, 6), bool); padding[:, -1] = True\n"
        "    return {'x': np.random.default_rng(0).normal(size=(4, 6, 16)).astype('float32'),\n"
        "            'padding': padding}\n"
    )
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT}"}
    common = ("--input-shape", "20", "--classes", "3", "--keras-backends", "tensorflow")
    # As a user runs it: a fresh process importing the factories from PYTHONPATH.
    ok = run_cli("parity", "--pair", "mine:torch_net,mine:keras_net", *common, "--json", env=env)
    assert ok.returncode == 0, ok.stderr[-2000:]
    report = json.loads(ok.stdout)
    assert report["passed"] and list(report["models"]) == ["torch_net/keras"]
    assert [c["name"] for c in report["models"]["torch_net/keras"]["checks"]] == list(pair.LEVELS)
    # The failing and the refused pair in this process (Keras on TensorFlow is loaded).
    from compare import cli

    monkeypatch.syspath_prepend(str(tmp_path))
    capsys.readouterr()
    assert cli.main(["parity", "--pair", "mine:torch_net,mine:wrong", *common]) == 1
    assert "ln1 (LayerNorm) / ln1 (LayerNormalization): epsilon" in capsys.readouterr().out
    # Keyword inputs from a function of the user's.
    keyword = (
        "--inputs",
        "mine:encoder_inputs",
        "--classes",
        "3",
        "--keras-backends",
        "tensorflow",
    )
    assert cli.main(["parity", "--pair", "mine:torch_encoder,mine:keras_encoder", *keyword]) == 0
    # A factory that raises is the user's mistake: its message, not a traceback.
    assert cli.main(["parity", "--pair", "mine:torch_net,mine:broken", *common]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --pair: the keras factory broken() raised RuntimeError: no weights here "
        "(run it alone, or use --debug for the traceback)"
    )
    # The user's other mistakes: one line naming the fix, exit 2, in this process; one of
    # them in a fresh one too, where a framework's start-up logs could surround it.
    mistakes = (
        (("--pair", "mine.torch_net"), "MODULE:TORCH_FACTORY"),
        (("--pair", "nosuch:a,nosuch:b", "--input-shape", "20"), "nosuch (no such module)"),
        (("--pair", "mine:torch_net,mine:keras_net", "--input-shape", "x"), "--input-shape"),
        (("--pair", "mine:torch_net,mine:keras_net", "--inputs", "nosuch:f"), "nosuch"),
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
        (("--zoo", "--zoo-cases", "nosuch"), "unknown zoo pair 'nosuch'"),
    )
    for argv, words in mistakes:
        assert cli.main(["parity", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    refused = run_cli("parity", *mistakes[3][0], env=env)
    assert refused.returncode == 2 and "nosuch" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
