"""The generalised beta-VAE loss of paper 000 (Sec 2.1 Eq 2, Sec 2.3).

  loss = recon + beta * latent,
  recon  = sum over fields of (string CE + float squared error + skew terms) / num_fields,
  latent = KL(N(mu, sigma^2) || N(0, I)) / latent_dim.

The multiscale variants of App J weigh the same two terms differently per example:
'inverted' recon / beta + latent (Eq 8), 'capacity' recon + gamma max(KL - C, 0) / latent_dim
(Eq 9, KL and C in nats; gamma = 128 "per latent dimension"). The WAE baseline (App I, mode
'wae') replaces the per-example KL by the batch's W2^2 to N(0, I) with a deterministic encoder:
recon + beta W2^2 / latent_dim (beta = 0.128 in the paper). The AAE baseline (App H, mode
'aae') uses the same deterministic encoder and weighs a discriminator's per-example
cross-entropy instead: recon + beta CE(D(z), prior) (beta = 1 in the paper, objectives/aae.py).

`num_fields` is the schema's total leaf weight (9 for the paper's Address) and is the ONE place
the divisor lives; beta's meaning (beta_end 0.384, beta_max 0.64-1.28) depends on it.
BPC (bits per character) is defined once here: string cross-entropy in bits per character,
counting the END token of every string as a character (nats / chars / ln 2).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct

from alala_jax.nn.vae import RecordVAE, VAEOut
from alala_jax.objectives import wae

DETERMINISTIC_MODES = ("wae", "aae")   # z = mu: the baselines' deterministic encoder (App H-I)


@struct.dataclass
class LossTerms:
  loss: jax.Array        # [] batch mean of recon + beta * latent
  recon: jax.Array       # [] batch mean of recon (per field)
  latent: jax.Array      # [] batch mean of KL per latent dim
  bpc: jax.Array         # [] bits per string character (incl. END tokens)
  fields: dict           # name -> [] batch-mean reconstruction loss of that field


def per_example_loss(recon: jax.Array, kl: jax.Array, latent_dim: int, beta, mode: str = "beta",
                     capacity=0.0, gamma: float = 128.0) -> jax.Array:
  """The loss of each example from its recon (per field) and KL (nats) [B]."""
  if mode == "beta":
    return recon + beta * kl / latent_dim
  if mode == "inverted":
    return recon / beta + kl / latent_dim
  if mode == "capacity":
    return recon + gamma * jnp.maximum(kl - capacity, 0.0) / latent_dim
  raise ValueError(f"unknown loss mode {mode!r}: expected beta, inverted or capacity")


def loss_terms(model: RecordVAE, out: VAEOut, beta, mode: str = "beta", capacity=0.0,
               gamma: float = 128.0, stats_mask: jax.Array | None = None,
               adversary: Callable[[jax.Array], jax.Array] | None = None) -> LossTerms:
  """The loss terms of one VAE pass; `adversary(z)` [B] is the AAE's per-example adversarial
  cross-entropy (mode 'aae' only)."""
  recon = out.dec.loss / model.root.num_fields
  latent = out.kl / model.cfg.latent_dim
  bpc = jnp.sum(out.dec.nats) / jnp.maximum(jnp.sum(out.dec.chars), 1.0) / math.log(2.0)
  if mode == "wae":
    latent = wae.w2_squared_standard_normal(out.z, stats_mask) / model.cfg.latent_dim
    loss = recon + beta * latent
  elif mode == "aae":
    if adversary is None:
      raise ValueError("mode 'aae' needs the discriminator's adversary(z) loss")
    latent = adversary(out.z)
    loss = recon + beta * latent
  else:
    loss = per_example_loss(recon, out.kl, model.cfg.latent_dim, beta, mode, capacity, gamma)
  return LossTerms(loss=jnp.mean(loss), recon=jnp.mean(recon),
                   latent=jnp.mean(latent), bpc=bpc,
                   fields={k: jnp.mean(v) for k, v in out.dec.fields.items()})


def vae_loss(model: RecordVAE, params: Any, batch_stats: Any, batch: Any, key: jax.Array,
             beta, p_tuple, p_string, train: bool, stats_mask: jax.Array | None = None,
             mode: str = "beta", capacity=0.0, gamma: float = 128.0,
             adversary: Callable[[jax.Array], jax.Array] | None = None) -> tuple[jax.Array, tuple[LossTerms, Any, VAEOut]]:
  """Loss of one batch. Returns (loss, (terms, updated batch_stats, VAEOut))."""
  k_latent, k_sample = jax.random.split(key)
  out, upd = model.apply({"params": params, "batch_stats": batch_stats}, batch, p_tuple,
                         p_string, train=train, stats_mask=stats_mask,
                         deterministic=mode in DETERMINISTIC_MODES,
                         rngs={"latent": k_latent, "sample": k_sample},
                         mutable=["batch_stats"])
  terms = loss_terms(model, out, beta, mode, capacity, gamma, stats_mask, adversary)
  return terms.loss, (terms, upd["batch_stats"], out)
