"""The model interface every VAE of alala_jax implements (DESIGN §0).

A model encodes a batch to a posterior, decodes a latent into a likelihood and returns the raw
per-example terms; objectives (`alala_jax.objectives`) weigh them. The interface is a plain
Python object around flax modules used as pure functions: every method takes the model's
`variables` ({'params': ..., and any non-gradient collections such as 'batch_stats'}) and
returns arrays, never mutates anything.

  update_stats(variables, x, row_mask) -> model_state     non-gradient statistics from data
                                                          (the record VAE's ScalarTuple
                                                          whitening); before `encode`
  encode(variables, x)              -> (posterior, aux)   aux: what the decoder needs from the
                                                          encoder (teacher forcing, skew
                                                          targets); held fixed under refinement
  reparameterize(variables, q, key) -> z [B, D]
  recon(variables, x, z, aux, *, key, step, train) -> Recon   per-example terms [B]; train:
                                                          the training step (dropout)
  kl(posterior, z)                  -> [B] or per stochastic layer [L, B], nats
  fused_terms(variables, x, key, *, step, train) -> (posterior, z, Recon, kl)   optional: the
                                                          four in one pass, for models whose
                                                          q and p(z) take dropout in training
  track_latents(variables, z, row_mask) -> model_state    the generation prior's statistics
  decode(variables, z, key)         -> x                  g(z)
  sample(variables, key, n)         -> x                  generation
  partition(params)                 -> labels 'encoder' / 'decoder' (a pytree like params)

Units. `Recon.nll` is the unweighted -log p(x | z) in nats with a proper likelihood for every
part. `Recon.loss` is the model's training reconstruction, on the scale its objectives expect;
`kl_scale` says what beta multiplies: beta-ELBO = loss + beta * kl_scale * sum(kl). For the
record VAE (paper 000) loss = field-weighted reconstruction / number of fields and
kl_scale = 1 / latent_dim ("beta per latent dimension"); for a plain image VAE loss = nll and
kl_scale = 1, so beta = 1 is the ELBO.

Multiscale (paper 000 Sec 6) stacks the collections a model *declares* per level
(`level_collections`) on a leading level axis; sharding reads the same declaration.
"""

from __future__ import annotations

import abc
import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax import struct

ENCODER, DECODER = "encoder", "decoder"  # parameter partition labels (optax.multi_transform)
LEVEL_INIT_SALT = 6  # `init_levels`' default keys; listed with a run's salts as Salt.INIT_LEVELS


@struct.dataclass
class DiagGaussian:
  """q(z | x) = N(mean, diag(scale^2)), per example."""

  mean: jax.Array  # [B, D]
  scale: jax.Array  # [B, D]

  def sample(self, key: jax.Array) -> jax.Array:
    """z = mean + scale * eps, eps ~ N(0, I): [B, D]."""
    return self.mean + self.scale * jax.random.normal(key, self.mean.shape, self.mean.dtype)

  def log_prob(self, z: jax.Array) -> jax.Array:
    """log q(z | x) summed over the latent dimensions: [B] (z [B, D], or [K, B, D] -> [K, B])."""
    d = (z - self.mean) / self.scale
    return -0.5 * jnp.sum(d**2 + 2.0 * jnp.log(self.scale) + math.log(2.0 * math.pi), -1)

  def kl_standard_normal(self) -> jax.Array:
    """KL(N(mean, scale^2) || N(0, I)) summed over the latent dimensions: [B] nats."""
    return 0.5 * jnp.sum(self.mean**2 + self.scale**2 - 1.0 - 2.0 * jnp.log(self.scale), -1)


def standard_normal_log_prob(z: jax.Array) -> jax.Array:
  """log N(z; 0, I) summed over the last axis."""
  return -0.5 * jnp.sum(z**2 + math.log(2.0 * math.pi), -1)


@struct.dataclass
class Recon:
  """What `VAEModel.recon` returns: per-example terms of one batch."""

  nll: jax.Array  # [B] unweighted -log p(x | z), nats
  loss: jax.Array  # [B] the model's training reconstruction (module doc: units)
  fields: Mapping[str, jax.Array]  # name -> [B] per-field reconstruction terms (GECO
  # constraints, logging)
  extras: Mapping[str, jax.Array] = struct.field(default_factory=dict)
  # name -> [B] per-example sums a task reports as ratios of
  # batch sums (the record VAE: string nats and characters, BPC)


