"""ScalarTuple: all float fields of a record, modelled jointly (paper 000, App B.2).

PCA whitening with moving statistics: U D V^T = Sigma + eps I, x_w = (x - mu) U D^(-1/2).
Encoder: dense(k -> H) with sigmoid. Decoder: linear dense(H -> k) predicting x_w.
Loss: the SUM (not mean) of squared errors on whitened values, so each float field weighs 1.
Generation un-whitens: x = x_w D^(1/2) U^T + mu.

Likelihood (the model interface's unweighted NLL; not in the paper): x_w ~ N(pred_w, I), unit
variance in whitened space, where the data have unit variance; in raw units
-log p(x) = 1/2 |x_w - pred_w|^2 + k/2 log(2 pi) - log |det W|, log |det W| = -1/2 sum log d.
"""

from __future__ import annotations

import math

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
  num: int  # k float fields
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

  def _log_det_whitening(self) -> jax.Array:
    """log |det W| = -1/2 sum log eig(Sigma + eps I)."""
    _, cov = self.moments()
    d = jnp.linalg.eigvalsh(cov + self.eps * jnp.eye(cov.shape[0], dtype=cov.dtype))
    return jax.lax.stop_gradient(-0.5 * jnp.sum(jnp.log(d)))

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
    """Returns (loss [B] or None, nll [B] or None, raw prediction [B, k]): loss is the
    paper's summed squared error on whitened values, nll the Gaussian -log p(target) in raw
    units (module doc)."""
    pred_w = self.dec(emb)
    if target is None:
      return None, None, self.unwhiten(pred_w)
    sq = jnp.sum((self.whiten(target) - pred_w) ** 2, -1)
    nll = 0.5 * sq + 0.5 * self.num * math.log(2.0 * math.pi) - self._log_det_whitening()
    return sq, nll, self.unwhiten(pred_w)
