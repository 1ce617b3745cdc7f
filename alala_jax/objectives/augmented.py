"""Augmented training (paper 000 Sec 5, Eq 4): a wrapper around any objective.

After `gen_start_step`, each training batch is extended with variants x' = g(z_aug) decoded
(by sampling) from `n_augmented` augmented latent vectors. After the step, each z_aug becomes,
with probability `p_sampled`, the SAMPLED latent of a real example of the current batch (chosen
without replacement), else the sampled latent of its own variant, z ~ q(z | x'). Latents are
always samples, never means: the paper found no gain "without such noise injection".

Before `gen_start_step` the plain step `seed`s z_aug with the sampled latents of its batch, so
the first augmented batch decodes latents of the previous training batch (paper steps 1-2).

Loss: the inner objective's, over all B + n_augmented rows (real and generated alike). With
n_augmented = B this gives the real term and the generated chain equal total weight, as Eq 4
does; with fewer augmented vectors the generated share is n / (B + n). The row mask marks the
real rows: the model's moving statistics (ScalarTuple whitening, latent moments) are updated
from them only.

As an objective: state {'augmented': AugmentedState, **inner state}; phase 'augmented' from
`gen_start_step` (`phase_at`); `prepare` appends the variants; `update` re-draws z_aug and
then runs the inner objective's update. Under multiscale each level has its own z_aug and its
own p_sampled (App K, `Level.p_sampled`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from alala_jax.objectives.base import AUGMENTED, TRAIN, Objective, Terms

NAME = "augmented"


class AugmentedState(NamedTuple):
  z: jax.Array  # [n_augmented, D] augmented latent vectors (sampled latents)


def redraw(z_real: jax.Array, z_variant: jax.Array, key: jax.Array, p_sampled) -> jax.Array:
  """New z_aug [n, D]: per vector, with probability p_sampled a sampled latent of a real row
  (z_real [B, D], chosen without replacement), else its own variant's (z_variant [n, D])."""
  n = z_variant.shape[0]
  if z_real.shape[0] < n:
    raise ValueError(
      f"n_augmented {n} exceeds the batch size {z_real.shape[0]}: "
      "re-initialisation draws real examples without replacement"
    )
  k_coin, k_pick = jax.random.split(key)
  coin = jax.random.bernoulli(k_coin, p_sampled, (n,))
  pick = jax.random.permutation(k_pick, z_real.shape[0])[:n]
  return jax.lax.stop_gradient(jnp.where(coin[:, None], z_real[pick], z_variant))


def augmented(
  inner: Objective, n_augmented: int, latent_dim: int, gen_start_step: int
) -> Objective:
  """Wraps `inner` with augmented training.

  Args:
    inner: the objective trained on real + generated rows.
    n_augmented: augmented latent vectors per level (paper: batch size; App K: 16 ... 256).
    latent_dim: D.
    gen_start_step: first step of the augmented phase (App C: 1 % or 10 % of the run).
  """
  if n_augmented < 1:
    raise ValueError(f"n_augmented must be >= 1, got {n_augmented}")

  def init(key):
    return {
      **inner.init(key),
      NAME: AugmentedState(z=jnp.zeros((n_augmented, latent_dim), jnp.float32)),
    }

  def prepare(state, x, *, decode, key, phase):
    """Level batches x [n, b, ...] -> (real + variants [n, b + m, ...], real rows [n, b + m]).

    All levels' z_aug are decoded in one call: decode(z [n m, D], key) -> records."""
    if phase != AUGMENTED:
      return inner.prepare(state, x, decode=decode, key=key, phase=phase)
    z = state[NAME].z  # [n, m, D]
    n, m = z.shape[:2]
    variants = decode(z.reshape((n * m,) + z.shape[2:]), key)
    full = jax.tree.map(
      lambda a, v: jnp.concatenate([a, v.reshape((n, m) + v.shape[1:]).astype(a.dtype)], 1),
      x,
      variants,
    )
    b = jax.tree.leaves(x)[0].shape[1]
    mask = jnp.concatenate([jnp.ones((n, b), jnp.float32), jnp.zeros((n, m), jnp.float32)], 1)
    return full, mask

  def update(state, terms: Terms, *, step, key, phase, level):
    if phase == AUGMENTED:
      b = terms.z.shape[0] - n_augmented  # real rows
      z_new = redraw(terms.z[:b], terms.z[b:], key, level.p_sampled)
    else:  # seed: the sampled latents of the first n_augmented rows of the batch
      z_new = jax.lax.stop_gradient(terms.z[:n_augmented])
    state = {**state, NAME: AugmentedState(z=z_new)}
    inner_state, metrics = inner.update(
      state, terms, step=step, key=jax.random.fold_in(key, 1), phase=phase, level=level
    )
    return {**inner_state, NAME: AugmentedState(z=z_new)}, metrics

  def phase_at(step: int) -> str:
    return AUGMENTED if step >= gen_start_step else TRAIN

  return inner._replace(
    name=f"{inner.name}+{NAME}", init=init, update=update, prepare=prepare, phase_at=phase_at
  )
