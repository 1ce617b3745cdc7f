"""Likelihood metrics of any VAE on the core's interface.

Generic over `alala_jax.models.base.VAEModel`: only `encode`, `reparameterize`, `recon(...).nll`,
`kl` and `log_density_ratio` (log p(z) - log q(z | x); by default a diagonal-Gaussian posterior
and the N(0, I) prior, overridden by the hierarchical VAEs) of the model are used.

  ELBO(x)   = E_q[log p(x | z)] - KL(q(z | x) || p(z))       one z sample, analytic KL (model.kl)
  IW-NLL(x) = -log (1/k sum_k p(x | z_k) p(z_k) / q(z_k | x)),  z_k ~ q(z | x)
              (Burda et al. 2016, Eq 8: the k-sample importance-weighted bound; k = 5000 in IWAE,
              1000 in BIVA, 500 in papers 001/004)

All in nats per example. Sample j of a call with key `key` uses the keys
`jax.random.fold_in(k_z, j)` (latent) and `jax.random.fold_in(k_recon, j)` (the decoder's own
randomness, if any), where `k_z, k_recon = jax.random.split(key)`: the estimate for given
(key, k) does not depend on `chunk`, and `elbo` with the same key uses sample 0's latent.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from alala_jax.data import batching
from alala_jax.models.base import VAEModel


def _sample_keys(key: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(k_z, k_recon) of the module doc."""
  k_z, k_recon = jax.random.split(key)
  return k_z, k_recon


def _kl_total(kl: jax.Array) -> jax.Array:
  """[B]: a model's KL summed over stochastic layers ([B] or [L, B])."""
  return kl if kl.ndim == 1 else jnp.sum(kl, 0)


