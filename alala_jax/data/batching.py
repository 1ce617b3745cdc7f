"""Deterministic batching of the array pytree.

The batch of step s is a function of (seed, s) alone: epoch e = s // steps_per_epoch uses the
permutation ``default_rng([seed, e])``; so a resumed run sees exactly the batches an
uninterrupted run would. The remainder of each epoch that does not fill a batch is skipped
(it is covered by other epochs' permutations).
"""

from __future__ import annotations

from typing import Any, Iterator

import jax
import numpy as np


def num_rows(arrays: Any) -> int:
  return int(jax.tree.leaves(arrays)[0].shape[0])


def take(arrays: Any, idx: np.ndarray) -> Any:
  return jax.tree.map(lambda a: a[idx], arrays)


def batch_at(arrays: Any, step: int, batch_size: int, seed: int) -> Any:
  n = num_rows(arrays)
  if n < batch_size:
    raise ValueError(f"batch size {batch_size} exceeds the {n} training records")
  per_epoch = n // batch_size
  epoch, i = divmod(step, per_epoch)
  perm = np.random.default_rng([seed, epoch]).permutation(n)
  return take(arrays, perm[i * batch_size : (i + 1) * batch_size])


def eval_batches(arrays: Any, batch_size: int, n_batches: int, seed: int) -> Iterator[Any]:
  """n_batches fixed batches (with replacement across batches if the data are small)."""
  rng = np.random.default_rng([seed, 99])
  n = num_rows(arrays)
  for _ in range(n_batches):
    yield take(arrays, rng.choice(n, batch_size, replace=n < batch_size))
