"""Generation priors (alala_jax/latent_priors.py): densities against scipy and explicit loops,
sampling moments, EM recovering a known mixture, held-out model selection, save/load, the
fitting pass's errors."""

from __future__ import annotations

import types

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from alala_jax import latent_priors as lp
from alala_jax.models.base import DiagGaussian


def _random_mixture(rng, k=3, d=4) -> lp.Mixture:
  a = rng.normal(size=(k, d, d))
  covs = a @ a.transpose(0, 2, 1) + 0.5 * np.eye(d)
  w = rng.dirichlet(np.ones(k))
  return (
    lp.Mixture(
      jnp.log(jnp.asarray(w, jnp.float32)),
      jnp.asarray(rng.normal(size=(k, d)) * 3, jnp.float32),
      jnp.asarray(np.linalg.cholesky(covs), jnp.float32),
    ),
    w,
    covs,
  )


def test_mixture_log_prob_matches_scipy():
  rng = np.random.default_rng(0)
  mix, w, covs = _random_mixture(rng)
  z = rng.normal(size=(7, 4)) * 3
  want = special.logsumexp(
    [
      np.log(w[k]) + stats.multivariate_normal(np.asarray(mix.means[k]), covs[k]).logpdf(z)
      for k in range(3)
    ],
    axis=0,
  )
  chex.assert_trees_all_close(
    np.asarray(mix.log_prob(jnp.asarray(z, jnp.float32))), want, rtol=1e-4
  )


def test_mixture_sampling_moments():
  rng = np.random.default_rng(1)
  mix, w, covs = _random_mixture(rng, k=2, d=3)
  z = np.asarray(mix.sample(jax.random.key(0), 200_000))
  chex.assert_shape(z, (200_000, 3))
  means = np.asarray(mix.means)
  want_mean = w @ means
  want_cov = sum(w[k] * (covs[k] + np.outer(means[k], means[k])) for k in range(2)) - np.outer(
    want_mean, want_mean
  )
  np.testing.assert_allclose(z.mean(0), want_mean, atol=0.05)
  np.testing.assert_allclose(np.cov(z, rowvar=False), want_cov, rtol=0.03, atol=0.05)


def test_aggregate_log_prob_matches_explicit_loop():
  rng = np.random.default_rng(2)
  means, scales = rng.normal(size=(5, 3)), rng.uniform(0.3, 2.0, size=(5, 3))
  agg = lp.Aggregate(jnp.asarray(means, jnp.float32), jnp.asarray(scales, jnp.float32))
  z = rng.normal(size=(6, 3))
  want = np.array(
    [
      special.logsumexp([stats.norm(means[i], scales[i]).logpdf(x).sum() for i in range(5)])
      - np.log(5)
      for x in z
    ]
  )
  chex.assert_trees_all_close(
    np.asarray(agg.log_prob(jnp.asarray(z, jnp.float32))), want, rtol=1e-4
  )


def test_aggregate_samples_sit_on_their_records():
  means = jnp.asarray([[0.0, 0.0], [100.0, 100.0]])
  agg = lp.Aggregate(means, jnp.full((2, 2), 1e-3))
  z = np.asarray(agg.sample(jax.random.key(3), 1000))
  near = np.minimum(np.abs(z).max(1), np.abs(z - 100).max(1))
  assert near.max() < 0.01
  share_second = np.mean(z[:, 0] > 50)
  assert 0.4 < share_second < 0.6  # records drawn uniformly


def test_gaussian_is_one_component_mixture_with_sample_covariance():
  rng = np.random.default_rng(4)
  z = rng.normal(size=(500, 3)) @ np.array([[2.0, 0, 0], [1.0, 1.0, 0], [0, 0, 0.5]])
  g = lp.fit_gaussian(jnp.asarray(z, jnp.float32))
  assert g.num_components == 1
  cov = np.asarray(g.chols[0] @ g.chols[0].T)
  np.testing.assert_allclose(cov, np.cov(z, rowvar=False, ddof=1), rtol=1e-4, atol=1e-5)
  want = stats.multivariate_normal(z.mean(0), np.cov(z, rowvar=False)).logpdf(z[:5])
  np.testing.assert_allclose(
    np.asarray(g.log_prob(jnp.asarray(z[:5], jnp.float32))), want, rtol=1e-4
  )


def _three_clusters(rng, n):
  centres = np.array([[-6.0, 0.0], [6.0, 0.0], [0.0, 8.0]])
  w = np.array([0.5, 0.3, 0.2])
  c = rng.choice(3, n, p=w)
  return (centres[c] + rng.normal(size=(n, 2)) * np.array([1.0, 0.5])).astype(np.float32), w


