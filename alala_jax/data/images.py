"""Binary image data sets: an embedded synthetic set and the static binarized MNIST.

Images are flattened in row-major (C) order to [N, P = H * W] float32 arrays in {0, 1}.

* `synthetic_images`: small deterministic binary images drawn in code (bars, rectangle
  outlines, crosses, filled squares, plus pixel flips) so that tests and a fresh machine need no
  files.
* `load_binarized_mnist`: the fixed binarization of MNIST with its 50k / 10k / 10k split
  (Larochelle & Murray 2011; the set of IWAE's and BIVA's tables), from
  `../shared/data/binarized_mnist/` (see its SOURCE.md): the derived
  `binarized_mnist_uint8.npz` (keys train / valid / test, uint8 [N, 784]), or the three
  `binarized_mnist_{train,valid,test}.amat` files. Those are MATLAB v5 MAT-files despite the
  extension in the shared copy (matrix 'X'); Larochelle's original `.amat` text format
  (whitespace-separated 0/1, 784 per line) is read too.
* `load_omniglot_28`: Omniglot characters (Lake et al.) from the 105x105 originals in
  `../shared/data/omniglot_105x105/` (see its SOURCE.md), made MNIST-like for out-of-distribution
  tests: strokes set to 1, area-averaged to 28x28, binarized by one Bernoulli draw per pixel
  from the grey level (as the static binarized MNIST was drawn from MNIST's grey levels).
* `load(cfg)`: the configured one (its docstring lists the config fields).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

MNIST_SHAPE = (28, 28)
MNIST_SPLITS = ("train", "valid", "test")
MNIST_NPZ = "binarized_mnist_uint8.npz"
DEFAULT_MNIST_DIR = os.path.normpath(
  os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..",
    "..",
    "..",
    "shared",
    "data",
    "binarized_mnist",
  )
)
DEFAULT_OMNIGLOT_DIR = os.path.join(os.path.dirname(DEFAULT_MNIST_DIR), "omniglot_105x105")
SYNTHETIC_CLASSES = ("horizontal_bar", "vertical_bar", "rectangle", "cross", "square")
_MAT_MAGIC = b"MATLAB"


@dataclasses.dataclass(frozen=True, eq=False)
class ImageData:
  """A binary image data set, images flattened to [N, H * W] float32 in {0, 1}."""

  train: np.ndarray  # [N_train, P]
  test: np.ndarray  # [N_test, P]
  shape: tuple[int, int]  # (H, W); P = H * W, row-major
  source: str  # where it came from (a path, or 'synthetic(...)')
  notes: str  # what loading did (counts, limits, merges)
  valid: np.ndarray | None = None  # [N_valid, P] validation split, when the source has one

  @property
  def num_pixels(self) -> int:
    return self.shape[0] * self.shape[1]


def _check_binary(name: str, x: np.ndarray, num_pixels: int) -> np.ndarray:
  """x as float32 [N, num_pixels], or a ValueError naming `name`."""
  x = np.asarray(x)
  if x.ndim != 2 or x.shape[1] != num_pixels:
    raise ValueError(f"{name}: expected shape [N, {num_pixels}], got {x.shape}")
  if x.size and not np.all((x == 0) | (x == 1)):
    raise ValueError(f"{name}: values other than 0 and 1 ({np.unique(x)[:10]} ...)")
  return x.astype(np.float32)


# ------------------------------------------------------------------------ synthetic images --


def _draw(rng: np.random.Generator, cls: int, size: int) -> np.ndarray:
  """One [size, size] image of class `cls` (SYNTHETIC_CLASSES), uint8."""
  img = np.zeros((size, size), np.uint8)
  lo = max(2, size // 2)  # shortest bar / side
  if cls in (0, 1):  # a bar, 1 or 2 pixels thick, at least size/2 long
    length = rng.integers(lo, size + 1)
    start = rng.integers(0, size - length + 1)
    thick = rng.integers(1, 3)
    pos = rng.integers(0, size - thick + 1)
    if cls == 0:
      img[pos : pos + thick, start : start + length] = 1
    else:
      img[start : start + length, pos : pos + thick] = 1
  elif cls == 2:  # a rectangle outline, sides >= 3
    h, w = rng.integers(3, size + 1, 2)
    r, c = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
    img[r, c : c + w] = img[r + h - 1, c : c + w] = 1
    img[r : r + h, c] = img[r : r + h, c + w - 1] = 1
  elif cls == 3:  # a cross (plus sign), arms 1..size/2 - 1
    arm = rng.integers(1, max(2, size // 2))
    r, c = rng.integers(arm, size - arm, 2)
    img[r - arm : r + arm + 1, c] = 1
    img[r, c - arm : c + arm + 1] = 1
  else:  # a filled square, side 2..size/2
    s = rng.integers(2, max(3, size // 2 + 1))
    r, c = rng.integers(0, size - s + 1, 2)
    img[r : r + s, c : c + s] = 1
  return img


def synthetic_images(
  n: int = 2000, size: int = 8, seed: int = 0, test_fraction: float = 0.1, flip_prob: float = 0.02
) -> ImageData:
  """A deterministic synthetic binary image set (the same arguments give the same arrays).

  Each image shows one shape of a class drawn uniformly from SYNTHETIC_CLASSES (horizontal or
  vertical bar, rectangle outline, cross, filled square) at a random position and size, then
  every pixel is flipped with probability `flip_prob`.

  Args:
    n: number of images in total (train + test).
    size: image side; images are [size, size], flattened to size**2 pixels (size >= 4).
    seed: seed of the drawing and of the train/test permutation.
    test_fraction: share of the n images held out as `test` (rounded).
    flip_prob: per-pixel flip probability (noise).

  Returns:
    ImageData with train [n - n_test, size**2] and test [n_test, size**2] float32 in {0, 1}.
  """
  if size < 4:
    raise ValueError(f"size must be at least 4, got {size}")
  if n < 1 or not 0.0 <= test_fraction < 1.0:
    raise ValueError(
      f"need n >= 1 and 0 <= test_fraction < 1, got n={n}, test_fraction={test_fraction}"
    )
  rng = np.random.default_rng(seed)
  classes = rng.integers(0, len(SYNTHETIC_CLASSES), n)
  images = np.stack([_draw(rng, int(c), size) for c in classes]).reshape(n, size * size)
  flips = rng.random(images.shape) < flip_prob
  images = np.where(flips, 1 - images, images).astype(np.float32)
  perm = np.random.default_rng(seed + 1).permutation(n)
  n_test = round(test_fraction * n)
  counts = np.bincount(classes, minlength=len(SYNTHETIC_CLASSES))
  per_class = ", ".join(f"{k} {c}" for k, c in zip(SYNTHETIC_CLASSES, counts))
  notes = (
    f"{n} synthetic {size}x{size} images ({per_class}), pixel flips p={flip_prob}, "
    f"{n - n_test} train / {n_test} test"
  )
  return ImageData(
    train=images[perm[n_test:]],
    test=images[perm[:n_test]],
    shape=(size, size),
    source=f"synthetic(n={n}, size={size}, seed={seed})",
    notes=notes,
  )


# ---------------------------------------------------------------------- binarized MNIST --


def read_amat(path: str, num_pixels: int = 784) -> np.ndarray:
  """One split of binarized MNIST from an `.amat` file: uint8 [N, num_pixels] in {0, 1}.

  Reads a MATLAB v5 MAT-file holding a matrix 'X' (the shared copy's format, detected by its
  'MATLAB' header), or Larochelle's text format: one image per line, `num_pixels`
  whitespace-separated values, each 0 or 1 (written as integers or floats). Blank lines are
  skipped.

  Raises:
    FileNotFoundError: the file does not exist.
    ValueError: a malformed row (message 'path:line: ...') or a MAT-file without a 'X' matrix of
      the right width and values.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"binarized MNIST file not found: {path}")
  with open(path, "rb") as f:
    head = f.read(len(_MAT_MAGIC))
  if head == _MAT_MAGIC:
    import scipy.io  # only for the MAT-file variant

    mat = scipy.io.loadmat(path)
    if "X" not in mat:
      raise ValueError(f"{path}: MAT-file without a matrix 'X' (has {sorted(mat)})")
    return _check_binary(path, mat["X"], num_pixels).astype(np.uint8)
  try:
    return _read_amat_text(path, num_pixels)
  except UnicodeDecodeError as e:
    raise ValueError(f"{path}: neither a MAT-file nor 0/1 text ({e})") from None


