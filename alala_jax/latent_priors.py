"""Generation priors: distributions over a trained model's latents to generate from (issue #13).

Paper 000 (Sec 2.4) generates from z ~ N(mean, cov) of the sampled training latents, tracked by
a moving average during training ('tracked'). One Gaussian over an aggregate posterior that is
clustered (addresses cluster by zip code) puts most samples in the holes between the clusters,
so the generated coordinates fit no zip. This module offers, next to it, distributions fitted
to the FINAL model's latents of training records, in a pass that is part of the run:

* 'gaussian'  -- one Gaussian re-fitted on z ~ q(z | x) of the training records (the paper's
  distribution without the moving average's lag);
* 'gmm'       -- a Gaussian mixture (full covariances, EM), its number of components chosen by
  the held-out log-likelihood among `components`;
* 'aggregate' -- the aggregate posterior itself: q(z | x) of a uniformly drawn training record.

Every prior is a pytree with `sample(key, n) -> [n, D]` and `log_prob(z [n, D]) -> [n]`, so
priors are compared on one scale: the mean log-density of z ~ q(z | x) of held-out records
(records not used in the fit). `Mixture` with one component is the Gaussian.

EM details (documented choices, not from a paper): initial means are K distinct fitting points
drawn at random, initial covariances the global covariance, uniform weights; `iters` EM
iterations; the M-step shrinks each covariance towards the global covariance with a pseudo-count
of 1 point, (S_k + Sigma) / (n_k + 1), so that a component that owns few points stays well
conditioned and an emptied one reverts to the global covariance instead of collapsing on a point.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from alala_jax import files
from alala_jax.data import batching

KINDS = ("tracked", "gaussian", "gmm", "aggregate")
DEFAULT_COMPONENTS = (1, 2, 4, 8, 16, 32, 64)
_LOG_2PI = math.log(2.0 * math.pi)


class Mixture(NamedTuple):
  """sum_k w_k N(means_k, chols_k chols_k^T)."""

  log_weights: jax.Array  # [K]
  means: jax.Array  # [K, D]
  chols: jax.Array  # [K, D, D] lower Cholesky factors of the covariances

  @property
  def num_components(self) -> int:
    return int(self.means.shape[0])

  def component_log_prob(self, z: jax.Array) -> jax.Array:
    """log N(z_n; means_k, cov_k): [n, K]."""

    def one(mean, chol):
      sol = jax.scipy.linalg.solve_triangular(chol, (z - mean).T, lower=True)  # [D, n]
      log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol)))
      return -0.5 * (jnp.sum(sol**2, 0) + log_det + z.shape[-1] * _LOG_2PI)

    return jax.vmap(one, out_axes=1)(self.means, self.chols)

  def log_prob(self, z: jax.Array) -> jax.Array:
    """[n]."""
    return jax.nn.logsumexp(self.component_log_prob(z) + self.log_weights, axis=1)

  def _draw(self, key: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
    """(component [n], standard normal noise [n, D]) of n samples."""
    k_c, k_e = jax.random.split(key)
    c = jax.random.categorical(k_c, self.log_weights, shape=(n,))
    return c, jax.random.normal(k_e, (n, self.means.shape[1]), self.means.dtype)

  def sample(self, key: jax.Array, n: int, temperature: float = 1.0) -> jax.Array:
    """[n, D]; `temperature` scales the components' standard deviations."""
    c, eps = self._draw(key, n)
    return self.means[c] + jnp.einsum("nij,nj->ni", self.chols[c], temperature * eps)

  def component_scales(self, key: jax.Array, n: int, temperature: float = 1.0) -> jax.Array:
    """[n, D]: the per-dimension standard deviation (square root of the covariance's diagonal)
    of the component each of `sample(key, n, temperature)`'s samples came from."""
    c, _ = self._draw(key, n)
    return temperature * jnp.sqrt(jnp.sum(self.chols[c] ** 2, -1))


