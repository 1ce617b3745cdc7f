"""Deterministic batching of the array pytree.

The batch of step s is a function of (seed, s) alone: epoch e = s // steps_per_epoch uses the
permutation ``default_rng([seed, e])``; so a resumed run sees exactly the batches an
uninterrupted run would. The remainder of each epoch that does not fill a batch is skipped
(it is covered by other epochs' permutations).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Iterator

import jax
import numpy as np


def num_rows(arrays: Any) -> int:
  return int(jax.tree.leaves(arrays)[0].shape[0])


def take(arrays: Any, idx: np.ndarray) -> Any:
  return jax.tree.map(lambda a: a[idx], arrays)


@functools.lru_cache(maxsize=4)
def _permutation(n: int, seed: int, epoch: int) -> np.ndarray:
  perm = np.random.default_rng([seed, epoch]).permutation(n)
  perm.flags.writeable = False
  return perm


def indices_at(n: int, step: int, batch_size: int, seed: int) -> np.ndarray:
  """The rows [batch_size] of the batch at `step` of a data set of n rows (module doc)."""
  if n < batch_size:
    raise ValueError(f"batch size {batch_size} exceeds the {n} training records")
  epoch, i = divmod(step, n // batch_size)
  return _permutation(n, seed, epoch)[i * batch_size : (i + 1) * batch_size]


def batch_at(arrays: Any, step: int, batch_size: int, seed: int) -> Any:
  return take(arrays, indices_at(num_rows(arrays), step, batch_size, seed))


@dataclasses.dataclass
class Stream:
  """The deterministic batch stream of a training set: `stream(pos)` is the batch at data
  position pos (`batch_at`, then `put`, e.g. a device_put with the batch sharding);
  `indices(pos, n)` the rows [n, B] of the n batches from pos on; `device_data()` the arrays
  on the device, put there on first use (for loops that gather their batches on the device,
  e.g. aggressive training's on-device inner loop)."""

  arrays: Any
  batch_size: int
  seed: int
  put: Callable[[Any], Any] | None = None
  _on_device: Any = dataclasses.field(default=None, init=False, repr=False)

  def __call__(self, pos: int) -> Any:
    batch = batch_at(self.arrays, pos, self.batch_size, self.seed)
    return batch if self.put is None else self.put(batch)

  def indices(self, pos: int, n: int) -> np.ndarray:
    rows = num_rows(self.arrays)
    return np.stack([indices_at(rows, p, self.batch_size, self.seed) for p in range(pos, pos + n)])

  def device_data(self) -> Any:
    if self._on_device is None:
      self._on_device = jax.device_put(self.arrays)
    return self._on_device


def eval_batches(arrays: Any, batch_size: int, n_batches: int, seed: int) -> Iterator[Any]:
  """n_batches fixed batches (with replacement across batches if the data are small)."""
  rng = np.random.default_rng([seed, 99])
  n = num_rows(arrays)
  for _ in range(n_batches):
    yield take(arrays, rng.choice(n, batch_size, replace=n < batch_size))


def num_examples(data: Any) -> int:
  """N, the leading dimension every leaf of the data pytree shares.

  Raises:
    ValueError: no leaves, a scalar leaf, or leaves of different lengths.
  """
  leaves = jax.tree.leaves(data)
  if not leaves:
    raise ValueError("the data pytree has no arrays")
  lengths = {np.shape(a)[0] if np.ndim(a) else None for a in leaves}
  if None in lengths or len(lengths) != 1:
    shapes = [np.shape(a) for a in leaves]
    raise ValueError(f"every leaf of the data needs the same leading dimension, got {shapes}")
  return lengths.pop()


def padded_batches(data: Any, batch_size: int) -> Iterator[tuple[int, Any, int]]:
  """(i, batch, real): a data set in fixed-size batches of min(batch_size, N) rows, the last
  one padded with copies of row 0 (callers leave them out of every sum), so that a batch
  program compiles once.

  Args:
    data: a pytree of [N, ...] arrays, N >= 1.
    batch_size: rows per batch (clipped to N).

  Yields:
    i: the batch index; batch: a pytree of numpy [min(batch_size, N), ...] arrays whose first
    `real` rows are data rows start .. start + real - 1 and whose remaining rows copy row 0.

  Raises:
    ValueError: an empty data set or batch_size below 1.
  """
  n = num_examples(data)
  if n < 1 or batch_size < 1:
    raise ValueError(
      f"need a non-empty data set and batch_size >= 1, got N={n}, batch_size={batch_size}"
    )
  data = jax.tree.map(np.asarray, data)
  bs = min(batch_size, n)
  for i, start in enumerate(range(0, n, bs)):
    real = min(bs, n - start)

    def take(a, start=start, real=real):
      rows = a[start : start + real]
      return rows if real == bs else np.concatenate([rows, np.repeat(a[:1], bs - real, 0)])

    yield i, jax.tree.map(take, data), real
