"""The beta-ELBO family of paper 000 (Sec 2.1 Eq 2, Sec 6, App J) and free bits (paper 002),
registered by name (`objectives.base`). Every one of them works on any model of the interface:

  'beta'       recon + beta_i kl_scale KL                         (Eq 2; Eq 5 per level)
  'inverted'   recon / beta_i + kl_scale KL                       (App J, Eq 8)
  'capacity'   recon + gamma kl_scale max(KL - C_i, 0)            (App J, Eq 9; gamma = 128)
  'free_bits'  recon + beta_i kl_scale sum_l max(KL_l, lambda)    (BIVA: per example and per
                                                                   stochastic layer, 2 nats;
                                                                   lambda = 0 after
                                                                   free_bits_until: fine-tune)

recon is the model's training reconstruction `terms.recon.loss` [B] and KL its per-example KL
[B] or [L, B] in nats; kl_scale the model's beta units (1 / latent_dim for the record VAE:
"beta per latent dimension"). beta_i = beta_scale_i beta(step), beta(step) the configured
schedule (`objectives.schedules.beta_schedule`), beta_scale_i the multiscale level's multiplier
(1 for one level). The batch loss is the mean over all rows of the batch (real and augmented).
"""

from __future__ import annotations

import jax.numpy as jnp

from alala_jax.objectives import schedules
from alala_jax.objectives.base import Objective, Terms, no_state, register


def beta_from_config(config):
  """The beta schedule of `config.objective` over `config.train.num_steps`: step -> beta
  (beta_max under multiscale)."""
  cfg = config.objective
  return schedules.beta_schedule(
    cfg.beta_schedule,
    config.train.num_steps,
    cfg.beta_start,
    cfg.beta_mid,
    cfg.beta_end,
    cfg.warmup_fraction,
    cfg.cooldown_fraction,
  )


def _stateless(name: str, per_example, beta, **kw) -> Objective:
  """An objective without state from per_example(terms, beta_i, level) -> [B]."""

  def loss(state, terms: Terms, *, step, level):
    del state
    b = beta(step)
    return jnp.mean(per_example(terms, b * level.beta_scale, level)), {"beta": b}

  return Objective(name=name, init=no_state, loss=loss, **kw)


@register("beta")
def make_beta(config, model) -> Objective:
  del model
  return _stateless(
    "beta", lambda t, b, lv: t.recon.loss + b * t.kl_scale * t.kl_total(), beta_from_config(config)
  )


@register("inverted")
def make_inverted(config, model) -> Objective:
  del model
  beta = beta_from_config(config)
  ends = schedules.beta_extremes(config.objective)
  if min(ends) <= 0:
    raise ValueError(
      "objective 'inverted' divides the reconstruction loss by beta_i (Eq 8): "
      f"beta must stay > 0, got the schedule {ends}"
    )
  return _stateless("inverted", lambda t, b, lv: t.recon.loss / b + t.kl_scale * t.kl_total(), beta)


@register("capacity")
def make_capacity(config, model) -> Objective:
  del model
  gamma = float(config.objective.multiscale.gamma)
  return _stateless(
    "capacity",
    lambda t, b, lv: (
      t.recon.loss + gamma * t.kl_scale * jnp.maximum(t.kl_total() - lv.capacity, 0.0)
    ),
    beta_from_config(config),
  )


def free_bits_kl(kl, lam) -> jnp.ndarray:
  """sum over layers of max(KL_l, lambda) per example: kl [B] or [L, B] -> [B]."""
  kl = kl if kl.ndim == 2 else kl[None]
  return jnp.sum(jnp.maximum(kl, lam), 0)


@register("free_bits")
def make_free_bits(config, model) -> Objective:
  """lambda = `objective.free_bits` until `objective.free_bits_until` x num_steps (default 1:
  the whole run), 0 after it: paper 002 trains with free bits, then fine-tunes with lambda = 0
  (e.g. free_bits_until = 0.9 fine-tunes the last 10 % of the steps)."""
  del model
  lam = float(config.objective.get("free_bits", 2.0))
  until = float(config.objective.get("free_bits_until", 1.0))
  if lam < 0:
    raise ValueError(f"objective.free_bits (lambda, nats) must be >= 0, got {lam}")
  if not 0.0 <= until <= 1.0:
    raise ValueError(
      f"objective.free_bits_until (a fraction of the run) must be in [0, 1], {until}"
    )
  end = until * config.train.num_steps
  beta = beta_from_config(config)

  def loss(state, terms: Terms, *, step, level):
    del state
    b = beta(step)
    lam_t = jnp.where(step < end, lam, 0.0)
    per = terms.recon.loss + b * level.beta_scale * terms.kl_scale * free_bits_kl(terms.kl, lam_t)
    return jnp.mean(per), {"beta": b, "free_bits": lam_t}

  return Objective(name="free_bits", init=no_state, loss=loss)
