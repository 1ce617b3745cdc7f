"""Multiscale VAE (paper 000 Sec 6, Eq 5; App J Eqs 8-9; App K): a level axis over any model
and objective.

n levels share the model; level i has its own copy of what the model declares per level
(`VAEModel.level_collections`: the record VAE's sigma-network sigma_i(mu) and its latent
moments) and its own constant beta_i = m_i * beta_max(step) (beta_max may cool down, Sec 6),
capacity C_i and p_sampled_i (`objectives.base.Level`). Level i trains on its own batch, as
each of the paper's 32 workers did:

  loss = 1/n sum_i E_{x ~ batch_i} [ l_i(x) ],   z_i ~ q_i(z | x),

l_i the objective's loss at level i ('beta': recon + beta_i kl_scale KL, Eq 5; 'inverted',
Eq 8; 'capacity', Eq 9; any other registered objective). We average over levels where the
paper's workers averaged their gradients (Adam makes the overall scale irrelevant; the
global-norm clip then applies to the averaged gradient, not per worker).

Implementation (`train/step.py`): the declared entries are stacked on a leading level axis and
the per-level loss is `jax.vmap`-ed (`over_levels`) over (level entries, batch, PRNG key,
Level); every objective state gets the level axis too. Shared non-gradient statistics
(ScalarTuple whitening) are updated per level and averaged (`merge_shared_updates`).
n = 1 is the plain single-level run.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from alala_jax.objectives.base import Level

SPACINGS = ("linear", "geometric")


def beta_multipliers(n: int, spacing: str = "linear", ratio: float = 0.9) -> np.ndarray:
  """m_i with beta_i = m_i beta_max: linear (i+1)/n (Sec 6) or geometric r^(n-1-i) (App J)."""
  i = np.arange(n, dtype=np.float64)
  if spacing == "linear":
    return ((i + 1) / n).astype(np.float32)
  if spacing == "geometric":
    if not 0.0 < ratio <= 1.0:
      raise ValueError(f"geometric spacing needs 0 < ratio <= 1, got {ratio}")
    return (ratio ** (n - 1 - i)).astype(np.float32)
  raise ValueError(f"unknown beta spacing {spacing!r}: expected 'linear' or 'geometric'")


def level_p_sampled(n: int, p_min: float, p_max: float, spacing: str = "constant") -> np.ndarray:
  """Per-level p_sampled for multiscale + augmented training (App K).

  'constant': p_max everywhere; 'linear': p_min + (i+1)(p_max - p_min)/n (Table 13);
  'geometric': p_max (p_min/p_max)^((n-1-i)/n) (Table 14).
  """
  i = np.arange(n, dtype=np.float64)
  if spacing == "constant":
    p = np.full(n, p_max)
  elif spacing == "linear":
    p = p_min + (i + 1) * (p_max - p_min) / n
  elif spacing == "geometric":
    if p_min <= 0:
      raise ValueError(f"geometric p_sampled spacing needs p_min > 0, got {p_min}")
    p = p_max * (p_min / p_max) ** ((n - 1 - i) / n)
  else:
    raise ValueError(f"unknown p_sampled spacing {spacing!r}: constant, linear or geometric")
  if np.any(p < 0) or np.any(p > 1):
    raise ValueError(f"per-level p_sampled must lie in [0, 1], got {p}")
  return p.astype(np.float32)


def capacities(n: int, c_min: float, c_inc: float) -> np.ndarray:
  """Target KL capacities C_i = C_min + i C_inc in nats (App J, Eq 9)."""
  return (c_min + c_inc * np.arange(n)).astype(np.float32)


def level_slice(tree_: Any, i) -> Any:
  return jax.tree.map(lambda x: x[i], tree_)


def split_collections(variables: dict, declared: dict) -> tuple[dict, dict]:
  """Splits model variables into (shared, per-level) by the model's `level_collections`:
  per-level holds, per collection, the declared top-level entries."""
  shared, per_level = {}, {}
  for col, tree_ in variables.items():
    names = set(declared.get(col, ()))
    shared[col] = {k: v for k, v in tree_.items() if k not in names}
    lv = {k: v for k, v in tree_.items() if k in names}
    if lv:
      per_level[col] = lv
  return shared, per_level


def merge_collections(shared: dict, per_level: dict) -> dict:
  """The inverse of `split_collections` (for one level, or for stacked levels)."""
  return {col: {**tree_, **per_level.get(col, {})} for col, tree_ in shared.items()}


def merge_shared_updates(stacked: Any) -> Any:
  """Averages per-level updates of shared statistics over the level axis (integer counters:
  level 0's): for a moving mean this equals one update with the mean of the level batches."""
  return jax.tree.map(
    lambda x: jnp.mean(x, 0) if jnp.issubdtype(x.dtype, jnp.floating) else x[0], stacked
  )


def over_levels(fn, n: int, in_axes: tuple):
  """fn mapped over the leading level axis of the arguments whose in_axes entry is 0.

  One level runs fn on the sliced arguments without vmap (it compiles ~1.5x faster here) and
  puts a level axis of 1 on every output."""
  if n > 1:
    return jax.vmap(fn, in_axes=in_axes)

  def one(*args):
    sliced = [a if ax is None else level_slice(a, 0) for a, ax in zip(args, in_axes)]
    return jax.tree.map(lambda x: jnp.asarray(x)[None], fn(*sliced))

  return one


@dataclasses.dataclass(frozen=True)
class Levels:
  """The level axis of one run: n levels, their beta multipliers, capacities, per-level
  p_sampled (App K) and batching."""

  n: int = 1
  multipliers: tuple[float, ...] = (1.0,)
  capacities: tuple[float, ...] = (0.0,)
  p_sampled: tuple[float, ...] = (0.2,)
  shared_batch: bool = False
  gen_level: int = 0

  @classmethod
  def from_config(cls, ms, augmented=None) -> "Levels":
    """From `config.objective.multiscale` (None or n_levels 1: one level) and
    `config.objective.augmented` (per-level p_sampled, App K)."""
    n = 1 if ms is None else int(ms.n_levels)
    if n < 1:
      raise ValueError(f"multiscale.n_levels must be >= 1, got {n}")
    if augmented is not None and augmented.enabled:
      p = level_p_sampled(
        n,
        augmented.get("p_min", augmented.p_sampled),
        augmented.p_sampled,
        augmented.get("p_spacing", "constant"),
      )
    else:
      p = np.full(n, 0.2, np.float32)
    if n == 1:  # C_0 = c_min: the 'capacity' objective on one level (App J, Eq 9)
      caps = (0.0,) if ms is None else (float(ms.get("c_min", 0.0)),)
      return cls(capacities=caps, p_sampled=(float(p[0]),))
    if ms.spacing not in SPACINGS:
      raise ValueError(f"unknown beta spacing {ms.spacing!r}: expected one of {SPACINGS}")
    if not 0 <= ms.gen_level < n:
      raise ValueError(f"multiscale.gen_level {ms.gen_level} is not a level of 0..{n - 1}")
    return cls(
      n=n,
      multipliers=tuple(float(m) for m in beta_multipliers(n, ms.spacing, ms.ratio)),
      capacities=tuple(float(c) for c in capacities(n, ms.c_min, ms.c_inc)),
      p_sampled=tuple(float(x) for x in p),
      shared_batch=bool(ms.shared_batch),
      gen_level=int(ms.gen_level),
    )

  def level_args(self) -> Level:
    """The per-level values as arrays [n] (what `over_levels` maps over)."""
    f = lambda v: jnp.asarray(v, jnp.float32)
    return Level(
      beta_scale=f(self.multipliers), capacity=f(self.capacities), p_sampled=f(self.p_sampled)
    )

  def per_level_batch(self, batch_size: int) -> int:
    if self.shared_batch or self.n == 1:
      return batch_size
    if batch_size % self.n:
      raise ValueError(
        f"batch size {batch_size} does not split evenly over {self.n} levels; "
        "use a multiple of n_levels or multiscale.shared_batch=True"
      )
    return batch_size // self.n

  def split(self, batch: Any) -> Any:
    """A batch [B, ...] -> level batches [n, B/n, ...] (shared_batch: [n, B, ...], App L4)."""
    if self.shared_batch:
      return jax.tree.map(lambda a: jnp.broadcast_to(a, (self.n,) + a.shape), batch)
    b = self.per_level_batch(jax.tree.leaves(batch)[0].shape[0])
    return jax.tree.map(lambda a: a.reshape((self.n, b) + a.shape[1:]), batch)

  def betas(self, beta_max) -> jax.Array:
    return beta_max * jnp.asarray(self.multipliers, jnp.float32)