def _read_amat_text(path: str, num_pixels: int) -> np.ndarray:
  """Larochelle's text .amat: uint8 [N, num_pixels] (read_amat)."""
  rows = []
  with open(path, "r", encoding="ascii") as f:
    for lineno, line in enumerate(f, 1):
      tokens = line.split()
      if not tokens:
        continue
      if len(tokens) != num_pixels:
        raise ValueError(f"{path}:{lineno}: expected {num_pixels} values, got {len(tokens)}")
      try:
        values = np.asarray(tokens, dtype=np.float64)
      except ValueError:
        j = next(j for j, t in enumerate(tokens) if not _is_number(t))
        raise ValueError(
          f"{path}:{lineno}: value {tokens[j]!r} in column {j + 1} is not 0 or 1"
        ) from None
      bad = np.flatnonzero((values != 0.0) & (values != 1.0))
      if bad.size:
        j = int(bad[0])
        raise ValueError(f"{path}:{lineno}: value {tokens[j]!r} in column {j + 1} is not 0 or 1")
      rows.append(values.astype(np.uint8))
  if not rows:
    raise ValueError(f"{path}: no images")
  return np.stack(rows)


def _is_number(token: str) -> bool:
  try:
    float(token)
  except ValueError:
    return False
  return True


def _read_splits(path: str) -> tuple[dict[str, np.ndarray], str]:
  """{'train', 'valid', 'test'} uint8 arrays and the file(s) read, from a dir or an .npz."""
  if not os.path.exists(path):
    raise FileNotFoundError(
      f"binarized MNIST not found: {path} (expected a directory with "
      f"{MNIST_NPZ} or binarized_mnist_{{train,valid,test}}.amat, or the "
      ".npz itself)"
    )
  npz = path if os.path.isfile(path) else os.path.join(path, MNIST_NPZ)
  if os.path.isfile(npz):
    if not npz.endswith(".npz"):
      raise ValueError(f"{npz}: expected a directory or an .npz file")
    with np.load(npz) as d:
      missing = [k for k in MNIST_SPLITS if k not in d.files]
      if missing:
        raise ValueError(f"{npz}: missing arrays {missing} (has {d.files})")
      return {
        k: _check_binary(f"{npz}[{k}]", d[k], 784).astype(np.uint8) for k in MNIST_SPLITS
      }, npz
  files = {k: os.path.join(path, f"binarized_mnist_{k}.amat") for k in MNIST_SPLITS}
  for f in files.values():
    if not os.path.isfile(f):
      raise FileNotFoundError(f"binarized MNIST file not found: {f} (and no {MNIST_NPZ} in {path})")
  return {k: read_amat(f) for k, f in files.items()}, path