class Aggregate(NamedTuple):
  """(1 / N) sum_i N(means_i, diag(scales_i^2)): q(z | x_i) of N training records."""

  means: jax.Array  # [N, D]
  scales: jax.Array  # [N, D]

  def log_prob(self, z: jax.Array) -> jax.Array:
    """[n], through matmuls: sum_d (z_d - m_d)^2 / s_d^2 expanded, never [n, N, D]."""
    prec = 1.0 / self.scales**2  # [N, D]
    dot = functools.partial(jnp.matmul, precision=jax.lax.Precision.HIGHEST)  # no TF32 on GPU
    quad = (
      dot(z**2, prec.T) - 2.0 * dot(z, (self.means * prec).T) + jnp.sum(self.means**2 * prec, 1)
    )  # [n, N]
    log_norm = -jnp.sum(jnp.log(self.scales), 1) - 0.5 * z.shape[-1] * _LOG_2PI  # [N]
    n_rec = self.means.shape[0]
    return jax.nn.logsumexp(-0.5 * quad + log_norm[None, :], axis=1) - math.log(n_rec)

  def _draw(self, key: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
    """(record [n], standard normal noise [n, D]) of n samples."""
    k_i, k_e = jax.random.split(key)
    i = jax.random.randint(k_i, (n,), 0, self.means.shape[0])
    return i, jax.random.normal(k_e, (n, self.means.shape[1]))

  def sample(self, key: jax.Array, n: int, temperature: float = 1.0) -> jax.Array:
    """[n, D]: z = means_i + temperature * scales_i * eps for uniformly drawn records i
    (temperature 0 decodes the posterior means: reconstructions of training records)."""
    i, eps = self._draw(key, n)
    return self.means[i] + temperature * self.scales[i] * eps

  def component_scales(self, key: jax.Array, n: int, temperature: float = 1.0) -> jax.Array:
    """[n, D]: temperature * scales_i of the record each of `sample(key, n, temperature)`'s
    samples came from."""
    i, _ = self._draw(key, n)
    return temperature * self.scales[i]


Prior = Mixture | Aggregate


def tempered(prior: Prior, temperature: float) -> Prior:
  """The distribution `prior.sample(key, n, temperature)` draws from, as a prior of its own
  (its spreads scaled by `temperature` > 0), e.g. for its `log_prob`."""
  if temperature <= 0:
    raise ValueError(f"tempered needs a temperature > 0, got {temperature}")
  if isinstance(prior, Aggregate):
    return Aggregate(prior.means, prior.scales * temperature)
  return Mixture(prior.log_weights, prior.means, prior.chols * temperature)


def gaussian(mean: jax.Array, cov: jax.Array, jitter: float = 1e-6) -> Mixture:
  """N(mean, cov) as a one-component mixture (jitter * I added before the Cholesky factor, as
  the record VAE's own generation does)."""
  mean, cov = jnp.asarray(mean, jnp.float32), jnp.asarray(cov, jnp.float32)
  chol = jnp.linalg.cholesky(cov + jitter * jnp.eye(cov.shape[0], dtype=cov.dtype))
  return Mixture(jnp.zeros((1,)), mean[None], chol[None])


def fit_gaussian(z: jax.Array) -> Mixture:
  """Maximum-likelihood mean and the sample covariance (ddof = 1) of z [N, D]."""
  z = jnp.asarray(z, jnp.float32)
  return gaussian(jnp.mean(z, 0), jnp.cov(z, rowvar=False, ddof=1).reshape(z.shape[1], -1))


@functools.partial(jax.jit, static_argnames=("num_components", "iters"))
def fit_mixture(z: jax.Array, key: jax.Array, num_components: int, iters: int = 100) -> Mixture:
  """A K-component full-covariance Gaussian mixture fitted to z [N, D] by EM (see the module
  docstring for the initialisation and the covariance shrinkage)."""
  z = jnp.asarray(z, jnp.float32)
  n, d = z.shape
  glob_mean = jnp.mean(z, 0)
  glob_cov = jnp.cov(z, rowvar=False, ddof=1).reshape(d, d) + 1e-6 * jnp.eye(d)
  k = num_components
  idx = jax.random.choice(key, n, (k,), replace=False)
  init = Mixture(
    jnp.full((k,), -math.log(k)),
    z[idx],
    jnp.broadcast_to(jnp.linalg.cholesky(glob_cov), (k, d, d)),
  )

  def em_step(_, mix: Mixture) -> Mixture:
    logp = mix.component_log_prob(z) + mix.log_weights  # [N, K]
    resp = jnp.exp(logp - jax.nn.logsumexp(logp, axis=1, keepdims=True))  # [N, K]
    nk = jnp.sum(resp, 0)  # [K]
    means = (resp.T @ z + 1e-3 * glob_mean) / (nk + 1e-3)[:, None]
    diff = z[None, :, :] - means[:, None, :]  # [K, N, D]
    scatter = jnp.einsum("nk,kni,knj->kij", resp, diff, diff)
    cov = (scatter + glob_cov) / (nk + 1.0)[:, None, None]
    return Mixture(jnp.log(nk / n + 1e-12), means, jnp.linalg.cholesky(cov))

  return jax.lax.fori_loop(0, iters, em_step, init)


def mean_log_prob(prior: Prior, z: jax.Array, chunk: int = 1000) -> float:
  """Mean log-density of z [n, D] under the prior, in chunks of `chunk` rows."""
  z = np.asarray(z, np.float32)
  total = 0.0
  for _, part, real in batching.padded_batches(z, chunk):
    total += float(jnp.sum(_log_prob(prior, part)[:real]))
  return total / len(z)


# one compiled program per prior type and shape (a jit of a fresh lambda per call recompiled)
_log_prob = jax.jit(lambda prior, z: prior.log_prob(z))


def select_mixture(
  z_fit: jax.Array,
  z_heldout: jax.Array,
  key: jax.Array,
  components: Sequence[int] = DEFAULT_COMPONENTS,
  iters: int = 100,
) -> tuple[Mixture, dict[int, float]]:
  """The mixture whose number of components (from `components`, those below the number of
  fitting points) has the best held-out mean log-likelihood, and that score for each K.
  (`fit_priors` reports the chosen K's score on the same held-out set, so the GMM's reported
  score is optimistic by the selection among the candidates.)"""
  scores: dict[int, float] = {}
  best: Mixture | None = None
  best_score = -math.inf
  for k in sorted(set(int(c) for c in components)):
    if k < 1 or k > len(z_fit):
      continue
    mix = (
      fit_gaussian(z_fit) if k == 1 else fit_mixture(z_fit, jax.random.fold_in(key, k), k, iters)
    )
    scores[k] = mean_log_prob(mix, z_heldout)
    if best is None or scores[k] > best_score:
      best, best_score = mix, scores[k]
  if best is None:
    raise ValueError(f"no usable component count in {list(components)} for {len(z_fit)} points")
  return best, scores


class Posteriors(NamedTuple):
  """Posterior means and scales of a set of records, and one sample z ~ q(z | x) of each."""

  means: np.ndarray  # [N, D]
  scales: np.ndarray  # [N, D]
  samples: np.ndarray  # [N, D]


def encode_posteriors(
  encode: Callable[[Any], Any], data: Any, batch_size: int, key: jax.Array
) -> Posteriors:
  """q(z | x) of every row of the data pytree, with `encode(batch) -> DiagGaussian` (jitted
  by the caller; one program for every batch: the last one is padded)."""
  means, scales = [], []
  for _, batch, real in batching.padded_batches(data, batch_size):
    post = encode(batch)
    means.append(np.asarray(post.mean)[:real])
    scales.append(np.asarray(post.scale)[:real])
  m, s = np.concatenate(means), np.concatenate(scales)
  eps = np.asarray(jax.random.normal(key, m.shape, jnp.float32))
  return Posteriors(m, s, m + s * eps)


class FitReport(NamedTuple):
  """What the fitting pass measured: held-out mean log q-sample density of each candidate."""

  kind: str
  heldout_log_prob: dict[str, float]  # candidate name -> held-out mean log-density
  gmm_scores: dict[int, float]  # K -> held-out mean log-density (empty unless 'gmm' fitted)
  num_fit: int
  num_heldout: int


def fit_priors(
  kinds: Sequence[str],
  fit: Posteriors,
  heldout: Posteriors,
  key: jax.Array,
  tracked: Mixture | None = None,
  components: Sequence[int] = DEFAULT_COMPONENTS,
  iters: int = 100,
  fit_on: str = "samples",
) -> tuple[dict[str, Prior], FitReport]:
  """Fits each prior of `kinds` (see KINDS) to the fitting records' latents and scores all of
  them on the held-out records' latents z ~ q(z | x).

  Args:
    kinds: prior names; 'tracked' needs `tracked` (the model's own moving-moment Gaussian).
    fit / heldout: posteriors of disjoint sets of training records.
    key: PRNG key of the mixture initialisations.
    tracked: the paper's tracked Gaussian, or None.
    components, iters: the mixture's candidate sizes and EM iterations.
    fit_on: 'samples' (z ~ q(z | x), the aggregate posterior's draws) or 'means' (the
      posterior means: a sharper density that leaves out the posterior noise) for the
      Gaussian and the mixture; held-out scores always use held-out samples.

  Raises:
    ValueError: an unknown kind, or 'tracked' without `tracked`.
  """
  if fit_on not in ("samples", "means"):
    raise ValueError(f"fit_on={fit_on!r}: use 'samples' or 'means'")
  z_fit, z_held = (
    (fit.samples, heldout.samples) if fit_on == "samples" else (fit.means, heldout.means)
  )
  priors: dict[str, Prior] = {}
  gmm_scores: dict[int, float] = {}
  for kind in kinds:
    if kind == "tracked":
      if tracked is None:
        raise ValueError("prior 'tracked' needs the model's tracked latent moments")
      priors[kind] = tracked
    elif kind == "gaussian":
      priors[kind] = fit_gaussian(z_fit)
    elif kind == "gmm":
      priors[kind], gmm_scores = select_mixture(z_fit, z_held, key, components, iters)
    elif kind == "aggregate":
      priors[kind] = Aggregate(jnp.asarray(fit.means), jnp.asarray(fit.scales))
    else:
      raise ValueError(f"unknown generation prior {kind!r}; choose from {KINDS}")
  scores = {name: mean_log_prob(p, heldout.samples) for name, p in priors.items()}
  report = FitReport(kinds[0], scores, gmm_scores, len(fit.means), len(heldout.means))
  return priors, report


def describe(name: str, prior: Prior) -> str:
  if isinstance(prior, Aggregate):
    return f"{name} (q(z|x) of {prior.means.shape[0]} training records)"
  k = prior.num_components
  return f"{name} ({k} Gaussian component{'s' if k > 1 else ''})"


def save(path: str, prior: Prior, step: int = -1, temperature: float = 1.0) -> None:
  """Writes a prior as an .npz file: its kind, arrays, the training step of the model it was
  fitted to and the temperature the run generated with."""
  kind = "aggregate" if isinstance(prior, Aggregate) else "mixture"
  arrays = {k: np.asarray(v) for k, v in prior._asdict().items()}
  with files.atomic_file(path, binary=True) as f:
    np.savez(f, kind=kind, step=step, temperature=temperature, **arrays)


def load(path: str) -> Prior:
  return load_with_meta(path)[0]


def load_with_meta(path: str) -> tuple[Prior, dict[str, float]]:
  """(prior, {'step': fitted model's step, 'temperature': the run's}) of a `save`d file."""
  with np.load(path) as f:
    cls = Aggregate if str(f["kind"]) == "aggregate" else Mixture
    meta = {k: float(f[k]) for k in ("step", "temperature") if k in f}
    return cls(**{k: jnp.asarray(f[k]) for k in cls._fields}), meta


def parse_kinds(spec: str) -> tuple[str, ...]:
  """'gmm,tracked' -> ('gmm', 'tracked'): the first generates the headline numbers."""
  kinds = tuple(s.strip() for s in spec.split(",") if s.strip())
  bad = [k for k in kinds if k not in KINDS]
  if not kinds or bad:
    raise ValueError(f"eval.generation_prior {spec!r}: use a comma list of {KINDS}")
  return kinds
