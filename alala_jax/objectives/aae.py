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
discriminator and its optimiser state are the objective's state ({'aae': AAEState}) in the
TrainState, so a checkpoint holds them and the autoencoder's optimiser never sees their
parameters. Registered as 'aae'; the encoder is deterministic (z = mu).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from alala_jax.nn import layers
from alala_jax.objectives.base import Objective, Terms, register
from alala_jax.objectives.beta import beta_from_config

ENCODER, PRIOR = 0, 1  # discriminator classes


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
  params: Any  # discriminator parameters
  opt_state: Any  # its optimiser state


def _ce(logits: jax.Array, label: int) -> jax.Array:
  """Per-row cross-entropy of the softmax over `logits` [N, 2] against one class."""
  return -jax.nn.log_softmax(logits)[..., label]


def adversarial(
  tx: optax.GradientTransformation,
  latent_dim: int,
  beta,
  features: int = 128,
  hidden_layers: int = 3,
) -> Objective:
  """The AAE objective around a discriminator and its optimiser `tx`.

  Args:
    tx: the discriminator's optimiser (the autoencoder's, on its own state).
    latent_dim: size of z.
    beta: step -> weight of the adversarial term (App H: 1).
  """
  disc = Discriminator(features, hidden_layers)

  def init(key: jax.Array) -> dict:
    params = disc.init(key, jnp.zeros((1, latent_dim)))["params"]
    return {"aae": AAEState(params, tx.init(params))}

  def generator_loss(state: AAEState, z: jax.Array) -> jax.Array:
    """[B]: -log D(z)[prior], the autoencoder's adversarial term (gradient flows into z)."""
    return _ce(disc.apply({"params": state.params}, z), PRIOR)

  def loss(state, terms: Terms, *, step, level):
    b = beta(step)
    adv = generator_loss(state["aae"], terms.z)
    return (
      jnp.mean(terms.recon.loss + b * level.beta_scale * adv),
      {"beta": b, "aae/adversarial_ce": jnp.mean(adv)},
    )

  def discriminator_loss(params, z_enc, z_prior, mask):
    ce_enc = _ce(disc.apply({"params": params}, z_enc), ENCODER)
    ce_pri = _ce(disc.apply({"params": params}, z_prior), PRIOR)
    w = jnp.ones_like(ce_enc) if mask is None else mask
    loss = 0.5 * (jnp.sum(w * ce_enc) / jnp.maximum(jnp.sum(w), 1.0) + jnp.mean(ce_pri))
    return loss, (ce_enc, ce_pri)

  def update(state, terms: Terms, *, step, key, phase, level):
    """One discriminator step on the encoder's latents [B, D] (rows weighted by the batch's
    row mask) against as many prior draws."""
    del step, phase, level
    st = state["aae"]
    z_enc = jax.lax.stop_gradient(terms.z)
    z_prior = jax.random.normal(key, z_enc.shape, z_enc.dtype)
    (loss, (ce_enc, ce_pri)), grads = jax.value_and_grad(discriminator_loss, has_aux=True)(
      st.params, z_enc, z_prior, terms.row_mask
    )
    updates, opt_state = tx.update(grads, st.opt_state, st.params)
    acc = 0.5 * (jnp.mean(ce_enc < jnp.log(2.0)) + jnp.mean(ce_pri < jnp.log(2.0)))
    return (
      {**state, "aae": AAEState(optax.apply_updates(st.params, updates), opt_state)},
      {"aae/disc_loss": loss, "aae/disc_accuracy": acc},
    )

  return Objective(
    name="aae",
    init=init,
    loss=loss,
    update=update,
    deterministic=True,
    latent_label="aae/adversarial_ce",
    single_level=True,
  )


@register("aae")
def make_aae(config, model) -> Objective:
  """App H: weight = the beta schedule (constant 1 in the paper's row), a discriminator of
  latent_dim units per layer (the sigma-network's body, App B.4) on the autoencoder's
  optimiser settings (`train.optim.base_optimizer(config.optim)`)."""
  from alala_jax.train import optim  # train/ imports objectives/; import here, not at the top

  return adversarial(
    optim.base_optimizer(config.optim, config.train.num_steps),
    model.latent_dim,
    beta_from_config(config),
    features=model.latent_dim,
  )
