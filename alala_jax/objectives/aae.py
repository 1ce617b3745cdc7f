"""The AAE baseline (paper 000 App H; Makhzani et al., 2015) as a stateful objective.

The encoder is deterministic (z = mu). A discriminator built like the sigma-network of App B.4
(3 CELU dense layers H -> H) but topped with an H x 2 softmax layer instead of the sigmoid layer
tells latents of the encoder (class 0) from draws of the prior N(0, I) (class 1). Training
alternates, once per step:

  autoencoder step:   recon + weight * CE(D(z_enc), prior)      (weight 1 in the paper: "the
                                                                  same weight as the
                                                                  reconstruction loss")
  discriminator step: CE(D(z_enc), encoder) + CE(D(z_prior), prior), averaged over both sets,

on the same learning-rate schedule (the paper: 2M autoencoder and 2M discriminator steps). The
autoencoder's adversarial term is the non-saturating generator loss -log D(z_enc)[prior]. The
discriminator and its optimiser state live in the TrainState's `objective_state`, so a
checkpoint holds them and the autoencoder's optimiser never sees their parameters.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from alala_jax.nn import layers

ENCODER, PRIOR = 0, 1     # discriminator classes


class Discriminator(nn.Module):
  """sigma-network body (App B.4) with an H x 2 softmax layer: logits [..., 2]."""
  features: int = 128
  hidden_layers: int = 3

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    h = z
    for _ in range(self.hidden_layers):
      h = layers.CeluDense(self.features)(h)
    return layers.Dense(2)(h)


class AAEState(NamedTuple):
  params: Any           # discriminator parameters
  opt_state: Any        # its optimiser state


class AdversarialObjective(NamedTuple):
  init: Callable[[jax.Array, int], AAEState]
  generator_loss: Callable[[AAEState, jax.Array], jax.Array]
  update: Callable[..., tuple[AAEState, dict]]


def _ce(logits: jax.Array, label: int) -> jax.Array:
  """Per-row cross-entropy of the softmax over `logits` [N, 2] against one class."""
  return -jax.nn.log_softmax(logits)[..., label]


def adversarial(tx: optax.GradientTransformation, features: int = 128,
                hidden_layers: int = 3) -> AdversarialObjective:
  """Builds (init, generator_loss, update) around a discriminator and its optimiser `tx`."""
  disc = Discriminator(features, hidden_layers)

  def init(key: jax.Array, latent_dim: int) -> AAEState:
    params = disc.init(key, jnp.zeros((1, latent_dim)))["params"]
    return AAEState(params, tx.init(params))

  def generator_loss(state: AAEState, z: jax.Array) -> jax.Array:
    """[B]: -log D(z)[prior], the autoencoder's adversarial term (gradient flows into z)."""
    return _ce(disc.apply({"params": state.params}, z), PRIOR)

  def discriminator_loss(params, z_enc, z_prior, mask):
    ce_enc = _ce(disc.apply({"params": params}, z_enc), ENCODER)
    ce_pri = _ce(disc.apply({"params": params}, z_prior), PRIOR)
    w = jnp.ones_like(ce_enc) if mask is None else mask
    loss = 0.5 * (jnp.sum(w * ce_enc) / jnp.maximum(jnp.sum(w), 1.0) + jnp.mean(ce_pri))
    return loss, (ce_enc, ce_pri)

  def update(state: AAEState, z_enc: jax.Array, key: jax.Array,
             mask: jax.Array | None = None) -> tuple[AAEState, dict]:
    """One discriminator step on the encoder's latents z_enc [B, D] (rows weighted by `mask`)
    against as many prior draws. Returns the new state and its metrics."""
    z_enc = jax.lax.stop_gradient(z_enc)
    z_prior = jax.random.normal(key, z_enc.shape, z_enc.dtype)
    (loss, (ce_enc, ce_pri)), grads = jax.value_and_grad(discriminator_loss, has_aux=True)(
        state.params, z_enc, z_prior, mask)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    acc = 0.5 * (jnp.mean(ce_enc < jnp.log(2.0)) + jnp.mean(ce_pri < jnp.log(2.0)))
    return (AAEState(optax.apply_updates(state.params, updates), opt_state),
            {"adv/disc_loss": loss, "adv/disc_accuracy": acc})

  return AdversarialObjective(init, generator_loss, update)
