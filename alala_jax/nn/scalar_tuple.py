"""ScalarTuple: all float fields of a record, modelled jointly (paper 000, App B.2).

PCA whitening with moving statistics: U D V^T = Sigma + eps I, x_w = (x - mu) U D^(-1/2).
Encoder: dense(k -> H) with sigmoid. Decoder: linear dense(H -> k) predicting x_w.
Loss: the SUM (not mean) of squared errors on whitened values, so each float field weighs 1.
Generation un-whitens: x = x_w D^(1/2) U^T + mu.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from alala_jax.nn import layers
from alala_jax.nn.moments import MovingMoments


def whitening(mean: jax.Array, cov: jax.Array, eps: float):
  """Returns (W [k, k], W_inv [k, k]) with x_w = (x - mean) W and x = x_w W_inv + mean."""
  d, u = jnp.linalg.eigh(cov + eps * jnp.eye(cov.shape[0], dtype=cov.dtype))
  return u * jax.lax.rsqrt(d)[None, :], (u * jnp.sqrt(d)[None, :]).T


class ScalarTuple(nn.Module):
  num: int                 # k float fields
  features: int = 128
  decay: float = 0.999
  eps: float = 1e-5

  def setup(self):
    self.moments = MovingMoments(self.num, self.decay)
    self.enc = layers.Dense(self.features)
    self.dec = layers.Dense(self.num)

  def _transforms(self):
    mean, cov = self.moments()
    w, w_inv = whitening(mean, cov, self.eps)
    return jax.lax.stop_gradient((mean, w, w_inv))

  def whiten(self, x: jax.Array) -> jax.Array:
    mean, w, _ = self._transforms()
    return (x - mean) @ w

  def unwhiten(self, xw: jax.Array) -> jax.Array:
    mean, _, w_inv = self._transforms()
    return xw @ w_inv + mean

  def encode(self, x: jax.Array, mask: jax.Array | None, train: bool) -> dict:
    """x [B, k] raw values; mask [B] rows that exist (lists/optionals). Returns {'emb': [B, H]}."""
    if train:
      self.moments.update(x, mask)
    return {"emb": jax.nn.sigmoid(self.enc(self.whiten(x)))}

  def decode(self, emb: jax.Array, target: jax.Array | None):
    """Returns (loss [B] or None, raw prediction [B, k])."""
    pred_w = self.dec(emb)
    loss = None if target is None else jnp.sum((self.whiten(target) - pred_w) ** 2, -1)
    return loss, self.unwhiten(pred_w)