def test_em_recovers_a_separated_mixture_and_selection_prefers_it():
  rng = np.random.default_rng(5)
  z_fit, w = _three_clusters(rng, 3000)
  z_held, _ = _three_clusters(rng, 1000)
  best, scores = lp.select_mixture(z_fit, z_held, jax.random.key(0), (1, 2, 3, 8), iters=60)
  assert set(scores) == {1, 2, 3, 8}
  assert scores[3] > scores[1] + 1.0 and scores[3] > scores[2] + 0.5
  assert best.num_components in (3, 8)
  assert scores[best.num_components] == max(scores.values())
  mix3 = lp.fit_mixture(jnp.asarray(z_fit), jax.random.key(1), 3, 60)
  np.testing.assert_allclose(np.sort(np.exp(np.asarray(mix3.log_weights))), np.sort(w), atol=0.03)
  # the held-out density of the fit approaches the true density's
  true = lp.Mixture(
    jnp.log(jnp.asarray(w, jnp.float32)),
    jnp.asarray([[-6.0, 0.0], [6.0, 0.0], [0.0, 8.0]]),
    jnp.broadcast_to(jnp.diag(jnp.asarray([1.0, 0.5])), (3, 2, 2)),
  )
  assert abs(scores[3] - lp.mean_log_prob(true, z_held)) < 0.05


def test_mixture_fit_is_finite_with_more_components_than_clusters():
  rng = np.random.default_rng(6)
  z, _ = _three_clusters(rng, 200)
  mix = lp.fit_mixture(jnp.asarray(z), jax.random.key(0), 64, 30)
  assert np.all(np.isfinite(np.asarray(mix.log_prob(jnp.asarray(z)))))
  np.testing.assert_allclose(float(jnp.sum(jnp.exp(mix.log_weights))), 1.0, rtol=1e-4)


def test_encode_posteriors_covers_every_row_once():
  data = {"x": np.arange(23, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)}
  encode = jax.jit(lambda b: DiagGaussian(b["x"] * 2.0, jnp.full_like(b["x"], 0.5)))
  post = lp.encode_posteriors(encode, data, 10, jax.random.key(0))
  chex.assert_shape([post.means, post.scales, post.samples], (23, 2))
  np.testing.assert_array_equal(post.means[:, 0], np.arange(23) * 2.0)
  eps = (post.samples - post.means) / post.scales
  assert abs(eps.mean()) < 0.5 and 0.5 < eps.std() < 1.5


def test_fit_priors_scores_every_kind_and_rejects_bad_requests():
  rng = np.random.default_rng(7)
  m = rng.normal(size=(120, 2)).astype(np.float32)
  s = np.full_like(m, 0.1)
  fit = lp.Posteriors(m[:100], s[:100], m[:100] + 0.1 * rng.normal(size=(100, 2)))
  held = lp.Posteriors(m[100:], s[100:], m[100:] + 0.1 * rng.normal(size=(20, 2)))
  tracked = lp.gaussian(jnp.zeros(2), 4.0 * jnp.eye(2))
  priors, rep = lp.fit_priors(
    ("gmm", "tracked", "gaussian", "aggregate"), fit, held, jax.random.key(0), tracked, (1, 2)
  )
  assert rep.kind == "gmm" and set(rep.heldout_log_prob) == set(priors)
  assert set(rep.gmm_scores) == {1, 2}
  # the data are N(0, I): the fitted Gaussian beats the too-wide tracked one on held-out data
  assert rep.heldout_log_prob["gaussian"] > rep.heldout_log_prob["tracked"]
  with pytest.raises(ValueError, match="unknown generation prior"):
    lp.fit_priors(("mog",), fit, held, jax.random.key(0))
  with pytest.raises(ValueError, match="tracked"):
    lp.fit_priors(("tracked",), fit, held, jax.random.key(0))
  with pytest.raises(ValueError, match="generation_prior"):
    lp.parse_kinds("gmm,flow")
  assert lp.parse_kinds(" gmm , tracked") == ("gmm", "tracked")


@pytest.mark.parametrize("kind", ["mixture", "aggregate"])
def test_save_load_round_trip(tmp_path, kind):
  rng = np.random.default_rng(8)
  prior = (
    _random_mixture(rng)[0]
    if kind == "mixture"
    else lp.Aggregate(jnp.ones((4, 3)), jnp.full((4, 3), 0.2))
  )
  path = str(tmp_path / "p.npz")
  lp.save(path, prior)
  back = lp.load(path)
  assert type(back) is type(prior)
  chex.assert_trees_all_close(back, prior)


