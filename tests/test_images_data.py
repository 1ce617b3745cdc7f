"""Image data (data/images.py): synthetic images, .amat / .npz reading, the config loader."""

import os

import ml_collections
import numpy as np
import pytest
from scipy import io as sio

from alala_jax.data import images

MNIST_DIR = images.DEFAULT_MNIST_DIR


def _write_text_amat(path, rows, sep=" "):
  with open(path, "w") as f:
    f.writelines(sep.join(str(int(v)) for v in r) + "\n" for r in rows)


def _mnist_dir(tmp_path, sizes=(5, 3, 4), fmt="text"):
  """A fake binarized-MNIST directory: {split: uint8 [n, 784]}, in text or MAT .amat files."""
  rng = np.random.default_rng(0)
  arrays = {}
  for split, n in zip(images.MNIST_SPLITS, sizes):
    arrays[split] = (rng.random((n, 784)) < 0.2).astype(np.uint8)
    path = tmp_path / f"binarized_mnist_{split}.amat"
    if fmt == "text":
      _write_text_amat(path, arrays[split])
    else:
      sio.savemat(str(path), {"X": arrays[split]}, do_compression=True)
  return arrays


# ----------------------------------------------------------------------- synthetic --


def test_synthetic_is_deterministic_binary_and_split():
  a = images.synthetic_images(n=300, size=8, seed=3, test_fraction=0.2)
  b = images.synthetic_images(n=300, size=8, seed=3, test_fraction=0.2)
  c = images.synthetic_images(n=300, size=8, seed=4, test_fraction=0.2)
  np.testing.assert_array_equal(a.train, b.train)
  np.testing.assert_array_equal(a.test, b.test)
  assert not np.array_equal(a.train, c.train)
  assert a.train.shape == (240, 64) and a.test.shape == (60, 64) and a.shape == (8, 8)
  assert a.train.dtype == np.float32 and a.test.dtype == np.float32
  assert set(np.unique(np.concatenate([a.train, a.test]))) == {0.0, 1.0}
  assert a.num_pixels == 64 and "synthetic" in a.source and "240 train / 60 test" in a.notes


def test_synthetic_shapes_without_noise():
  d = images.synthetic_images(n=500, size=10, seed=0, test_fraction=0.0, flip_prob=0.0)
  x = d.train.reshape(-1, 10, 10)
  on = x.sum((1, 2))
  assert on.min() >= 2 and on.max() <= 36  # never empty; at most a 10x10 outline
  # every class of shape occurs: bars are a single row/column run, so count the images whose
  # "on" pixels all lie in one or two adjacent rows (horizontal) / columns (vertical)
  rows_used = (x.sum(2) > 0).sum(1)
  cols_used = (x.sum(1) > 0).sum(1)
  assert np.sum(rows_used <= 2) > 50 and np.sum(cols_used <= 2) > 50
  assert np.sum((rows_used >= 3) & (cols_used >= 3)) > 100  # rectangles, crosses, squares


def test_synthetic_flip_prob_is_noise_rate():
  clean = images.synthetic_images(n=400, size=8, seed=1, test_fraction=0.0, flip_prob=0.0)
  noisy = images.synthetic_images(n=400, size=8, seed=1, test_fraction=0.0, flip_prob=0.1)
  rate = np.mean(clean.train != noisy.train)
  assert abs(rate - 0.1) < 0.01


def test_synthetic_rejects_bad_arguments():
  with pytest.raises(ValueError, match="size"):
    images.synthetic_images(n=10, size=3)
  with pytest.raises(ValueError, match="test_fraction"):
    images.synthetic_images(n=10, test_fraction=1.0)


# ------------------------------------------------------------------------- .amat --


def test_read_text_amat(tmp_path):
  rows = (np.random.default_rng(1).random((4, 784)) < 0.5).astype(np.uint8)
  path = str(tmp_path / "x.amat")
  _write_text_amat(path, rows[:2], sep=" ")
  with open(path, "a") as f:
    f.write("\n")  # blank lines are skipped
    f.write("\t".join(f"{v:.1f}" for v in rows[2]) + "\n")  # floats, tabs
    f.write("  " + " ".join(str(v) for v in rows[3]) + "  \n")
  got = images.read_amat(path)
  assert got.dtype == np.uint8
  np.testing.assert_array_equal(got, rows)


def test_read_mat_file_amat(tmp_path):
  rows = (np.random.default_rng(2).random((6, 784)) < 0.5).astype(np.uint8)
  path = str(tmp_path / "x.amat")
  sio.savemat(path, {"X": rows}, do_compression=True)
  with open(path, "rb") as f:
    assert f.read(6) == b"MATLAB"
  np.testing.assert_array_equal(images.read_amat(path), rows)


