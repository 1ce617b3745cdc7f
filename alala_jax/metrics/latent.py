"""Latent-space metrics of any VAE with a diagonal-Gaussian posterior and a N(0, I) prior.

Generic over `alala_jax.models.base.VAEModel`: only `encode`, `reparameterize`, `recon(...).nll`
and `kl` are used (the last two through `metrics.likelihood`). A batch x may be any pytree whose
leaves share the leading example axis (an image array [B, P], a dict {'tokens': [B, T],
'length': [B]}); a data set is such a pytree with N rows.

  I_q(x; z) = E_x KL(q(z | x) || p(z)) - KL(q(z) || p(z))             paper 001 Eq 5
            = E_x E_q(z|x)[log q(z | x)] - E_q(z)[log q(z)],  q(z) = E_x q(z | x) aggregate
  AU        = #{d : Var_x E_q(z|x)[z_d] >= threshold}                   Burda et al. 2016
  PPL       = exp(total NLL over the set / total tokens), tokens incl. the end token
  mu_x,theta = E_p(z|x)[z] on a grid (scalar z)                          paper 001 Sec 3, App A

Mutual information, two estimators (DESIGN §3; always report which one a number comes from):
  'minibatch'  the reference code's (jxhe/vae-lagging-encoder, `GaussianEncoderBase.calc_mi` in
               modules/encoders/encoder.py, averaged by `calc_mi` in text.py weighted by batch
               size): q(z) is the mixture of the B posteriors of the same minibatch, so the
               estimate saturates at log B (about 3.47 nats for B = 32).
  'dataset'    q(z) is the mixture of all N posteriors of the evaluation set: saturates at log N.
Both use the analytic E_q(z|x)[log q(z | x)] = -D/2 log(2 pi) - 1/2 sum_d (1 + log sigma_d^2)
and one (or num_samples) z ~ q(z | x_j) per example for the second term. The cap holds in
expectation over the samples: since q_B(z_j) >= q(z_j | x_j) / B, an estimate is at most
log B + 1/2 mean_j sum_d (eps_jd^2 - 1) (eps_j the standard normal draw of z_j), whose
expectation is log B.

Keys. `mi_minibatch(key)` draws z = model.reparameterize(variables, q, key) (the default:
mean + scale * jax.random.normal(key, [B, D])); `mi_reference` uses fold_in(key, i) for batch i;
`mi_dataset` draws sample s of all N examples at once as
model.reparameterize(variables, q_all, fold_in(key, s)) with q_all the [N, D] posteriors, so its
value does not depend on batch_size or chunk. `evaluate_latent` splits its key into
(k_lik, k_mi_minibatch, k_mi_dataset) = jax.random.split(key, 3) and passes them on as
`likelihood.evaluate_images`, `mi_reference` and `mi_dataset` would.

Data sets are processed in fixed-size batches of min(batch_size, N) rows; the last one is padded
with copies of row 0 that are left out of every sum, mean and mixture, so each batch program
compiles once per (model, shapes, static arguments).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from alala_jax.data.batching import num_examples, padded_batches
from alala_jax.metrics import likelihood
from alala_jax.models.base import DiagGaussian, VAEModel, standard_normal_log_prob

MINIBATCH, DATASET = "minibatch", "dataset"  # the two MI estimators (module doc)
# paper 001 App A: the interval [-20, 20] with stride 0.01 (the reference's toy.py uses
# torch.arange(zmin, zmax, dz), which leaves out zmax, with a default dz of 0.1)
DEFAULT_GRID = (-20.0, 20.0, 4001)


def _row_mask(real: int, size: int) -> np.ndarray:
  return np.arange(size) < real


def _check_posterior(posterior: Any, who: str) -> DiagGaussian:
  if not isinstance(posterior, DiagGaussian):
    raise TypeError(f"{who} needs a DiagGaussian posterior, got {type(posterior).__name__}")
  return posterior


# --------------------------------------------------------------------------- mutual information


def _neg_entropy(posterior: DiagGaussian) -> jax.Array:
  """E_q(z|x)[log q(z | x)] = -D/2 log(2 pi) - 1/2 sum_d (1 + log sigma_d^2): [B] nats."""
  d = posterior.mean.shape[-1]
  return -0.5 * d * math.log(2.0 * math.pi) - jnp.sum(0.5 + jnp.log(posterior.scale), -1)


def _log_mixture(posterior: DiagGaussian, z: jax.Array, mask: jax.Array | None) -> jax.Array:
  """log (1/n sum_{i in mask} N(z_j; mu_i, sigma_i^2)) [M] of z [M, D]; memory O(M * B * D)."""
  log_density = posterior.log_prob(z[:, None, :])  # [M, B]: z_j against every posterior i
  if mask is None:
    return jax.nn.logsumexp(log_density, -1) - math.log(posterior.mean.shape[0])
  log_density = jnp.where(mask[None, :], log_density, -jnp.inf)
  return jax.nn.logsumexp(log_density, -1) - jnp.log(jnp.sum(mask))


def mi_from_samples(
  posterior: DiagGaussian, z: jax.Array, row_mask: jax.Array | None = None
) -> jax.Array:
  """The minibatch MI estimate from given posteriors and one latent sample per example.

  Args:
    posterior: q(z | x_i) of the batch (mean, scale [B, D]).
    z: [B, D], z_j ~ q(z | x_j).
    row_mask: optional [B] bool, the real rows: the others are left out of both means and of
      the mixture q(z).

  Returns:
    scalar, nats: mean_j neg_entropy_j - mean_j log (1/n sum_i N(z_j; mu_i, sigma_i^2)), the sums
    over the n real rows (module doc).
  """
  neg_entropy = _neg_entropy(posterior)  # [B]
  log_qz = _log_mixture(posterior, z, row_mask)  # [B]
  if row_mask is None:
    return jnp.mean(neg_entropy) - jnp.mean(log_qz)
  w = row_mask.astype(neg_entropy.dtype) / jnp.sum(row_mask)
  return jnp.sum(w * neg_entropy) - jnp.sum(jnp.where(row_mask, log_qz, 0.0) * w)


def mi_minibatch(
  model: VAEModel, variables: dict, x: Any, key: jax.Array, row_mask: jax.Array | None = None
) -> jax.Array:
  """I_q(x; z) of one minibatch, exactly the reference code's estimator (module doc).

  Args:
    model: a VAEModel whose posterior is a DiagGaussian and whose prior is N(0, I).
    variables: the model's variables.
    x: a batch of B inputs (any pytree).
    key: PRNG key of the one latent sample per example, z = model.reparameterize(variables,
      q, key).
    row_mask: optional [B] bool of the real rows (padding left out).

  Returns:
    scalar MI estimate, nats; at most about log B (module doc: exact bound).

  Raises:
    TypeError: the posterior is not a DiagGaussian.
  """
  posterior, _ = model.encode(variables, x)
  posterior = _check_posterior(posterior, "mi_minibatch")
  z = model.reparameterize(variables, posterior, key)
  return mi_from_samples(posterior, z, row_mask)


@functools.partial(jax.jit, static_argnames=("model",))
def _mi_batch_program(variables, x, row_mask, key, *, model):
  return mi_minibatch(model, variables, x, key, row_mask)


def mi_reference(
  model: VAEModel, variables: dict, data: Any, key: jax.Array, batch_size: int
) -> dict[str, Any]:
  """The reference code's data-set MI: minibatch estimates averaged weighted by batch size.

  Batch i (rows i * bs .. of the data in order, bs = min(batch_size, N)) uses the key
  fold_in(key, i); a short last batch is a mixture of its own real rows only, as in the
  reference (its cap is log of its size).

  Args:
    model: a hashable VAEModel (a static argument of the jitted batch program).
    variables: the model's variables.
    data: a pytree of [N, ...] inputs.
    key: PRNG key.
    batch_size: B, rows per minibatch.

  Returns:
    {'mi': sum_i B_i MI_i / N (nats), 'mi_estimator': 'minibatch', 'mi_cap': sum_i B_i log B_i
     / N (log B when B divides N), 'mi_batch_size': bs, 'num_examples': N}.
  """
  total = cap = 0.0
  n = num_examples(data)
  bs = 0
  for i, xb, real in padded_batches(data, batch_size):
    bs = num_examples(xb)
    mi = _mi_batch_program(
      variables, xb, _row_mask(real, bs), jax.random.fold_in(key, i), model=model
    )
    total += real * float(mi)
    cap += real * math.log(real)
  return {
    "mi": total / n,
    "mi_estimator": MINIBATCH,
    "mi_cap": cap / n,
    "mi_batch_size": bs,
    "num_examples": n,
  }


@functools.partial(jax.jit, static_argnames=("model",))
def _encode_program(variables, x, *, model):
  posterior, _ = model.encode(variables, x)
  posterior = _check_posterior(posterior, "latent metrics")
  return posterior.mean, posterior.scale


def collect_posteriors(
  model: VAEModel, variables: dict, data: Any, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
  """(mean, scale): the posteriors q(z | x_i) of a whole data set, numpy [N, D] each."""
  means, scales = [], []
  for _, xb, real in padded_batches(data, batch_size):
    m, s = jax.device_get(_encode_program(variables, xb, model=model))
    means.append(m[:real])
    scales.append(s[:real])
  return np.concatenate(means), np.concatenate(scales)


@functools.partial(jax.jit, static_argnames=("model", "num_samples", "chunk"))
def _mi_dataset_program(variables, mean, scale, key, *, model, num_samples, chunk):
  posterior = DiagGaussian(mean, scale)
  n, d = mean.shape
  z = jax.vmap(lambda s: model.reparameterize(variables, posterior, jax.random.fold_in(key, s)))(
    jnp.arange(num_samples)
  ).reshape(num_samples * n, d)  # row s * N + j: sample s of example j
  m = num_samples * n
  c = min(chunk, m)
  num_chunks = -(-m // c)
  z = jnp.pad(z, ((0, num_chunks * c - m), (0, 0))).reshape(num_chunks, c, d)
  log_qz = jax.lax.map(lambda zc: _log_mixture(posterior, zc, None), z).reshape(-1)[:m]
  return jnp.mean(_neg_entropy(posterior)) - jnp.mean(log_qz)


def mi_from_posteriors(
  model: VAEModel,
  variables: dict,
  mean: np.ndarray,
  scale: np.ndarray,
  key: jax.Array,
  num_samples: int = 1,
  chunk: int = 128,
) -> dict[str, Any]:
  """The whole-set MI estimate from the N posteriors of a data set (`mi_dataset`)."""
  if num_samples < 1 or chunk < 1:
    raise ValueError(f"num_samples ({num_samples}) and chunk ({chunk}) must be >= 1")
  n = int(np.shape(mean)[0])
  mi = _mi_dataset_program(
    variables,
    jnp.asarray(mean),
    jnp.asarray(scale),
    key,
    model=model,
    num_samples=num_samples,
    chunk=chunk,
  )
  return {
    "mi": float(mi),
    "mi_estimator": DATASET,
    "mi_cap": math.log(n),
    "mi_samples": num_samples,
    "num_examples": n,
  }


def mi_dataset(
  model: VAEModel,
  variables: dict,
  data: Any,
  key: jax.Array,
  batch_size: int,
  num_samples: int = 1,
  chunk: int = 128,
) -> dict[str, Any]:
  """I_q(x; z) with the aggregate posterior of the whole evaluation set.

  All N posteriors are collected first (batch_size rows at a time); then for num_samples
  z_js ~ q(z | x_j) per example, log q(z_js) = logsumexp_i log N(z_js; mu_i, sigma_i^2) - log N
  over all N examples, `chunk` latents at a time (memory O(chunk * N * D)):
  MI = mean_j E_q(z|x_j)[log q(z | x_j)] - mean_js log q(z_js).

  Args:
    model: a hashable VAEModel with a DiagGaussian posterior and N(0, I) prior.
    variables: the model's variables.
    data: a pytree of [N, ...] inputs (N up to ~10^4: the estimate costs O(S * N^2 * D)).
    key: PRNG key (module doc: sample s uses fold_in(key, s) for all N rows at once).
    batch_size: rows per encoder batch (does not change the result).
    num_samples: S, latents per example.
    chunk: latents per step of the mixture's log-sum-exp.

  Returns:
    {'mi': nats, 'mi_estimator': 'dataset', 'mi_cap': log N, 'mi_samples': S,
     'num_examples': N}.

  Raises:
    ValueError: num_samples or chunk below 1, an empty data set.
    TypeError: the posterior is not a DiagGaussian.
  """
  mean, scale = collect_posteriors(model, variables, data, batch_size)
  return mi_from_posteriors(model, variables, mean, scale, key, num_samples, chunk)


def mutual_information(
  model: VAEModel,
  variables: dict,
  data: Any,
  key: jax.Array,
  batch_size: int,
  estimator: str = DATASET,
  **kw,
) -> dict[str, Any]:
  """I_q(x; z) of a data set with the named estimator (module doc).

  Args:
    model, variables, data, key, batch_size: as `mi_reference` / `mi_dataset`.
    estimator: 'minibatch' (`mi_reference`, capped at log batch_size) or 'dataset'
      (`mi_dataset`, capped at log N).
    **kw: `mi_dataset`'s num_samples and chunk.

  Returns:
    a dict with at least {'mi': nats, 'mi_estimator': the estimator's name, 'mi_cap': its
    saturation value}.

  Raises:
    ValueError: an unknown estimator.
  """
  if estimator == MINIBATCH:
    if kw:
      raise ValueError(f"the minibatch estimator takes no options, got {sorted(kw)}")
    return mi_reference(model, variables, data, key, batch_size)
  if estimator == DATASET:
    return mi_dataset(model, variables, data, key, batch_size, **kw)
  raise ValueError(f"estimator must be {MINIBATCH!r} or {DATASET!r}, got {estimator!r}")


# --------------------------------------------------------------------------- active units


def au_from_means(means: np.ndarray, threshold: float = 0.01) -> dict[str, Any]:
  """Active units of posterior means [N, D] (`active_units`)."""
  means = np.asarray(means, np.float64)
  if means.ndim != 2 or means.shape[0] < 2:
    raise ValueError(f"active units need posterior means [N >= 2, D], got {means.shape}")
  variances = np.var(means, axis=0, ddof=1)
  return {"au": int(np.sum(variances >= threshold)), "variances": variances, "threshold": threshold}


def active_units(
  model: VAEModel, variables: dict, data: Any, batch_size: int, threshold: float = 0.01
) -> dict[str, Any]:
  """The number of active latent dimensions (Burda et al. 2016; paper 001 Sec 6).

  A_d = Cov_x(E_q(z|x)[z_d]): the variance over the data set of the posterior mean of dimension
  d, with ddof = 1 (the reference `calc_au` in text.py divides by N - 1); dimension d is active
  if A_d >= threshold. The reference compares with `>=` (paper and DESIGN §3 write "> 0.01");
  we follow the code. Variances are computed in float64 from the float32 means.

  Args:
    model: a hashable VAEModel with a DiagGaussian posterior.
    variables: the model's variables.
    data: a pytree of [N, ...] inputs, N >= 2.
    batch_size: rows per encoder batch.
    threshold: delta, in squared latent units.

  Returns:
    {'au': int, 'variances': float64 [D], 'threshold': delta}.

  Raises:
    ValueError: fewer than 2 examples.
  """
  mean, _ = collect_posteriors(model, variables, data, batch_size)
  return au_from_means(mean, threshold)


# --------------------------------------------------------------------------- perplexity


def perplexity(total_nll_nats: float, num_tokens: float) -> float:
  """exp(total NLL / number of tokens).

  Args:
    total_nll_nats: the NLL summed over a data set (not averaged), nats.
    num_tokens: the tokens the NLL scores, summed over the same set. Convention (DESIGN §3,
      the reference's `(sent_len - 1) * batch_size`): every predicted token including the end
      token, excluding the start token, which is given.

  Returns:
    the per-token perplexity; inf when it exceeds the float range (a per-token NLL above ~709
    nats, e.g. a diverged bound), so that an evaluation still reports its other numbers.

  Raises:
    ValueError: num_tokens not positive.
  """
  if not num_tokens > 0:
    raise ValueError(f"num_tokens must be positive, got {num_tokens}")
  try:
    return float(math.exp(total_nll_nats / num_tokens))
  except OverflowError:
    return math.inf


def _latent_batch_terms(
  model: VAEModel,
  variables: dict,
  x: Any,
  row_mask: jax.Array,
  key_lik: jax.Array,
  key_mi: jax.Array,
  iw_samples: int,
  iw_chunk: int,
) -> dict[str, jax.Array]:
  """One batch of `evaluate_latent`: ELBO terms and IW-NLL [B], posterior [B, D], minibatch MI."""
  k_elbo, k_iw = jax.random.split(key_lik)  # likelihood.evaluate_images' keys
  nll, kl = likelihood.elbo_terms(model, variables, x, k_elbo)
  iw = likelihood.iw_nll(model, variables, x, k_iw, iw_samples, iw_chunk)
  posterior, _ = model.encode(variables, x)
  posterior = _check_posterior(posterior, "evaluate_latent")
  z = model.reparameterize(variables, posterior, key_mi)
  return {
    "recon": nll,
    "kl": kl,
    "iw_nll": iw,
    "mean": posterior.mean,
    "scale": posterior.scale,
    "mi": mi_from_samples(posterior, z, row_mask),
  }


@functools.partial(jax.jit, static_argnames=("model", "iw_samples", "iw_chunk"))
def _latent_batch_program(
  variables, x, row_mask, key_lik, key_mi, *, model, iw_samples, iw_chunk
) -> dict[str, jax.Array]:
  return _latent_batch_terms(model, variables, x, row_mask, key_lik, key_mi, iw_samples, iw_chunk)


def evaluate_latent(
  model: VAEModel,
  variables: dict,
  data: Any,
  key: jax.Array,
  *,
  batch_size: int,
  iw_samples: int = 500,
  iw_chunk: int = 100,
  num_tokens_fn: Callable[[Any], Any] | None = None,
  au_threshold: float = 0.01,
  mi_samples: int = 1,
  mi_chunk: int = 128,
) -> dict[str, Any]:
  """The evaluation table of paper 001 (NLL, KL, MI, AU, PPL) of a data set, in one pass.

  Keys (module doc): k_lik, k_mi_minibatch, k_mi_dataset = jax.random.split(key, 3); batch i's
  ELBO and IW-NLL use split(fold_in(k_lik, i)) as `likelihood.evaluate_images(key=k_lik)`, its
  minibatch MI fold_in(k_mi_minibatch, i) as `mi_reference`, and the whole-set MI k_mi_dataset
  as `mi_dataset`; so each entry equals the standalone function's with that key.

  Args:
    model: a hashable VAEModel with a DiagGaussian posterior and N(0, I) prior.
    variables: the model's variables.
    data: a pytree of [N, ...] inputs, N >= 2.
    key: PRNG key.
    batch_size: rows per batch (also the minibatch MI's B).
    iw_samples, iw_chunk: `likelihood.iw_nll`'s k and chunk (k = 500 in paper 001).
    num_tokens_fn: optional, batch -> [b] tokens per example (incl. the end token, `perplexity`)
      of the unpadded batch (numpy leaves); enables the perplexities.
    au_threshold: `active_units`' delta.
    mi_samples, mi_chunk: `mi_dataset`'s num_samples and chunk.

  Returns:
    {'elbo', 'recon', 'kl', 'iw_nll': means over the set, nats per example;
     'mi_minibatch', 'mi_minibatch_cap', 'mi_dataset', 'mi_dataset_cap': nats (module doc);
     'au': int, 'au_variances': float64 [D]; 'num_examples': N, 'iw_samples': k,
     'batch_size': rows per batch}, and with num_tokens_fn: 'num_tokens' (total),
    'ppl_iw' = exp(sum IW-NLL / tokens), 'ppl_elbo' = exp(sum (recon + KL) / tokens).
  """
  k_lik, k_mi_batch, k_mi_data = jax.random.split(key, 3)
  n = num_examples(data)
  sums = {"recon": 0.0, "kl": 0.0, "iw_nll": 0.0}
  mi_total = mi_cap = 0.0
  tokens = 0.0
  means, scales = [], []
  bs = 0
  for i, xb, real in padded_batches(data, batch_size):
    bs = num_examples(xb)
    out = jax.device_get(
      _latent_batch_program(
        variables,
        xb,
        _row_mask(real, bs),
        jax.random.fold_in(k_lik, i),
        jax.random.fold_in(k_mi_batch, i),
        model=model,
        iw_samples=iw_samples,
        iw_chunk=iw_chunk,
      )
    )
    for k in sums:
      sums[k] += float(np.sum(np.asarray(out[k], np.float64)[:real]))
    mi_total += real * float(out["mi"])
    mi_cap += real * math.log(real)
    means.append(out["mean"][:real])
    scales.append(out["scale"][:real])
    if num_tokens_fn is not None:
      real_rows = jax.tree.map(lambda a, real=real: a[:real], xb)
      tokens += float(np.sum(np.asarray(num_tokens_fn(real_rows), np.float64)))
  mean, scale = np.concatenate(means), np.concatenate(scales)
  mi_data = mi_from_posteriors(model, variables, mean, scale, k_mi_data, mi_samples, mi_chunk)
  au = au_from_means(mean, au_threshold)
  result = {
    "elbo": -(sums["recon"] + sums["kl"]) / n,
    **{k: v / n for k, v in sums.items()},
    "mi_minibatch": mi_total / n,
    "mi_minibatch_cap": mi_cap / n,
    "mi_dataset": mi_data["mi"],
    "mi_dataset_cap": mi_data["mi_cap"],
    "au": au["au"],
    "au_variances": au["variances"],
    "num_examples": n,
    "iw_samples": iw_samples,
    "batch_size": bs,
  }
  if num_tokens_fn is not None:
    result["num_tokens"] = tokens
    result["ppl_iw"] = perplexity(sums["iw_nll"], tokens)
    result["ppl_elbo"] = perplexity(sums["recon"] + sums["kl"], tokens)
  return result


# --------------------------------------------------------------------------- posterior mean space


def default_grid() -> jax.Array:
  """Paper 001 App A's grid: [-20, 20] with stride 0.01, both ends included ([4001])."""
  lo, hi, num = DEFAULT_GRID
  return jnp.linspace(lo, hi, num)


def posterior_mean_space(
  model: VAEModel,
  variables: dict,
  x: Any,
  key: jax.Array | None,
  grid: jax.Array | None = None,
  chunk: int = 512,
) -> tuple[jax.Array, jax.Array]:
  """The points (mu_x,theta, mu_x,phi) of paper 001's posterior mean space, scalar latent.

  mu_x,theta = E_p(z|x)[z] ~ sum_i z_i p(x | z_i) p(z_i) / sum_i p(x | z_i) p(z_i) over the grid
  z_i (App A's Riemann sum; a uniform stride cancels), with log p(x | z_i) = -recon(...).nll and
  log p(z_i) = log N(z_i; 0, 1), accumulated `chunk` grid points at a time under `lax.scan` with
  a running maximum (memory O(chunk * B) times the decoder's size per example). The reference
  (`VAE.calc_model_posterior_mean` in modules/vae.py) normalises the same grid joint.

  Traceable: jit it with model and chunk static.

  Args:
    model: a VAEModel with latent_dim 1, a DiagGaussian posterior and a N(0, 1) prior.
    variables: the model's variables.
    x: a batch of B inputs.
    key: the decoder's own randomness (dropout, if any; None if it has none), the same key at
      every grid point.
    grid: [G] latent values; default `default_grid()` ([-20, 20], stride 0.01, App A).
    chunk: grid points per scan step (clipped to G).

  Returns:
    (mu_model [B]: mu_x,theta, mu_encoder [B]: mu_x,phi, the mean of q(z | x) from encode).

  Raises:
    ValueError: latent dimension other than 1, or chunk below 1.
    TypeError: the posterior is not a DiagGaussian.
  """
  posterior, aux = model.encode(variables, x)
  posterior = _check_posterior(posterior, "posterior_mean_space")
  batch, d = posterior.mean.shape
  if d != 1:
    raise ValueError(f"the posterior mean space needs a scalar latent, got latent_dim {d}")
  if chunk < 1:
    raise ValueError(f"chunk must be >= 1, got {chunk}")
  grid = (default_grid() if grid is None else jnp.asarray(grid)).reshape(-1)
  grid = grid.astype(posterior.mean.dtype)
  g = grid.shape[0]
  chunk = min(chunk, g)
  num_chunks = -(-g // chunk)
  padded = jnp.pad(grid, (0, num_chunks * chunk - g))

  def log_joint(zv):  # [B]: log p(x, z = zv)
    z = jnp.full((batch, 1), zv, grid.dtype)
    return standard_normal_log_prob(z) - model.recon(variables, x, z, aux, key=key).nll

  def body(carry, i):
    running_max, total, weighted = carry  # [B] each: sums of exp(lj - running_max) (times z)
    ids = i * chunk + jnp.arange(chunk)
    zs = padded[ids]  # [c]
    lj = jax.vmap(log_joint)(zs).astype(jnp.float32)  # [c, B]
    lj = jnp.where((ids < g)[:, None], lj, -jnp.inf)
    new_max = jnp.maximum(running_max, jnp.max(lj, 0))
    shift = jnp.where(jnp.isfinite(new_max), new_max, 0.0)
    rescale = jnp.exp(running_max - shift)
    w = jnp.exp(lj - shift)  # [c, B]
    total = total * rescale + jnp.sum(w, 0)
    weighted = weighted * rescale + jnp.sum(w * zs[:, None].astype(jnp.float32), 0)
    return (new_max, total, weighted), None

  zeros = jnp.zeros((batch,), jnp.float32)
  init = (jnp.full((batch,), -jnp.inf, jnp.float32), zeros, zeros)
  (_, total, weighted), _ = jax.lax.scan(body, init, jnp.arange(num_chunks))
  return weighted / total, posterior.mean[:, 0]


def plot_posterior_mean_space(
  points_by_stage: Mapping[str, tuple[Any, Any]],
  path: str,
  title: str = "",
  *,
  limit: float | None = None,
) -> str:
  """A PNG like paper 001 Fig 2: one panel per training stage, each example a point
  (mu_x,theta, mu_x,phi), the diagonal mu_x,theta = mu_x,phi dashed.

  Drawn with matplotlib's object API (`Figure` + `FigureCanvasAgg`, imported here), so the
  caller's pyplot state and backend are untouched.

  Args:
    points_by_stage: stage label (e.g. 'iter = 0') -> (mu_model [n], mu_encoder [n]), in
      panel order.
    path: the PNG file to write.
    title: optional figure title.
    limit: half-width of the square axes, shared by all panels; default: the largest |value|
      (at least 0.1), times 1.1.

  Returns:
    path.

  Raises:
    ValueError: no stages, or a stage whose two arrays differ in length.
  """
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  if not points_by_stage:
    raise ValueError("points_by_stage is empty")
  stages = {
    name: (np.asarray(m, np.float64).reshape(-1), np.asarray(e, np.float64).reshape(-1))
    for name, (m, e) in points_by_stage.items()
  }
  for name, (m, e) in stages.items():
    if m.shape != e.shape:
      raise ValueError(f"stage {name!r}: {m.shape[0]} model means but {e.shape[0]} encoder means")
  if limit is None:
    biggest = max((float(np.max(np.abs(np.concatenate(p)), initial=0.0)) for p in stages.values()))
    limit = 1.1 * max(biggest, 0.1)
  k = len(stages)
  fig = Figure(figsize=(3.2 * k, 3.4 + (0.3 if title else 0.0)))
  FigureCanvasAgg(fig)
  axes = fig.subplots(1, k, squeeze=False)[0]
  for ax, (name, (m, e)) in zip(axes, stages.items()):
    ax.plot([-limit, limit], [-limit, limit], "--", c="0.5", lw=0.8, zorder=1)
    ax.scatter(m, e, s=6, alpha=0.6, zorder=2)
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.set_title(name)
    ax.set_xlabel(r"$\mu_{x,\theta}$ (model posterior mean)")
    ax.grid(alpha=0.3)
  axes[0].set_ylabel(r"$\mu_{x,\phi}$ (approximate posterior mean)")
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  return path
