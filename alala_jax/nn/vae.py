"""RecordVAE: schema-generated encoder/decoder + sigma-network + latent statistics.

mu = encoder embedding of the record (Sec 2.3, App B.4); sigma = SigmaNet(mu);
z = mu + sigma * eps (reparameterisation, RNG stream 'latent'). The moving mean and covariance
of the SAMPLED training latents are tracked for generation: z ~ N(mean, cov) (Sec 2.4).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from alala_jax import schema as sc
from alala_jax.nn import tree
from alala_jax.nn.moments import MovingMoments
from alala_jax.nn.sigma import SigmaNet
from alala_jax.nn.string_literal import StringLiteral


@struct.dataclass
class VAEOut:
  mu: jax.Array  # [B, D]
  sigma: jax.Array  # [B, D]
  z: jax.Array  # [B, D] sampled latent
  kl: jax.Array  # [B] KL(N(mu, sigma^2) || N(0, I)), summed over dims (nats)
  dec: tree.DecodeOut


def kl_diag_normal(mu: jax.Array, sigma: jax.Array) -> jax.Array:
  """KL(N(mu, diag sigma^2) || N(0, I)) summed over the last axis."""
  return 0.5 * jnp.sum(mu**2 + sigma**2 - 1.0 - 2.0 * jnp.log(sigma), -1)


class RecordVAE(nn.Module):
  root: sc.RecordNode
  cfg: tree.ModelConfig

  def setup(self):
    c = self.cfg
    self.literal = (
      StringLiteral(c.vocab_size, c.latent_dim, c.char_dim, c.gru_remat)
      if c.tuple_type == "tuple" and sc.string_paths(self.root)
      else None
    )
    self.body = tree.build(self.root, self.literal, c)
    self.sigma_net = SigmaNet(c.latent_dim, c.sigma_layers)
    self.latent_moments = MovingMoments(c.latent_dim, c.stats_decay)

  def encode(self, data, train: bool = False) -> dict:
    """Returns the encoder tree; ``enc['emb']`` [B, D] is the posterior mean mu."""
    return self.body.encode(data, None, train)

  def sigma(self, mu: jax.Array) -> jax.Array:
    return self.sigma_net(mu)

  # The pieces of `__call__`, one per method of the model interface (alala_jax.models.record).

  def observe(self, data, stats_mask: jax.Array | None = None) -> None:
    """Updates the ScalarTuple whitening statistics with a batch (apply with mutable)."""
    self.body.encode(data, stats_mask, True)

  def posterior(self, data) -> tuple[jax.Array, jax.Array, dict]:
    """(mu [B, D], sigma [B, D], encoder tree) of a batch; statistics are not updated."""
    enc = self.body.encode(data, None, False)
    return enc["emb"], self.sigma(enc["emb"]), enc

  def reparameterize(self, mu: jax.Array, sigma: jax.Array) -> jax.Array:
    """z = mu + sigma * eps with eps from the 'latent' RNG stream (as `__call__` draws it)."""
    return mu + sigma * jax.random.normal(self.make_rng("latent"), mu.shape, mu.dtype)

  def track(self, z: jax.Array, stats_mask: jax.Array | None = None) -> None:
    """Updates the moving moments of the sampled latents (apply with mutable)."""
    self.latent_moments.update(z, stats_mask)

  def decode(self, z, target=None, enc=None, p_tuple=0.0, p_string=0.0, greedy=False):
    """Decodes z [B, D]; with target/enc also computes the losses (see tree.DecodeOut)."""
    return self.body.decode(z, target, enc, tree.DecodeContext(p_tuple, p_string, greedy))

  def __call__(
    self,
    data,
    p_tuple,
    p_string,
    train: bool = True,
    stats_mask: jax.Array | None = None,
    deterministic: bool = False,
  ) -> VAEOut:
    """One VAE pass: encode, sample z, decode with scheduled sampling, losses.

    Args:
      data: a batch in codec layout, leading dim B.
      p_tuple, p_string: ground-truth input probabilities (scheduled sampling).
      train: update the moving statistics (ScalarTuple whitening, sampled-latent moments).
      stats_mask: [B] rows that update the statistics (None: all); augmented training masks
        out its generated variants.
      deterministic: z = mu (the WAE/AAE baselines' deterministic encoder, App H-I).
    """
    enc = self.body.encode(data, stats_mask, train)
    mu = enc["emb"]
    sigma = self.sigma(mu)
    z = (
      mu
      if deterministic
      else (mu + sigma * jax.random.normal(self.make_rng("latent"), mu.shape, mu.dtype))
    )
    if train:
      self.latent_moments.update(z, stats_mask)
    dec = self.decode(z, data, enc, p_tuple, p_string)
    return VAEOut(mu, sigma, z, kl_diag_normal(mu, sigma), dec)

  def sample_latents(self, n: int) -> jax.Array:
    """z ~ N(moving mean, moving cov) of the sampled training latents: [n, D]."""
    mean, cov = self.latent_moments()
    chol = jnp.linalg.cholesky(cov + 1e-6 * jnp.eye(cov.shape[0], dtype=cov.dtype))
    eps = jax.random.normal(self.make_rng("latent"), (n, cov.shape[0]), cov.dtype)
    return mean + eps @ chol.T

  def generate(self, n: int, greedy: bool = False):
    """Generates n records in codec layout (decoder samples by default, Sec 2.1 Eq 3)."""
    return self.decode_latents(self.sample_latents(n), greedy)

  def decode_latents(self, z: jax.Array, greedy: bool = False):
    """g(z): decodes latents [n, D] into records in codec layout."""
    return self.decode(z, greedy=greedy).sample

  def reconstruct(self, data, greedy: bool = False):
    """g(mu(x)): decodes the posterior means of `data` (App E, Levenshtein metric)."""
    return self.decode(self.encode(data)["emb"], greedy=greedy).sample
