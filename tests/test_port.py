"""Port, prove, ship: `port_weights` in both directions, saved files that load without
running code and only as they were saved, `python -m compare port`'s exit codes, and
reproductions that print the check's gap in a fresh process."""

from __future__ import annotations

import json
import pathlib
import textwrap

import numpy as np
import pytest

from compare import pair
from compare.pair import repro, saved
from tests.conftest import run_cli


def _frameworks():
    import keras
    import torch

    return torch, keras


def _torch_net():
    torch, _ = _frameworks()
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 5 * 5, 3),
    )


def _keras_net(epsilon=1e-5, filters=4):
    _, keras = _frameworks()
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input((5, 5, 3)),
            layers.Conv2D(filters, 3, padding="same"),
            layers.BatchNormalization(epsilon=epsilon, momentum=0.9),
            layers.ReLU(),
            layers.Permute((3, 1, 2)),
            layers.Flatten(),
            layers.Dense(3),
        ]
    )


X = np.random.default_rng(0).normal(size=(4, 3, 5, 5)).astype(np.float32)


def test_both_directions_port_the_weights_and_prove_them():
    torch, _ = _frameworks()
    to_keras = pair.port_weights(_torch_net(), _keras_net(), X)
    assert to_keras.passed, to_keras.report.message()
    assert [c["name"] for c in to_keras.report.entry["checks"]] == [
        "structure",
        "weights",
        "forward",
    ]
    kernel = to_keras.model.layers[0].get_weights()[0]
    assert np.array_equal(kernel, to_keras.source[0].weight.detach().numpy().transpose(2, 3, 1, 0))

    keras_source = _keras_net()
    to_torch = pair.port_weights(keras_source, _torch_net(), X)
    assert to_torch.passed, to_torch.report.message()
    assert torch.equal(
        to_torch.model[4].weight, torch.as_tensor(keras_source.layers[-1].get_weights()[0].T)
    )
    assert "Keras is the reference" in to_torch.report.entry["notes"][0]


def test_a_keras_reference_is_named_first():
    report = pair.port_weights(_keras_net(epsilon=1e-3), _torch_net(), X).report
    assert not report.passed
    assert "(BatchNormalization) / 1 (BatchNorm2d)" in report.first_failure


def test_training_levels_run_when_targets_loss_and_optimizers_are_given():
    torch, keras = _frameworks()
    optimizers = pair.Optimizers(
        lambda m: torch.optim.SGD(m.parameters(), 0.1), lambda: keras.optimizers.SGD(0.1)
    )
    ported = pair.port_weights(
        _torch_net(),
        _keras_net(),
        X,
        y=np.arange(4) % 3,
        loss="cross_entropy",
        optimizers=optimizers,
    )
    assert [c["name"] for c in ported.report.entry["checks"]] == list(pair.LEVELS)
    assert ported.passed, ported.report.message()


def test_saved_weights_load_back_checked_against_their_record(tmp_path):
    torch, _ = _frameworks()
    ported = pair.port_weights(_torch_net(), _keras_net(), X)
    record = ported.save(tmp_path / "net.weights.h5")
    assert record["target"]["framework"] == "keras" and record["source"]["framework"] == "torch"
    assert record["source"]["class"] == "torch.nn.modules.container.Sequential"
    assert {"torch", "keras", "numpy"} <= set(record["versions"])
    assert [level["name"] for level in record["levels"]] == ["structure", "weights", "forward"]
    assert json.loads((tmp_path / "net.weights.h5.json").read_text()) == record
    fresh = _keras_net()
    pair.load_ported(fresh, tmp_path / "net.weights.h5")
    for a, b in zip(fresh.get_weights(), ported.model.get_weights(), strict=True):
        assert np.array_equal(a, b)

    back = pair.port_weights(_keras_net(), _torch_net(), X)
    back.save(tmp_path / "net.pt")
    state = torch.load(tmp_path / "net.pt", weights_only=True)  # no code runs to read it
    assert set(state) == set(back.model.state_dict())
    other = _torch_net()
    pair.load_ported(other, tmp_path / "net.pt")
    for name, value in back.model.state_dict().items():
        assert torch.equal(other.state_dict()[name], value), name


@pytest.fixture
def saved_pair(tmp_path):
    keras_port = pair.port_weights(_torch_net(), _keras_net(), X)
    keras_port.save(tmp_path / "net.weights.h5")
    torch_port = pair.port_weights(_keras_net(), _torch_net(), X)
    torch_port.save(tmp_path / "net.pt")
    return tmp_path