@pytest.mark.parametrize(
  "bad_line,match",
  [
    ("0 1 1", r":3: expected 784 values, got 3"),
    (" ".join(["0"] * 500 + ["2"] + ["1"] * 283), r":3: value '2' in column 501 is not 0 or 1"),
    (" ".join(["1"] * 783 + ["x"]), r":3: value 'x' in column 784 is not 0 or 1"),
    (" ".join(["0.5"] + ["1"] * 783), r":3: value '0.5' in column 1 is not 0 or 1"),
  ],
  ids=["wrong_count", "value_2", "not_a_number", "fraction"],
)
def test_malformed_amat_row_names_file_and_line(tmp_path, bad_line, match):
  path = str(tmp_path / "bad.amat")
  with open(path, "w") as f:
    f.write(" ".join(["0"] * 784) + "\n\n" + bad_line + "\n" + " ".join(["1"] * 784) + "\n")
  with pytest.raises(ValueError) as e:
    images.read_amat(path)
  assert str(e.value).startswith(path + ":3:")
  assert e.match(match)


def test_missing_files_raise_file_not_found(tmp_path):
  missing = str(tmp_path / "nowhere")
  with pytest.raises(FileNotFoundError, match="nowhere"):
    images.load_binarized_mnist(missing)
  with pytest.raises(FileNotFoundError, match="nope.amat"):
    images.read_amat(str(tmp_path / "nope.amat"))
  _mnist_dir(tmp_path)
  os.remove(tmp_path / "binarized_mnist_valid.amat")
  with pytest.raises(FileNotFoundError, match="binarized_mnist_valid.amat"):
    images.load_binarized_mnist(str(tmp_path))


@pytest.mark.parametrize("fmt", ["text", "mat"])
def test_load_binarized_mnist_from_amat_dir(tmp_path, fmt):
  arrays = _mnist_dir(tmp_path, fmt=fmt)
  d = images.load_binarized_mnist(str(tmp_path))
  assert d.shape == (28, 28) and d.train.dtype == np.float32
  np.testing.assert_array_equal(d.train, arrays["train"])
  np.testing.assert_array_equal(d.valid, arrays["valid"])
  np.testing.assert_array_equal(d.test, arrays["test"])
  m = images.load_binarized_mnist(str(tmp_path), merge_valid=True, limit=6, test_limit=2)
  assert m.valid is None
  np.testing.assert_array_equal(m.train, np.concatenate([arrays["train"], arrays["valid"]])[:6])
  np.testing.assert_array_equal(m.test, arrays["test"][:2])
  assert "merged" in m.notes and "kept 6 train / 2 test" in m.notes


def test_npz_is_preferred_and_checked(tmp_path):
  arrays = _mnist_dir(tmp_path)
  np.savez(tmp_path / images.MNIST_NPZ, **{k: 1 - v for k, v in arrays.items()})
  d = images.load_binarized_mnist(str(tmp_path))
  np.testing.assert_array_equal(d.test, 1 - arrays["test"])
  assert d.source.endswith(images.MNIST_NPZ)
  bad = tmp_path / "bad.npz"
  np.savez(bad, train=arrays["train"], test=arrays["test"])
  with pytest.raises(ValueError, match=r"bad.npz: missing arrays \['valid'\]"):
    images.load_binarized_mnist(str(bad))
  np.savez(bad, train=arrays["train"] * 3, valid=arrays["valid"], test=arrays["test"])
  with pytest.raises(ValueError, match=r"bad.npz\[train\]: values other than 0 and 1"):
    images.load_binarized_mnist(str(bad))


def test_real_binarized_mnist():
  if not os.path.exists(os.path.join(MNIST_DIR, images.MNIST_NPZ)):
    pytest.skip(
      f"binarized MNIST not found at {MNIST_DIR} (../shared/data is not part of the "
      "project; the test runs where it is present)"
    )
  d = images.load_binarized_mnist(MNIST_DIR)
  assert d.train.shape == (50000, 784) and d.valid.shape == (10000, 784)
  assert d.test.shape == (10000, 784) and d.shape == (28, 28)
  # counts of ones from ../shared/data/binarized_mnist/SOURCE.md
  assert int(d.train.sum()) == 5_118_041 and int(d.valid.sum()) == 1_028_036
  assert int(d.test.sum()) == 1_038_896
  # the original (MAT-file) .amat agrees with the derived .npz
  np.testing.assert_array_equal(
    images.read_amat(os.path.join(MNIST_DIR, "binarized_mnist_test.amat")), d.test
  )


# ------------------------------------------------------------------------ config --


def test_load_from_config(tmp_path):
  cfg = images.default_config()
  cfg.num_synthetic, cfg.image_size, cfg.split_seed = 100, 6, 2
  d = images.load(cfg)
  ref = images.synthetic_images(n=100, size=6, seed=2, test_fraction=0.1)
  np.testing.assert_array_equal(d.train, ref.train)
  cfg.limit, cfg.test_limit = 7, 3
  d = images.load(cfg)
  assert d.train.shape == (7, 36) and d.test.shape == (3, 36)
  # fields left out take default_config()'s values
  d = images.load(ml_collections.ConfigDict({"source": "synthetic", "num_synthetic": 50}))
  assert d.train.shape == (45, 64)
  arrays = _mnist_dir(tmp_path)
  d = images.load(
    ml_collections.ConfigDict({"source": "binarized_mnist", "path": str(tmp_path), "limit": 2})
  )
  np.testing.assert_array_equal(d.train, arrays["train"][:2])
  with pytest.raises(ValueError, match="unknown image data source 'cifar'"):
    images.load(ml_collections.ConfigDict({"source": "cifar"}))
