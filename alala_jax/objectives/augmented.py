"""Augmented training (paper 000 Sec 5, Eq 4) as an optax-style stateful objective.

After `gen_start_step`, each training batch is extended with variants x' = g(z_aug) decoded
(by sampling) from `n_augmented` augmented latent vectors. After the step, each z_aug becomes,
with probability `p_sampled`, the SAMPLED latent of a real example of the current batch (chosen
without replacement), else the sampled latent of its own variant, z ~ q(z | x'). Latents are
always samples, never means: the paper found no gain "without such noise injection".

Before `gen_start_step` the plain step `seed`s z_aug with the sampled latents of its batch, so
the first augmented batch decodes latents of the previous training batch (paper steps 1-2).

Loss: the mean over all B + n_augmented rows (real and generated alike). With n_augmented = B
this gives the real term and the generated chain equal total weight, as Eq 4 does; with
fewer augmented vectors the generated share is n / (B + n). Moving statistics (ScalarTuple
whitening, latent moments for generation) are updated from the real rows only.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp


class AugmentedState(NamedTuple):
  z: jax.Array          # [n_augmented, D] augmented latent vectors (sampled latents)


class AugmentedObjective(NamedTuple):
  init: Callable[[int], AugmentedState]
  seed: Callable[[AugmentedState, jax.Array], AugmentedState]
  update: Callable[..., AugmentedState]
  n_augmented: int
  p_sampled: float


def augmented(n_augmented: int, p_sampled: float = 0.2) -> AugmentedObjective:
  """Builds the (init, seed, update) functions.

  Args:
    n_augmented: number of augmented latent vectors (paper: batch size; App K: 16 ... 256).
    p_sampled: probability of re-initialising a vector from a real example (paper: 1/5).
  """
  if n_augmented < 1:
    raise ValueError(f"n_augmented must be >= 1, got {n_augmented}")
  if not 0.0 <= p_sampled <= 1.0:
    raise ValueError(f"p_sampled must be in [0, 1], got {p_sampled}")

  def init(latent_dim: int) -> AugmentedState:
    return AugmentedState(z=jnp.zeros((n_augmented, latent_dim), jnp.float32))

  def seed(state: AugmentedState, z_real: jax.Array) -> AugmentedState:
    """z_aug <- sampled latents of the first n_augmented examples of a (shuffled) batch."""
    del state
    return AugmentedState(z=jax.lax.stop_gradient(z_real[:n_augmented]))

  def update(state: AugmentedState, z_real: jax.Array, z_variant: jax.Array,
             key: jax.Array, p: jax.Array | float | None = None) -> AugmentedState:
    """z_real [B, D]: sampled latents of the real rows; z_variant [n, D]: of the variants.

    `p` overrides p_sampled (a traced per-level value under multiscale, App K)."""
    del state
    if z_real.shape[0] < n_augmented:
      raise ValueError(f"n_augmented {n_augmented} exceeds the batch size {z_real.shape[0]}: "
                       "re-initialisation draws real examples without replacement")
    k_coin, k_pick = jax.random.split(key)
    coin = jax.random.bernoulli(k_coin, p_sampled if p is None else p, (n_augmented,))
    pick = jax.random.permutation(k_pick, z_real.shape[0])[:n_augmented]
    z = jnp.where(coin[:, None], z_real[pick], z_variant)
    return AugmentedState(z=jax.lax.stop_gradient(z))

  return AugmentedObjective(init, seed, update, n_augmented, p_sampled)
