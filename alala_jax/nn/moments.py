"""Moving mean and covariance as non-trainable state (collection 'batch_stats').

Used by the ScalarTuple (App B.2: decay 0.999, PCA whitening) and for the sampled training
latents (Sec 2.4: generation samples z ~ N(moving mean, moving cov)).

  mu <- a mu + (1 - a) mu_B,   Sigma <- a Sigma + (1 - a) cov(B)

cov(B) is the (weighted) sample covariance with ddof = 1. The paper does not give the initial
values; we initialise both to the first training batch's statistics (BUILD_NOTES.md).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def weighted_moments(x: jax.Array, w: jax.Array | None = None):
  """Mean [D] and sample covariance [D, D] (ddof = 1) of x [N, D] with row weights w [N]."""
  x = x.astype(jnp.float32)
  w = jnp.ones(x.shape[:1], x.dtype) if w is None else w.astype(x.dtype)
  n = jnp.sum(w)
  mean = jnp.sum(w[:, None] * x, 0) / jnp.maximum(n, 1.0)
  d = (x - mean) * jnp.sqrt(w)[:, None]
  cov = d.T @ d / jnp.maximum(n - 1.0, 1.0)
  return mean, cov, n


class MovingMoments(nn.Module):
  """Tracks the moving mean and covariance of its inputs."""

  dim: int
  decay: float = 0.999

  def setup(self):
    self.mean = self.variable("batch_stats", "mean", jnp.zeros, (self.dim,), jnp.float32)
    self.cov = self.variable("batch_stats", "cov", jnp.eye, self.dim, dtype=jnp.float32)
    self.count = self.variable("batch_stats", "count", jnp.zeros, (), jnp.int32)

  def update(self, x: jax.Array, w: jax.Array | None = None) -> None:
    """Updates the statistics with x [N, D] (rows weighted by w [N]); no-op while initialising."""
    if self.is_initializing():
      return
    x = jax.lax.stop_gradient(x)
    mean, cov, n = weighted_moments(x, w)
    first = self.count.value == 0
    a = jnp.where(first, 0.0, self.decay)
    ok = n >= 2  # a batch with fewer than 2 rows says nothing about the covariance
    self.mean.value = jnp.where(ok, a * self.mean.value + (1 - a) * mean, self.mean.value)
    self.cov.value = jnp.where(ok, a * self.cov.value + (1 - a) * cov, self.cov.value)
    self.count.value = self.count.value + ok.astype(jnp.int32)

  def __call__(self):
    return self.mean.value, self.cov.value