def _copy(directory, name, new, change=None):
    data = (directory / name).read_bytes()
    (directory / new).write_bytes(change(data) if change else data)
    (directory / (new + ".json")).write_bytes((directory / (name + ".json")).read_bytes())
    return directory / new


def _refused(model, path, words):
    """A one-line PortFileError naming `words`, the model left as it was."""
    before = saved.weights_hash(model)
    with pytest.raises(saved.PortFileError) as caught:
        pair.load_ported(model, path)
    message = str(caught.value)
    assert "\n" not in message and words in message, message
    assert saved.weights_hash(model) == before, "a refused load changed the model"


def test_damaged_or_mismatched_files_are_refused_in_one_line(saved_pair):
    torch, keras = _frameworks()
    d = saved_pair
    truncated = _copy(d, "net.pt", "cut.pt", lambda b: b[: len(b) // 2])
    _refused(_torch_net(), truncated, "truncated or changed")
    flipped = _copy(
        d, "net.weights.h5", "flip.weights.h5", lambda b: b[:-9] + bytes([b[-9] ^ 1]) + b[-8:]
    )
    _refused(_keras_net(), flipped, "truncated or changed")
    _refused(_keras_net(), d / "net.pt", "holds torch weights")
    _refused(_torch_net(), d / "net.weights.h5", "holds keras weights")
    narrower = _keras_net(filters=2)
    _refused(narrower, d / "net.weights.h5", "does not fit")
    shallower = keras.Sequential(
        [keras.Input((5, 5, 3)), keras.layers.Conv2D(4, 3, padding="same")]
    )
    _refused(shallower, d / "net.weights.h5", "does not fit")
    _refused(torch.nn.Sequential(torch.nn.Linear(3, 3)), d / "net.pt", "does not fit")
    (d / "alone.pt").write_bytes((d / "net.pt").read_bytes())
    _refused(_torch_net(), d / "alone.pt", "is not beside it")


def test_a_file_that_would_run_code_is_refused(saved_pair):
    """A pickle holding an object (not tensors) does not load, even with a matching
    record: torch reads it with weights_only=True."""
    torch, _ = _frameworks()
    d = saved_pair
    torch.save({"0.weight": pathlib.Path("anything")}, d / "evil.pt")
    record = json.loads((d / "net.pt.json").read_text())
    record["target"]["file_sha256"] = saved.file_hash(d / "evil.pt")
    (d / "evil.pt.json").write_text(json.dumps(record))
    _refused(_torch_net(), d / "evil.pt", "does not load as a state_dict")


def test_a_failed_proof_saves_nothing_unless_forced(tmp_path):
    ported = pair.port_weights(_torch_net(), _keras_net(epsilon=1e-3), X)
    with pytest.raises(saved.PortRefused, match="--force"):
        ported.save(tmp_path / "bad.weights.h5")
    assert not list(tmp_path.iterdir())
    record = ported.save(tmp_path / "bad.weights.h5", force=True)
    assert record["forced"] and not record["passed"]


PAIR_MODULE = textwrap.dedent(
    """
    import keras, torch

    def make_torch():
        return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))

    def make_keras():
        return keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="tanh"),
                                 keras.layers.Dense(2)])

    def make_keras_wrong():
        return keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="sigmoid"),
                                 keras.layers.Dense(2)])
    """
)


def test_the_port_command_saves_only_a_proven_port(tmp_path):
    """Exit 0 and the files; exit 1, nothing written and a reproduction; exit 2 and one
    line for a damaged file (--force and loading are tested through the API)."""
    (tmp_path / "userpair.py").write_text(PAIR_MODULE)
    env = {"PYTHONPATH": str(tmp_path)}
    base = ["port", "--input-shape", "6"]
    good = run_cli(*base, "--pair", "userpair:make_torch,userpair:make_keras", "--to", "keras",
                   "--save", str(tmp_path / "m.weights.h5"), env=env)  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert (tmp_path / "m.weights.h5").exists() and (tmp_path / "m.weights.h5.json").exists()
    wrong = run_cli(*base, "--pair", "userpair:make_torch,userpair:make_keras_wrong", "--to",
                    "torch", "--save", str(tmp_path / "w.pt"), "--repro", str(tmp_path / "r"),
                    env=env)  # fmt: skip
    assert wrong.returncode == 1
    assert not (tmp_path / "w.pt").exists() and "not saved" in wrong.stdout
    assert repro.rerun(tmp_path / "r") is None
    (tmp_path / "m.weights.h5").write_bytes((tmp_path / "m.weights.h5").read_bytes()[:-100])
    damaged = run_cli(*base, "--pair", "userpair:make_torch,userpair:make_keras", "--to", "keras",
                      "--load", str(tmp_path / "m.weights.h5"), env=env)  # fmt: skip
    assert damaged.returncode == 2
    assert damaged.stderr.count("\n") == 1 and "truncated or changed" in damaged.stderr
    assert damaged.stdout == ""


PAIR_FLAGS = [
    "--to",
    "keras",
    "--input-shape",
    "6",
    "--pair",
    "userpair:make_torch,userpair:make_keras",
]


@pytest.mark.parametrize(
    "flags, words",
    [
        (PAIR_FLAGS[2:], "--to keras"),
        ([*PAIR_FLAGS, "--save", "m.pt"], ".weights.h5"),
        ([*PAIR_FLAGS, "--force"], "--save"),
        (["--to", "keras", "--zoo"], "--save DIR"),
    ],
)
def test_port_flag_mistakes_are_one_line(tmp_path, flags, words):
    (tmp_path / "userpair.py").write_text(PAIR_MODULE)
    done = run_cli("port", *flags, env={"PYTHONPATH": str(tmp_path)})
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and words in done.stderr, (
        done.stderr
    )


ZOO_REPROS = [
    ("birnn", "padding_trained"),  # gradients
    ("unet", "transposed_kernel_3"),  # two layers that do not fit: their shapes
    ("bert_tiny", "gelu_tanh"),  # a torch function against a fused Keras activation
]


@pytest.mark.parametrize("case_name, port_name", ZOO_REPROS)
def test_a_zoo_wrong_port_reproduces_in_a_fresh_process(tmp_path, case_name, port_name):
    from compare.parity.zoo import catalog
    from compare.parity.zoo import port as zoo_port

    case = catalog.cases()[case_name]
    bug = next(w for w in case.wrong if w.name == port_name)
    source, target, x, y = zoo_port.build(case, bug, "keras")
    levels = pair.LEVELS[: max(3, pair.LEVELS.index(bug.fails_at) + 1)]
    ported = pair.port_weights(
        source, target, x, y=y, loss=case.loss, optimizers=case.optimizers(), levels=levels,
        repro=tmp_path, **case.options,
    )  # fmt: skip
    assert not ported.passed and ported.report.repro["written"], ported.report.repro
    assert repro.rerun(tmp_path) is None
    script = (tmp_path / "repro.py").read_text()
    assert "compare" not in [
        line.split()[1] for line in script.splitlines() if line.startswith("import ")
    ]


def test_a_repro_that_does_not_reproduce_is_caught(tmp_path):
    """The rerun can fail: a repro whose recorded gap is not the one it prints."""
    ported = pair.port_weights(_torch_net(), _keras_net(epsilon=1e-3), X, repro=tmp_path)
    assert ported.report.repro["written"]
    meta = json.loads((tmp_path / "repro.json").read_text())
    meta["gap"] *= 1.01
    (tmp_path / "repro.json").write_text(json.dumps(meta))
    assert "measures" in repro.rerun(tmp_path)


@pytest.mark.parametrize(
    "backend, case, to",
    [
        ("torch", "scaled_mlp", "torch"),
        # Its gradient reproduction runs under jax.value_and_grad (a traced output).
        ("jax", "birnn", "keras"),
    ],
)
def test_the_port_zoo_on_another_keras_backend(tmp_path, backend, case, to):
    """A case through `port --zoo` on another backend: saved, reloaded in a fresh
    process, each wrong port refused and reproduced."""
    from compare.parity.zoo import catalog

    done = run_cli("port", "--zoo", "--zoo-cases", case, "--to", to, "--save",
                   str(tmp_path), "--keras-backend", backend, "--json")  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    wrong = {w.name for w in catalog.cases()[case].wrong}
    assert {(r["port"], r["step"]) for r in rows} == {
        ("correct", "port"), ("correct", "reload"), *((name, "port") for name in wrong)
    }  # fmt: skip
    assert {r["port"]: r["repro"] for r in rows if r["port"] in wrong} == dict.fromkeys(
        wrong, "reproduced"
    )