def test_saved_prior_records_its_model_step_and_temperature(tmp_path):
  path = str(tmp_path / "p.npz")
  lp.save(path, lp.Aggregate(jnp.ones((2, 3)), jnp.ones((2, 3))), step=300, temperature=0.5)
  prior, meta = lp.load_with_meta(path)
  assert isinstance(prior, lp.Aggregate) and meta == {"step": 300.0, "temperature": 0.5}


@pytest.mark.parametrize("kind", ["aggregate", "mixture", "full_mixture"])
def test_component_scales_name_each_samples_component(kind):
  """The scales returned with the samples are those of the component each sample came from:
  components far apart with tiny, distinct spreads identify the component by nearest mean."""
  n_comp, d, t = 6, 3, 0.5
  means = 100.0 * jnp.arange(n_comp, dtype=jnp.float32)[:, None] * jnp.ones((1, d))
  scales = 1e-3 * (1.0 + jnp.arange(n_comp * d, dtype=jnp.float32).reshape(n_comp, d))
  if kind == "aggregate":
    prior = lp.Aggregate(means, scales)
  else:
    chols = jax.vmap(jnp.diag)(scales)
    if kind == "full_mixture":  # off-diagonal terms: the spread is sqrt(sum_j L_ij^2)
      chols = chols + jnp.tril(jnp.full((d, d), 2e-3), -1)[None]
      scales = jnp.sqrt(jnp.sum(chols**2, -1))
    prior = lp.Mixture(jnp.log(jnp.full(n_comp, 1.0 / n_comp)), means, chols)
  key = jax.random.key(11)
  z, s = prior.sample(key, 40, t), prior.component_scales(key, 40, t)
  nearest = np.argmin(np.abs(np.asarray(z)[:, :1] - np.asarray(means)[None, :, 0]), 1)
  np.testing.assert_allclose(np.asarray(s), t * np.asarray(scales)[nearest], rtol=1e-6)
  assert len(set(nearest)) > 1


class _FakeTask:
  """The task interface `evaluate.fit_generation_priors` uses: q(z | x) = N(x, 1), refined
  q_K = N(x + 10, 1); every encode call records (rows, refined)."""

  def __init__(self, refines: bool):
    self.refines_at_eval, self.calls = refines, []

  def variables(self, state):
    return {}

  def encode_posterior(self, variables, batch, refined=False, step=0):
    assert step == (7 if refined else 0)  # q_K's objective decodes at the model's step
    self.calls.append((len(batch["x"]), refined))
    x = jnp.asarray(batch["x"], jnp.float32)
    return DiagGaussian(x + (10.0 if refined else 0.0), jnp.ones_like(x))

  def prior_moments(self, variables):
    return jnp.zeros(2), jnp.eye(2)


@pytest.mark.parametrize("refined", [False, True])
def test_generation_priors_fit_the_refined_posteriors_on_request(refined):
  from alala_jax import config as config_lib
  from alala_jax import evaluate

  c = config_lib.base_config()
  c.seed, c.train.batch_size = 0, 8
  c.eval.generation_prior, c.eval.prior_records, c.eval.prior_heldout = "aggregate", 50, 0.2
  c.eval.chunk, c.eval.prior_refined = 32, refined
  x = np.arange(100 * 2, dtype=np.float32).reshape(100, 2)
  task = _FakeTask(refines=True)
  state = types.SimpleNamespace(step=7)
  priors, report = evaluate.fit_generation_priors(task, state, {"x": x}, c)
  # the encoder's q_0 in chunks of eval.chunk; q_K in the training batch size (SVI's step
  # in 'reference' mode depends on it), never a mix
  assert {r for _, r in task.calls} == {refined}
  assert [b for b, _ in task.calls] == ([8] * 7 if refined else [32, 32])
  means = np.asarray(priors["aggregate"].means)
  assert report.num_fit == len(means) == 40 and report.num_heldout == 10
  rows = (means - (10.0 if refined else 0.0)) / 2  # back to row indices: x[i] = (2i, 2i + 1)
  np.testing.assert_array_equal(rows[:, 0], np.round(rows[:, 0]))
  assert len(set(rows[:, 0])) == 40 and rows.min() >= 0 and rows.max() < 100
  np.testing.assert_array_equal(means[:, 1] - means[:, 0], 1.0)


def test_refined_generation_priors_need_svi_at_evaluation():
  from alala_jax import config as config_lib
  from alala_jax import evaluate

  c = config_lib.base_config()
  c.eval.generation_prior, c.eval.prior_records, c.eval.prior_refined = "aggregate", 50, True
  with pytest.raises(ValueError, match="prior_refined needs SVI at evaluation"):
    evaluate.fit_generation_priors(_FakeTask(refines=False), None, {"x": np.zeros((60, 2))}, c)
