"""The CLI: user mistakes end in one line and exit code 2; --help stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT, run_cli


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--bogus"], "unrecognized arguments: --bogus"),
        (["run", "--seeds", "0"], "must be >= 1"),
        (["run", "--threads", "x"], "expected an integer"),
        (["run", "--models", "resnet"], "unknown model 'resnet'"),
        (["run", "--frameworks", "jax"], "unknown framework 'jax'"),
        (["run", "--profile", "fast"], "unknown profile 'fast'"),
        (["run", "--device", "tpu"], "unknown device 'tpu'"),
        (["run", "--set", "train.epochs=0"], "train.epochs must be >= 1"),
        (["run", "--study", "missing.toml"], "study file missing.toml not found"),
        (["parity", "--models", "resnet"], "unknown model 'resnet'"),
        (["parity", "--data-dir", "/nonexistent"], "not found in /nonexistent"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(args, message):
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_study_file_gives_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[experiment]]\nname = "a"\n[experiment.train]\nlearnin_rate = 0.1\n')
    result = run_cli("run", "--study", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "unknown key" in result.stderr and "learnin_rate" in result.stderr


def test_missing_data_file_gives_one_line(tmp_path):
    result = run_cli(
        "run", "--profile", "quick", "--data-dir", str(tmp_path), "--out", str(tmp_path / "out")
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "train-images-idx3-ubyte.gz not found" in result.stderr
    assert "make data" in result.stderr


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