def load_binarized_mnist(
  path: str = DEFAULT_MNIST_DIR, *, merge_valid: bool = False, limit: int = 0, test_limit: int = 0
) -> ImageData:
  """The static binarized MNIST, 28x28 flattened to 784 pixels.

  Args:
    path: a directory holding `binarized_mnist_uint8.npz` (preferred) or the three
      `binarized_mnist_{train,valid,test}.amat` files, or the path of the .npz itself.
    merge_valid: append the 10k validation images to the 50k training images (60k, as IWAE
      trained); `valid` is then None.
    limit: keep the first `limit` training images (0 = all).
    test_limit: keep the first `test_limit` test images (0 = all).

  Returns:
    ImageData: train [50000, 784] (or 60000 merged), valid [10000, 784] (None if merged),
    test [10000, 784], float32 in {0, 1}, shape (28, 28), rows in file order.

  Raises:
    FileNotFoundError: `path` or a needed file is missing (the message names it).
    ValueError: a malformed file (the message names it, and the line for .amat text).
  """
  splits, read = _read_splits(path)
  train, valid, test = (splits[k].astype(np.float32) for k in MNIST_SPLITS)
  notes = f"binarized MNIST from {read}: {len(train)} train / {len(valid)} valid / {len(test)} test"
  if merge_valid:
    train, valid = np.concatenate([train, valid]), None
    notes += "; validation merged into train"
  if limit:
    train = train[:limit]
  if test_limit:
    test = test[:test_limit]
  if limit or test_limit:
    notes += f"; kept {len(train)} train / {len(test)} test"
  return ImageData(train=train, test=test, shape=MNIST_SHAPE, source=read, notes=notes, valid=valid)


def area_resize_matrix(n_in: int, n_out: int) -> np.ndarray:
  """[n_out, n_in] weights of area averaging: row i is the share of each input pixel [j, j + 1)
  inside output pixel i's interval [i s, (i + 1) s), s = n_in / n_out, divided by s (rows sum
  to 1). Resize an image by W @ img @ W.T."""
  s = n_in / n_out
  lo = np.arange(n_out)[:, None] * s
  j = np.arange(n_in)[None, :]
  overlap = np.clip(np.minimum(lo + s, j + 1) - np.maximum(lo, j), 0.0, None)
  return overlap / s