class VAEModel(abc.ABC):
  """Base class: the interface (module doc) with the defaults of a stateless Gaussian VAE."""

  latent_dim: int
  kl_scale: float = 1.0
  # collection -> top-level entries stacked on the level axis under multiscale, e.g.
  # {'params': ('sigma_net',), 'batch_stats': ('latent_moments',)}
  level_collections: Mapping[str, tuple[str, ...]] = {}
  # Optional: a method (variables, x, key, *, step, train) -> (posterior, z, Recon, kl) that
  # computes encode / reparameterize / recon / kl of one batch together. The core's step calls
  # it instead of the sequence when there is no refinement and the objective samples z; its
  # z must be the sequence's z for the latent key split(key)[0] when not training (dropout, as
  # in paper 002's hierarchies, may differ in training).
  fused_terms = None

  @abc.abstractmethod
  def init(self, key: jax.Array, x: Any) -> dict:
    """The model's variables for example inputs x."""

  def init_levels(self, key: jax.Array, x: Any, n: int) -> dict:
    """Initial values of the per-level entries (`level_collections`) of n levels, stacked on
    a leading axis, from the same key as `init`: by default n independent `init`s from
    split(fold_in(key, LEVEL_INIT_SALT), n), only their declared entries kept."""
    one_row = jax.tree.map(lambda a: a[:1], x)
    key = jax.random.fold_in(key, LEVEL_INIT_SALT)

    def declared(k):
      v = self.init(k, one_row)
      return {
        col: {name: v[col][name] for name in names} for col, names in self.level_collections.items()
      }

    return jax.vmap(declared)(jax.random.split(key, n))

  def update_stats(self, variables: dict, x: Any, row_mask: jax.Array | None) -> dict:
    """The non-gradient collections after seeing the batch x (rows weighted by row_mask)."""
    del x, row_mask
    return non_params(variables)

  @abc.abstractmethod
  def encode(self, variables: dict, x: Any) -> tuple[Any, Any]:
    """(posterior q(z | x), aux)."""

  def reparameterize(self, variables: dict, posterior: Any, key: jax.Array) -> jax.Array:
    del variables
    return posterior.sample(key)

  @abc.abstractmethod
  def recon(
    self,
    variables: dict,
    x: Any,
    z: jax.Array,
    aux: Any,
    *,
    key: jax.Array | None,
    step: jax.Array | int = 0,
    train: bool = False,
  ) -> Recon:
    """Per-example reconstruction terms of x given z (decoder schedules may depend on step;
    `train` is True in the training step only: dropout, never in evaluation)."""

  def kl(self, posterior: Any, z: jax.Array) -> jax.Array:
    """KL(q(z | x) || p(z)): [B], or [L, B] for a hierarchy of L stochastic layers."""
    del z
    return posterior.kl_standard_normal()

  def log_density_ratio(self, posterior: Any, z: jax.Array) -> jax.Array:
    """log p(z) - log q(z | x) [B] at z: the latent part of an importance weight
    (`metrics.likelihood.iw_nll`). Default: a diagonal-Gaussian posterior and the N(0, I) prior;
    a hierarchy overrides it."""
    return standard_normal_log_prob(z) - posterior.log_prob(z)

  def track_latents(self, variables: dict, z: jax.Array, row_mask: jax.Array | None) -> dict:
    """The non-gradient collections after seeing the sampled training latents z [B, D]."""
    del z, row_mask
    return non_params(variables)

  @abc.abstractmethod
  def decode(self, variables: dict, z: jax.Array, key: jax.Array, *, greedy: bool = False):
    """g(z): records/inputs decoded from latents [n, D]."""

  def sample_latents(self, variables: dict, key: jax.Array, n: int) -> jax.Array:
    """z ~ the generation prior: N(0, I) unless the model tracks another."""
    del variables
    return jax.random.normal(key, (n, self.latent_dim))

  def prior_moments(self, variables: dict) -> tuple[jax.Array, jax.Array]:
    """Mean [D] and covariance [D, D] of the Gaussian `sample_latents` draws from."""
    del variables
    return jnp.zeros((self.latent_dim,)), jnp.eye(self.latent_dim)

  def sample(self, variables: dict, key: jax.Array, n: int, *, greedy: bool = False):
    k_z, k_x = jax.random.split(key)
    return self.decode(variables, self.sample_latents(variables, k_z, n), k_x, greedy=greedy)

  def units(self, recon: Recon) -> jax.Array:
    """[B] what a per-unit loss divides by: 1 per example by default, tokens for text (paper
    001's aggressive training compares per-word losses)."""
    return jnp.ones_like(recon.nll)

  def batch_metrics(self, recon: Recon, step) -> dict:
    """Scalar metrics of a batch a task reports beyond the generic ones (e.g. BPC)."""
    del recon, step
    return {}

  @abc.abstractmethod
  def partition(self, params: Any) -> Any:
    """A pytree like params with ENCODER or DECODER at every leaf."""


def non_params(variables: Mapping[str, Any]) -> dict:
  """The non-gradient collections of a variables dict."""
  return {k: v for k, v in variables.items() if k != "params"}


def partition_by_top_level(params: Mapping[str, Any], encoder: set[str] | frozenset[str]) -> Any:
  """Labels every leaf under a top-level entry in `encoder` ENCODER, the rest DECODER."""
  return {
    k: jax.tree.map(lambda _, lab=(ENCODER if k in encoder else DECODER): lab, v)
    for k, v in params.items()
  }