def elbo_terms(
  model: VAEModel, variables: dict, x: Any, key: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """The two terms of the one-sample ELBO.

  Args:
    model: any VAEModel.
    variables: the model's variables.
    x: a batch of B inputs.
    key: PRNG key (module doc: the latent is sample 0's of `iw_nll` with this key).

  Returns:
    (nll [B] = -log p(x | z) at one z ~ q(z | x), kl [B] = KL(q(z | x) || p(z)) analytic,
    summed over stochastic layers), nats.
  """
  posterior, aux = model.encode(variables, x)
  k_z, k_recon = _sample_keys(key)
  z = model.reparameterize(variables, posterior, jax.random.fold_in(k_z, 0))
  nll = model.recon(variables, x, z, aux, key=jax.random.fold_in(k_recon, 0)).nll
  return nll, _kl_total(model.kl(posterior, z))


def elbo(model: VAEModel, variables: dict, x: Any, key: jax.Array) -> jax.Array:
  """One-sample ELBO with the analytic KL: log p(x | z) - KL [B], nats (elbo_terms)."""
  nll, kl = elbo_terms(model, variables, x, key)
  return -(nll + kl)


def log_weights(
  model: VAEModel,
  variables: dict,
  x: Any,
  posterior: Any,
  aux: Any,
  key: jax.Array,
  sample_ids: jax.Array,
) -> jax.Array:
  """log p(x | z_j) + log p(z_j) - log q(z_j | x) of the samples j in sample_ids.

  Args:
    model, variables, x: as `iw_nll`.
    posterior: q(z | x) of x (what `model.encode` returns); aux: the encoder's aux for x.
    key: the PRNG key of the estimate (module doc: how sample j's keys derive from it).
    sample_ids: [c] int sample indices j.

  Returns:
    [c, B] log importance weights, float32.
  """
  k_z, k_recon = _sample_keys(key)

  def one(j):
    z = model.reparameterize(variables, posterior, jax.random.fold_in(k_z, j))
    nll = model.recon(variables, x, z, aux, key=jax.random.fold_in(k_recon, j)).nll
    return model.log_density_ratio(posterior, z) - nll

  return jax.vmap(one)(sample_ids).astype(jnp.float32)


def iw_nll(
  model: VAEModel,
  variables: dict,
  x: Any,
  key: jax.Array,
  num_samples: int = 1000,
  chunk: int = 100,
) -> jax.Array:
  """Importance-weighted NLL estimate -log (1/k sum_j p(x, z_j) / q(z_j | x)) [B], nats.

  The k = num_samples samples are drawn `chunk` at a time under `lax.scan` with a running
  log-sum-exp in float32, so memory is O(chunk * B) (times the decoder's size per example). If
  chunk does not divide k the last chunk's surplus samples get weight 0.

  Args:
    model: a VAEModel (its `log_density_ratio` gives log p(z) - log q(z | x)).
    variables: the model's variables.
    x: a batch of B inputs.
    key: PRNG key (module doc: the result does not depend on chunk).
    num_samples: k >= 1.
    chunk: samples per scan step (clipped to k).

  Returns:
    [B] the estimate of -log p(x); an upper bound in expectation, decreasing with k.

  Raises:
    ValueError: num_samples or chunk below 1.
  """
  if num_samples < 1 or chunk < 1:
    raise ValueError(f"num_samples ({num_samples}) and chunk ({chunk}) must be >= 1")
  chunk = min(chunk, num_samples)
  num_chunks = -(-num_samples // chunk)
  posterior, aux = model.encode(variables, x)
  batch = jax.eval_shape(
    lambda: log_weights(model, variables, x, posterior, aux, key, jnp.arange(1))
  ).shape[1]

  def body(carry, i):
    running_max, running_sum = carry  # [B], [B]: sum exp(lw - running_max)
    ids = i * chunk + jnp.arange(chunk)  # [c]
    lw = log_weights(model, variables, x, posterior, aux, key, ids)  # [c, B]
    lw = jnp.where((ids < num_samples)[:, None], lw, -jnp.inf)
    new_max = jnp.maximum(running_max, jnp.max(lw, 0))
    shift = jnp.where(jnp.isfinite(new_max), new_max, 0.0)
    new_sum = running_sum * jnp.exp(running_max - shift) + jnp.sum(jnp.exp(lw - shift), 0)
    return (new_max, new_sum), None

  init = (jnp.full((batch,), -jnp.inf, jnp.float32), jnp.zeros((batch,), jnp.float32))
  (log_max, total), _ = jax.lax.scan(body, init, jnp.arange(num_chunks))
  return -(log_max + jnp.log(total) - math.log(num_samples))


def _batch_terms(
  model: VAEModel, variables: dict, x: Any, key: jax.Array, num_samples: int, chunk: int
) -> dict[str, jax.Array]:
  """{'recon', 'kl', 'iw_nll'}: [B] each, for one batch."""
  k_elbo, k_iw = jax.random.split(key)
  nll, kl = elbo_terms(model, variables, x, k_elbo)
  return {"recon": nll, "kl": kl, "iw_nll": iw_nll(model, variables, x, k_iw, num_samples, chunk)}


@functools.partial(jax.jit, static_argnames=("model", "num_samples", "chunk"))
def _eval_batch(
  variables: dict, x: jax.Array, key: jax.Array, *, model: VAEModel, num_samples: int, chunk: int
) -> dict[str, jax.Array]:
  return _batch_terms(model, variables, x, key, num_samples, chunk)


def evaluate_images(
  model: VAEModel,
  variables: dict,
  data_x: np.ndarray,
  key: jax.Array,
  batch_size: int = 100,
  num_samples: int = 1000,
  chunk: int = 100,
) -> dict[str, float]:
  """Mean ELBO, KL and IW-NLL of a data set, in fixed-size batches.

  Every batch has min(batch_size, N) rows (`data.batching.padded_batches`: the last one padded
  with copies of row 0 that are left out of the means), so the batch program compiles once per
  (model, shapes, num_samples, chunk) and is reused across calls. Batch i's ELBO uses k_elbo and its IW-NLL k_iw, where
  `k_elbo, k_iw = jax.random.split(jax.random.fold_in(key, i))`.

  Args:
    model: a hashable VAEModel (a static argument of the jitted batch program).
    variables: the model's variables.
    data_x: [N, ...] inputs (images [N, P]), N >= 1.
    key: PRNG key.
    batch_size: rows per batch.
    num_samples, chunk: `iw_nll`'s k and chunk.

  Returns:
    {'elbo': mean one-sample ELBO, 'recon': mean -log p(x | z), 'kl': mean analytic KL,
     'iw_nll': mean IW-NLL (nats per example), 'num_examples': N, 'num_samples': k}.
  """
  n = batching.num_examples(data_x)
  sums = {"recon": 0.0, "kl": 0.0, "iw_nll": 0.0}
  for i, xb, real in batching.padded_batches(np.asarray(data_x), batch_size):
    out = _eval_batch(
      variables,
      jnp.asarray(xb),
      jax.random.fold_in(key, i),
      model=model,
      num_samples=num_samples,
      chunk=chunk,
    )
    for k in sums:
      sums[k] += float(np.sum(np.asarray(out[k], np.float64)[:real]))
  means = {k: v / n for k, v in sums.items()}
  return {
    "elbo": -(means["recon"] + means["kl"]),
    **means,
    "num_examples": n,
    "num_samples": num_samples,
  }