def load_omniglot_28(
  path: str = DEFAULT_OMNIGLOT_DIR, *, split: str = "evaluation", limit: int = 0, seed: int = 0
) -> np.ndarray:
  """Omniglot as 28x28 binary images [N, 784] float32 (module doc): the 105x105 originals
  (white background, black strokes) inverted so strokes are 1, area-averaged to 28x28
  (`area_resize_matrix`), then binarized by one Bernoulli draw per pixel with probability the
  grey level (numpy generator `seed`). Images in file order (character, drawer); `limit` keeps
  the first `limit` (0 = all).

  Raises:
    FileNotFoundError: the .npz of the split is missing (the message names it).
    ValueError: an unknown split, or images that are not [..., 105, 105].
  """
  if split not in ("background", "evaluation"):
    raise ValueError(f"unknown Omniglot split {split!r}: expected 'background' or 'evaluation'")
  f = path if path.endswith(".npz") else os.path.join(path, f"images_{split}.npz")
  if not os.path.exists(f):
    raise FileNotFoundError(f"Omniglot file not found: {f}")
  with np.load(f) as d:
    imgs = d["images"]
  if imgs.shape[-2:] != (105, 105):
    raise ValueError(f"{f}: expected images [..., 105, 105], got {imgs.shape}")
  imgs = imgs.reshape(-1, 105, 105)
  if limit:
    imgs = imgs[:limit]
  w = area_resize_matrix(105, 28)
  grey = np.einsum("ij,njk,lk->nil", w, 1.0 - imgs.astype(np.float64), w)
  rng = np.random.default_rng(seed)
  return (rng.random(grey.shape) < grey).astype(np.float32).reshape(len(imgs), 784)


# ------------------------------------------------------------------------------- config --


def default_config():
  """The image data section of a config (an `ml_collections.ConfigDict`, a comment per field)."""
  import ml_collections

  c = ml_collections.ConfigDict()
  c.source = "synthetic"  # 'synthetic' (embedded, no files) | 'binarized_mnist'
  c.path = ""  # binarized_mnist: directory or .npz ('' = DEFAULT_MNIST_DIR,
  # ../shared/data/binarized_mnist beside the repository)
  c.merge_valid = False  # binarized_mnist: train on train + valid (60k, as IWAE)
  c.num_synthetic = 2000  # synthetic: images in total (train + test)
  c.image_size = 8  # synthetic: image side (images are image_size x image_size)
  c.flip_prob = 0.02  # synthetic: per-pixel flip probability
  c.test_fraction = 0.1  # synthetic: held-out share
  c.split_seed = 0  # synthetic: seed of the drawing and of the train/test split
  c.limit = 0  # keep the first `limit` training images (0 = all)
  c.test_limit = 0  # keep the first `test_limit` test images (0 = all)
  return c


def load(cfg: Any) -> ImageData:
  """The image data set a config section describes.

  Args:
    cfg: an `ml_collections.ConfigDict` (or any mapping with `.get`) with the fields of
      `default_config()`; missing fields take those defaults:
      source: 'synthetic' | 'binarized_mnist'.
      path: binarized_mnist's directory or .npz ('' = DEFAULT_MNIST_DIR).
      merge_valid: binarized_mnist: append the validation split to train.
      num_synthetic, image_size, flip_prob, test_fraction, split_seed: `synthetic_images`'s
        n, size, flip_prob, test_fraction, seed.
      limit: keep the first `limit` training images (0 = all).
      test_limit: keep the first `test_limit` test images (0 = all).

  Returns:
    ImageData.

  Raises:
    ValueError: an unknown source.
    FileNotFoundError: binarized_mnist's path is missing.
  """
  d = default_config()

  def get(name):
    return cfg.get(name, d[name])

  source = get("source")
  limit, test_limit = int(get("limit")), int(get("test_limit"))
  if source == "binarized_mnist":
    return load_binarized_mnist(
      get("path") or DEFAULT_MNIST_DIR,
      merge_valid=bool(get("merge_valid")),
      limit=limit,
      test_limit=test_limit,
    )
  if source != "synthetic":
    raise ValueError(
      f"unknown image data source {source!r}: expected 'synthetic' or 'binarized_mnist'"
    )
  data = synthetic_images(
    int(get("num_synthetic")),
    int(get("image_size")),
    int(get("split_seed")),
    float(get("test_fraction")),
    float(get("flip_prob")),
  )
  if not (limit or test_limit):
    return data
  train = data.train[:limit] if limit else data.train
  test = data.test[:test_limit] if test_limit else data.test
  return dataclasses.replace(
    data, train=train, test=test, notes=data.notes + f"; kept {len(train)} train / {len(test)} test"
  )
