"""Shared test helpers: running the CLI in a subprocess, and small IDX files."""

from __future__ import annotations

import gzip
import os
import pathlib
import struct
import subprocess
import sys

import numpy as np
import pytest

# torch's first optimizer loads triton, which crashes the process when TensorFlow was
# loaded before it (see compare/parity.py). Tests run both frameworks in this process,
# in any order, so triton is loaded first, here.
import torch._dynamo  # noqa: F401

ROOT = pathlib.Path(__file__).resolve().parent.parent

# pytester runs a user's test suite in a subprocess (the parity plugin's test).
pytest_plugins = ("pytester",)


def run_cli(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python -m compare ARGS` as a user runs it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "compare", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_idx(path: pathlib.Path, array: np.ndarray, magic: int | None = None) -> None:
    """Write a uint8 array as a gzipped IDX file."""
    if magic is None:
        magic = 0x00000800 | array.ndim
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fake_data_dir(tmp_path):
    """Four well-formed IDX files of the real sizes (random pixels, labels 0..9)."""
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 60_000), ("t10k", 10_000)):
        write_idx(
            tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (count, 28, 28))
        )
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(count) % 10)
    return tmp_path


# The headline model only: the default study holds every catalog model, too many to
# train in the test suite.
QUICK_MLP = ("run", "--models", "mlp", "--profile", "quick", "--seeds", "2", "--no-progress")


@pytest.fixture(scope="session")
def quick_study(tmp_path_factory) -> pathlib.Path:
    """One quick-profile study (both frameworks, 2 seeds) shared by the tests that read
    results: it trains, so it runs once per test session."""
    out = tmp_path_factory.mktemp("quick") / "out"
    result = run_cli(*QUICK_MLP, "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def ray_cluster():
    """One two-node Ray cluster on this machine (one CPU each, both study nodes), for
    the whole test session: starting one costs about 6 s. Yields its address."""
    from compare.run import local_cluster

    cluster = local_cluster.start(nodes=2, cpus=1)
    try:
        yield cluster.address
    finally:
        cluster.shutdown()


@pytest.fixture(scope="session")
def fresh_runs(tmp_path_factory):
    """framework -> the worker tests' study, each run in a fresh process
    (`test_workers.fresh_results`), computed once per session (per pytest-xdist worker)
    and framework."""
    from test_workers import fresh_results

    computed = {}

    def get(framework: str) -> dict[str, dict]:
        if framework not in computed:
            computed[framework] = fresh_results(framework, tmp_path_factory.mktemp("fresh"))
        return computed[framework]

    return get
