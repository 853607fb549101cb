"""IDX parsing (including corrupt input), file lookup, and the shared split."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from conftest import write_idx

from compare.data import fashion_mnist, split
from compare.errors import UserError
from compare.spec.schema import DataSpec


def test_real_files_pass_their_checksums():
    raw = fashion_mnist.load_raw()
    assert raw.train_images.shape == (60_000, 28, 28)
    assert raw.test_labels.shape == (10_000,)
    assert np.bincount(raw.train_labels).tolist() == [6_000] * 10


def test_read_idx_round_trip(tmp_path):
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    write_idx(tmp_path / "x.gz", array)
    assert np.array_equal(fashion_mnist.read_idx(tmp_path / "x.gz"), array)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not gzip at all", "is corrupt"),
        (gzip.compress(b"\x00\x00\x08"), "too short for an IDX header"),
        (gzip.compress(b"\x00\x00\x09\x01\x00\x00\x00\x02ab"), "wrong IDX magic"),
        (gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x05ab"), "header promises 5"),
        (gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x05ab")[:-6], "is corrupt"),
    ],
    # Named by the message: gzip stamps the time into its bytes, and pytest-xdist's
    # workers must collect the same test ids.
    ids=["not gzip", "too short", "wrong magic", "fewer items", "truncated gzip"],
)
def test_read_idx_rejects_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.gz"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message) as error:
        fashion_mnist.read_idx(path)
    assert str(path) in str(error.value)


def test_checksum_mismatch_names_the_file(tmp_path):
    write_idx(tmp_path / "x.gz", np.zeros(4))
    with pytest.raises(UserError, match="fails its checksum") as error:
        fashion_mnist.read_idx(tmp_path / "x.gz", "0" * 64)
    assert "x.gz" in str(error.value) and "make data" in str(error.value)


def test_missing_file_names_it_and_the_fix(tmp_path):
    with pytest.raises(UserError, match="train-images-idx3-ubyte.gz not found") as error:
        fashion_mnist.locate(tmp_path)
    assert "make data" in str(error.value)


def test_labels_out_of_range_and_wrong_shape(fake_data_dir):
    # Skip the checksums (the fake data is random) but keep every structural check.
    fashion_mnist.load_raw(str(fake_data_dir), verify=False)
    write_idx(fake_data_dir / "t10k-labels-idx1-ubyte.gz", np.full(10_000, 12))
    fashion_mnist.load_raw.cache_clear()
    with pytest.raises(UserError, match="label 12 outside 0..9"):
        fashion_mnist.load_raw(str(fake_data_dir), verify=False)
    write_idx(fake_data_dir / "t10k-images-idx3-ubyte.gz", np.zeros((10_000, 27, 28)))
    fashion_mnist.load_raw.cache_clear()
    with pytest.raises(UserError, match="has shape"):
        fashion_mnist.load_raw(str(fake_data_dir), verify=False)


def test_split_is_stratified_deterministic_and_disjoint():
    spec = DataSpec()
    raw = fashion_mnist.load_raw()
    train, val, test = split.split_indices(raw.train_labels, raw.test_labels, spec)
    again = split.split_indices(raw.train_labels, raw.test_labels, spec)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again, strict=True))
    assert len(train) == 55_000 and len(val) == 5_000 and len(test) == 10_000
    assert not set(train) & set(val)
    assert np.bincount(raw.train_labels[val]).tolist() == [500] * 10
    other = split.split_indices(raw.train_labels, raw.test_labels, DataSpec(split_seed=1))
    assert not np.array_equal(val, other[1])


def test_quick_subsets_are_stratified():
    spec = DataSpec(train_limit=2_000, validation_limit=500, test_limit=1_000)
    shared = split.load_shared(spec)
    assert np.bincount(shared.y_train).tolist() == [200] * 10
    assert np.bincount(shared.y_val).tolist() == [50] * 10
    assert np.bincount(shared.y_test).tolist() == [100] * 10


def test_preprocessing_matches_torchvision_totensor_normalize():
    shared = split.load_shared(DataSpec(train_limit=100, validation_limit=100, test_limit=100))
    assert shared.x_train.dtype == np.float32 and shared.y_train.dtype == np.int64
    assert shared.x_train.min() == -1.0 and shared.x_train.max() == 1.0
    # ToTensor divides by 255 in float32, Normalize subtracts 0.5 and divides by 0.5.
    raw = fashion_mnist.load_raw()
    train, _, _ = split.split_indices(raw.train_labels, raw.test_labels, DataSpec(train_limit=100))
    expected = (raw.train_images[train].astype(np.float32) / np.float32(255) - 0.5) / 0.5
    assert np.array_equal(shared.x_train, expected.astype(np.float32))


def test_manifest_hash_depends_on_split():
    a = split.load_shared(DataSpec(train_limit=100, validation_limit=100, test_limit=100))
    b = split.load_shared(DataSpec(train_limit=100, validation_limit=100, test_limit=100))
    c = split.load_shared(
        DataSpec(train_limit=100, validation_limit=100, test_limit=100, split_seed=7)
    )
    assert a.manifest_hash == b.manifest_hash != c.manifest_hash


def test_epoch_order_is_shared_and_seeded():
    assert np.array_equal(split.epoch_order(0, 1, 50), split.epoch_order(0, 1, 50))
    assert not np.array_equal(split.epoch_order(0, 1, 50), split.epoch_order(0, 2, 50))
    assert sorted(split.epoch_order(3, 0, 50)) == list(range(50))
