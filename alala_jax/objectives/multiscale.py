"""Multiscale VAE (paper 000 Sec 6, Eq 5; App J Eqs 8-9; App K) over a leading level axis.

n levels share the encoder and decoder; level i has its own sigma-network sigma_i(mu) and a
constant beta_i = m_i * beta_max(step) (beta_max may cool down, Sec 6). Level i trains on its
own batch, as each of the paper's 32 workers did:

  loss = 1/n sum_i E_{x ~ batch_i} [ l_i(x) ],   z_i ~ N(mu(x), sigma_i(mu(x))^2),
  l_i  = recon + beta_i KL / D                           ('beta', Eq 5)
       = recon / beta_i + KL / D                         ('inverted', Eq 8)
       = recon + gamma max(KL - C_i, 0) / D              ('capacity', Eq 9, C_i = C_min + i C_inc)

with recon the per-field reconstruction loss (objectives/elbo.py) and D the latent size. We
average over levels where the paper's workers averaged their gradients (Adam makes the overall
scale irrelevant; the global-norm clip then applies to the averaged gradient, not per worker).

Implementation: the sigma-network parameters are stacked on a leading level axis in
``params['sigma_net']`` and so are the moving moments of the sampled latents in
``batch_stats['latent_moments']`` (each level has its own latent distribution; generation
uses level `gen_level`). The per-level loss is `jax.vmap`-ed over (sigma params, latent moments,
batch, PRNG key, beta_i, C_i). All other moving statistics (ScalarTuple whitening) are shared:
the per-level updates are averaged, which for the moving mean equals one update with the mean of
the level batches. n = 1 is the plain beta-VAE.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from alala_jax.objectives import elbo

LEVEL_PARAMS = "sigma_net"          # params subtree stacked on the level axis
LEVEL_STATS = "latent_moments"      # batch_stats subtree stacked on the level axis
MODES = ("beta", "inverted", "capacity")


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


def level_p_sampled(n: int, p_min: float, p_max: float, spacing: str = "constant"
                    ) -> np.ndarray:
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


def level_variables(params: Any, batch_stats: Any, i: int) -> dict:
  """The single-level model variables of level i (what RecordVAE.apply expects)."""
  return {"params": {**params, LEVEL_PARAMS: level_slice(params[LEVEL_PARAMS], i)},
          "batch_stats": {**batch_stats,
                          LEVEL_STATS: level_slice(batch_stats[LEVEL_STATS], i)}}


def _merge_shared(stacked: Any) -> Any:
  """Averages per-level updates of shared statistics (integer counters: level 0's)."""
  return jax.tree.map(lambda x: jnp.mean(x, 0) if jnp.issubdtype(x.dtype, jnp.floating)
                      else x[0], stacked)


def multiscale_loss(model, params: Any, batch_stats: Any, batches: Any, keys: jax.Array,
                    betas: jax.Array, caps: jax.Array | None, p_tuple, p_string, train: bool,
                    mode: str = "beta", gamma: float = 128.0,
                    stats_mask: jax.Array | None = None, adversary=None):
  """The multiscale loss, vmapped over levels.

  Args:
    model: the RecordVAE (single-level module).
    params: model params with ``params['sigma_net']`` stacked on a leading level axis [n, ...].
    batch_stats: with ``batch_stats['latent_moments']`` stacked on the level axis.
    batches: codec arrays with leading axes [n, b]: level i's own batch.
    keys: [n] PRNG keys; betas: [n] beta_i; caps: [n] C_i (mode 'capacity') or None.
    mode: 'beta' | 'inverted' | 'capacity' (module docstring), or the one-level baselines
      'wae' (App I) and 'aae' (App H).
    stats_mask: [n, b] rows that update the moving statistics (None: all).
    adversary: z [b, D] -> [b] adversarial cross-entropy (mode 'aae').

  Returns:
    (loss, (per-level LossTerms [n], updated batch_stats, per-level VAEOut [n, b, ...])).
  """
  if mode not in MODES + elbo.DETERMINISTIC_MODES:
    raise ValueError(f"unknown loss mode {mode!r}: expected one of "
                     f"{MODES + elbo.DETERMINISTIC_MODES}")
  shared_p = {k: v for k, v in params.items() if k != LEVEL_PARAMS}
  shared_s = {k: v for k, v in batch_stats.items() if k != LEVEL_STATS}
  caps = jnp.zeros_like(betas) if caps is None else caps

  def one_level(sig_p, lat_s, batch, key, beta, cap, mask):
    p = {**shared_p, LEVEL_PARAMS: sig_p}
    s = {**shared_s, LEVEL_STATS: lat_s}
    loss, (terms, new_s, out) = elbo.vae_loss(model, p, s, batch, key, beta, p_tuple, p_string,
                                              train, mask, mode=mode, capacity=cap,
                                              gamma=gamma, adversary=adversary)
    return loss, (terms, new_s, out)

  mask_axis = None if stats_mask is None else 0
  args = (params[LEVEL_PARAMS], batch_stats[LEVEL_STATS], batches, keys, betas, caps,
          stats_mask)
  if betas.shape[0] == 1:
    # One level: the same computation without vmap, which compiles ~1.5x faster here.
    sliced = [a if ax is None else level_slice(a, 0)
              for a, ax in zip(args, (0,) * 6 + (mask_axis,))]
    losses, (terms, new_s, out) = jax.tree.map(lambda x: x[None], one_level(*sliced))
  else:
    losses, (terms, new_s, out) = jax.vmap(
        one_level, in_axes=(0, 0, 0, 0, 0, 0, mask_axis))(*args)
  new_stats = {k: (v if k == LEVEL_STATS else _merge_shared(v)) for k, v in new_s.items()}
  return jnp.mean(losses), (terms, new_stats, out)


@dataclasses.dataclass(frozen=True)
class Levels:
  """The level axis of one run: n levels, their beta multipliers, capacities and batching."""
  n: int = 1
  multipliers: tuple[float, ...] = (1.0,)
  capacities: tuple[float, ...] | None = None
  mode: str = "beta"
  gamma: float = 128.0
  shared_batch: bool = False
  gen_level: int = 0

  @classmethod
  def from_config(cls, ms) -> "Levels":
    """From `config.objective.multiscale` (None or n_levels 1: the plain beta-VAE)."""
    if ms is None or ms.n_levels == 1:
      return cls()
    n = int(ms.n_levels)
    if n < 1:
      raise ValueError(f"multiscale.n_levels must be >= 1, got {n}")
    if ms.mode not in MODES:
      raise ValueError(f"unknown multiscale.mode {ms.mode!r}: expected one of {MODES}")
    if not 0 <= ms.gen_level < n:
      raise ValueError(f"multiscale.gen_level {ms.gen_level} is not a level of 0..{n - 1}")
    caps = (tuple(float(c) for c in capacities(n, ms.c_min, ms.c_inc))
            if ms.mode == "capacity" else None)
    return cls(n=n, multipliers=tuple(float(m) for m in beta_multipliers(n, ms.spacing,
                                                                         ms.ratio)),
               capacities=caps, mode=ms.mode, gamma=float(ms.gamma),
               shared_batch=bool(ms.shared_batch), gen_level=int(ms.gen_level))

  def per_level_batch(self, batch_size: int) -> int:
    if self.shared_batch or self.n == 1:
      return batch_size
    if batch_size % self.n:
      raise ValueError(f"batch size {batch_size} does not split evenly over {self.n} levels; "
                       "use a multiple of n_levels or multiscale.shared_batch=True")
    return batch_size // self.n

  def split(self, batch: Any) -> Any:
    """A batch [B, ...] -> level batches [n, B/n, ...] (shared_batch: [n, B, ...], App L4)."""
    if self.shared_batch:
      return jax.tree.map(lambda a: jnp.broadcast_to(a, (self.n,) + a.shape), batch)
    b = self.per_level_batch(jax.tree.leaves(batch)[0].shape[0])
    return jax.tree.map(lambda a: a.reshape((self.n, b) + a.shape[1:]), batch)

  def betas(self, beta_max) -> jax.Array:
    return beta_max * jnp.asarray(self.multipliers, jnp.float32)

  def caps(self) -> jax.Array | None:
    return None if self.capacities is None else jnp.asarray(self.capacities, jnp.float32)
