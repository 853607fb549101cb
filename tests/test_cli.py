"""The CLI: user mistakes end in one line and exit code 2; --help stays light."""

from __future__ import annotations

import gzip
import subprocess
import sys

import pytest
from conftest import ROOT, run_cli

from compare.data import fashion_mnist


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The files the table points at as {tmp}: broken study files, data, output paths."""
    root = tmp_path_factory.mktemp("bad-inputs")
    (root / "not-toml.toml").write_text("name = [")
    experiment = '[[experiment]]\nname = "a"\nbase = "mlp"\n[experiment.train]\n'
    (root / "unknown-key.toml").write_text(experiment + "learnin_rate = 0.1\n")
    (root / "wrong-type.toml").write_text(experiment + 'epochs = "ten"\n')
    (root / "a-file").write_text("")
    faults = {
        "no-data": None,
        "corrupt-data": b"not gzip at all",
        "truncated-data": gzip.compress(bytes(1000))[:-12],
        "checksum-data": gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x02ab"),
    }
    for directory, content in faults.items():
        (root / directory).mkdir()
        for name in fashion_mnist.FILES:
            if content is not None:
                (root / directory / f"{name}.gz").write_bytes(content)
    return root


DATA_FIX = ("train-images-idx3-ubyte.gz", "make data")

# (case, arguments, what the one line must say). {tmp} is the `inputs` directory.
# Each case of issue #7's list of bad inputs, as a user would type it.
BAD_INPUTS = [
    ("unknown flag", ["run", "--bogus"], ["unrecognized arguments: --bogus"]),
    ("unknown command", ["frobnicate"], ["invalid choice"]),
    ("zero seeds", ["run", "--seeds", "0"], ["must be >= 1"]),
    ("threads not a number", ["run", "--threads", "x"], ["expected an integer"]),
    ("unknown model", ["run", "--models", "resnet"], ["unknown model 'resnet'"]),
    ("unknown framework", ["run", "--frameworks", "jax"], ["unknown framework 'jax'"]),
    ("unknown profile", ["run", "--profile", "fast"], ["unknown profile 'fast'"]),
    ("unknown device", ["run", "--device", "tpu"], ["unknown device 'tpu'"]),
    ("unknown optimizer", ["run", "--set", "train.optimizer='adagrad'"], ["'adagrad' is unknown"]),
    ("unknown loss", ["run", "--set", "train.loss='hinge'"], ["train.loss = 'hinge' is unknown"]),
    ("unknown spec key", ["run", "--set", "train.lr=0.1"], ["unknown key 'train.lr'"]),
    ("wrong type", ["run", "--set", "train.batch_size=abc"], ["batch_size must be an integer"]),
    ("batch size 0", ["run", "--set", "train.batch_size=0"], ["train.batch_size must be between"]),
    (
        "batch larger than the training set",
        ["run", "--profile", "quick", "--set", "train.batch_size=2001"],
        ["training set size 2000"],
    ),
    (
        "zero learning rate",
        ["run", "--set", "train.learning_rate=0"],
        ["learning_rate must be > 0"],
    ),
    (
        "negative learning rate",
        ["run", "--set", "train.learning_rate=-0.1"],
        ["learning_rate must be > 0"],
    ),
    ("zero epochs", ["run", "--set", "train.epochs=0"], ["train.epochs must be >= 1"]),
    ("dropout 1", ["run", "--set", "model.dropout_rate=1.0"], ["dropout_rate must be in [0, 1)"]),
    (
        "dropout < 0",
        ["run", "--set", "model.dropout_rate=-0.1"],
        ["dropout_rate must be in [0, 1)"],
    ),
    ("no layers", ["run", "--set", "model.hidden_sizes=[]"], ["hidden_sizes must not be empty"]),
    (
        "validation leaves no training data",
        ["run", "--set", "data.validation_size=60000"],
        ["leave no training data"],
    ),
    (
        "study file missing",
        ["run", "--study", "missing.toml"],
        ["study file missing.toml not found"],
    ),
    ("study file not TOML", ["run", "--study", "{tmp}/not-toml.toml"], ["is not valid TOML"]),
    (
        "study file unknown key",
        ["run", "--study", "{tmp}/unknown-key.toml"],
        ["unknown key", "train.learnin_rate"],
    ),
    ("study file wrong type", ["run", "--study", "{tmp}/wrong-type.toml"], ["must be an integer"]),
    ("gpu not visible", ["run", "--device", "gpu"], ["--device gpu", "use --device cpu or auto"]),
    ("out under a file", ["run", "--out", "{tmp}/a-file/out"], ["cannot be written"]),
    ("out is a file", ["run", "--out", "{tmp}/a-file"], ["cannot be written", "another --out"]),
    ("data missing", ["run", "--data-dir", "{tmp}/no-data"], ["not found", *DATA_FIX]),
    ("data not gzip", ["run", "--data-dir", "{tmp}/corrupt-data"], ["is corrupt", *DATA_FIX]),
    ("data truncated", ["run", "--data-dir", "{tmp}/truncated-data"], ["is corrupt", *DATA_FIX]),
    (
        "data checksum",
        ["run", "--data-dir", "{tmp}/checksum-data"],
        ["fails its checksum", *DATA_FIX],
    ),
    ("parity unknown model", ["parity", "--models", "resnet"], ["unknown model 'resnet'"]),
    ("parity data missing", ["parity", "--data-dir", "{tmp}/no-data"], ["not found", *DATA_FIX]),
]


@pytest.mark.parametrize(("case", "args", "expected"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_gives_one_line_and_exit_2(inputs, tmp_path, case, args, expected):
    args = [arg.replace("{tmp}", str(inputs)) for arg in args]
    out = tmp_path / "out"
    if args[0] == "run" and "--out" not in args:
        args += ["--out", str(out)]
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for text in expected:
        assert text in lines[0]
    assert "Traceback" not in result.stderr
    # Nothing was started, so nothing but the lock may exist under the output directory.
    if out.is_dir():
        assert [p.name for p in out.rglob("*")] in ([], [".lock"])


def test_debug_shows_the_traceback(tmp_path):
    result = run_cli("--debug", "run", "--data-dir", str(tmp_path), "--out", str(tmp_path))
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_help_imports_no_framework():
    code = (
        "import sys, compare.cli\n"
        "try:\n    compare.cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'jax') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_list_shows_models_for_both_frameworks():
    result = run_cli("list")
    assert result.returncode == 0
    assert "mlp" in result.stdout and "torch,keras" in result.stdout


def test_parity_rejects_an_unknown_mode_in_one_line():
    result = run_cli("parity", "--models", "two_layer_net", "--modes", "tuned,fast")
    assert result.returncode == 2
    assert "unknown execution mode 'fast'" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["seed002", "seed002_3_optimizer"])
def test_parity_refuses_an_experiment_whose_sides_differ_on_purpose(name):
    # It used to check plain mlp under seed002's name and record "seed002: passed".
    result = run_cli("parity", "--models", name)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {name} differs between the frameworks on purpose")
    assert "--models mlp" in line


def test_run_and_parity_spell_the_keras_backends_flag_alike():
    # `make compare` passes one KERAS_BACKENDS to both commands with one flag.
    from compare import cli

    parser = cli.build_parser()
    for spelling in ("--keras-backends", "--keras-backend"):
        args = parser.parse_args(["run", spelling, "tensorflow,jax"])
        assert args.keras_backends == ["tensorflow", "jax"]
    args = parser.parse_args(["parity", "--keras-backends", "jax", "--jobs", "3"])
    assert args.keras_backends == ["jax"] and args.jobs == 3
