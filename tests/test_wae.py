"""WAE baseline (paper 000 App I): W2^2 against scipy's sqrtm, gradients, the registered 'wae'
objective on hand-built terms and on the record model (deterministic encoder)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg

from alala_jax import config as base
from alala_jax import objectives
from alala_jax.models.base import DiagGaussian, Recon
from alala_jax.objectives import multiscale, wae
from alala_jax.objectives.base import Level, Terms
from alala_jax.train import state as state_lib
from alala_jax.train import step as step_lib


def _scipy_w2(m, s):
  root = scipy.linalg.sqrtm(s).real
  return float(m @ m + np.sum((root - np.eye(len(m))) ** 2))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_w2_squared_matches_scipy_sqrtm_on_random_covariances(seed):
  rng = np.random.default_rng(seed)
  d = 6
  a = rng.normal(size=(d, d))
  cov = a @ a.T / d + 0.1 * np.eye(d)
  mean = rng.normal(size=d)
  z = rng.multivariate_normal(mean, cov, size=400)
  m_hat, s_hat = z.mean(0), np.cov(z, rowvar=False, ddof=1)
  got = float(wae.w2_squared_standard_normal(jnp.asarray(z, jnp.float32)))
  np.testing.assert_allclose(got, _scipy_w2(m_hat, s_hat), rtol=2e-4)
  # the general two-Gaussian form against scipy, with a non-identity second Gaussian
  b = rng.normal(size=(d, d))
  s2 = b @ b.T / d + 0.2 * np.eye(d)
  m2 = rng.normal(size=d)
  r2 = scipy.linalg.sqrtm(s2).real
  ref = np.sum((mean - m2) ** 2) + np.trace(cov + s2 - 2 * scipy.linalg.sqrtm(r2 @ cov @ r2).real)
  got2 = wae.gaussian_w2_squared(*(jnp.asarray(x, jnp.float32) for x in (mean, cov, m2, s2)))
  np.testing.assert_allclose(float(got2), ref, rtol=1e-4)
  np.testing.assert_allclose(
    float(
      wae.gaussian_w2_squared(jnp.asarray(m_hat), jnp.asarray(s_hat), jnp.zeros(d), jnp.eye(d))
    ),
    _scipy_w2(m_hat, s_hat),
    rtol=1e-4,
  )


def test_w2_is_zero_for_the_prior_and_grows_with_a_shift():
  z = jnp.asarray(np.random.default_rng(0).normal(size=(20000, 4)), jnp.float32)
  assert float(wae.w2_squared_standard_normal(z)) < 5e-3
  assert float(wae.w2_squared_standard_normal(z + 1.0)) == pytest.approx(4.0, rel=0.01)


def test_gradient_finite_difference_and_rank_deficient_batch():
  rng = np.random.default_rng(3)
  z = jnp.asarray(rng.normal(size=(30, 4)) * [1.0, 2.0, 0.5, 1.5], jnp.float32)
  g = jax.grad(wae.w2_squared_standard_normal)(z)
  eps = 1e-2
  for i, j in [(0, 0), (5, 2), (29, 3)]:
    dz = jnp.zeros_like(z).at[i, j].set(eps)
    w2 = wae.w2_squared_standard_normal
    fd = (w2(z + dz) - w2(z - dz)) / (2 * eps)
    np.testing.assert_allclose(float(g[i, j]), float(fd), rtol=2e-2, atol=1e-4)
  # fewer rows than dimensions (4 records per multiscale level): finite gradients
  few = jnp.asarray(rng.normal(size=(4, 16)), jnp.float32)
  assert np.all(np.isfinite(np.asarray(jax.grad(wae.w2_squared_standard_normal)(few))))


def _config(beta=0.128):
  c = base.base_config()
  c.objective.name = "wae"
  c.objective.beta_schedule, c.objective.beta_end = "constant", beta
  c.train.num_steps = 100
  return c


class _Model:
  latent_dim = 4
  kl_scale = 1.0 / 4


def test_wae_objective_is_recon_plus_beta_w2_per_latent_dim():
  obj = objectives.build(_config(0.128), _Model())
  assert obj.name == "wae" and obj.deterministic and obj.latent_label == "wae/w2"
  assert obj.init(jax.random.key(0)) == {}
  rng = np.random.default_rng(4)
  z = jnp.asarray(rng.normal(size=(12, 4)) * 1.5 + 0.3, jnp.float32)
  recon = jnp.asarray(rng.uniform(size=12), jnp.float32)
  terms = Terms(
    recon=Recon(nll=recon, loss=recon, fields={}),
    kl=jnp.zeros(12),
    z=z,
    posterior=DiagGaussian(z, jnp.ones_like(z)),
    row_mask=None,
    kl_scale=0.25,
  )
  w2 = float(wae.w2_squared_standard_normal(z)) / 4
  loss, m = obj.loss({}, terms, step=0, level=Level(beta_scale=0.5))
  np.testing.assert_allclose(float(m["wae/w2"]), w2, rtol=1e-5)
  np.testing.assert_allclose(float(loss), float(jnp.mean(recon)) + 0.128 * 0.5 * w2, rtol=1e-5)
  assert float(m["beta"]) == pytest.approx(0.128)
  # rows weighted by the row mask: W2 of the real rows alone
  mask = jnp.asarray([1.0] * 8 + [0.0] * 4)
  _, mm = obj.loss({}, terms.replace(row_mask=mask), step=0, level=Level())
  np.testing.assert_allclose(
    float(mm["wae/w2"]), float(wae.w2_squared_standard_normal(z[:8])) / 4, rtol=1e-5
  )


def test_wae_on_the_record_model_is_deterministic_with_batch_w2(small_core):
  """'wae': z = mu (no latent noise), loss = recon + beta W2^2(batch of z) / D."""
  model, state, batches = small_core
  setup = state_lib.Setup(
    model=model,
    objective=objectives.make("wae", _config(), model),
    tx=optax.identity(),
    levels=multiscale.Levels(),
  )
  v = state_lib.level_variables(setup, state.variables(), 0)
  batch = multiscale.level_slice(batches, 0)

  @jax.jit
  def f(key):
    terms, _, _ = step_lib.level_terms(setup, v, batch, None, key, 0, train=True)
    loss, m = setup.objective.loss({}, terms, step=0, level=Level())
    return loss, m, terms

  loss, m, terms = f(jax.random.key(0))
  np.testing.assert_array_equal(np.asarray(terms.z), np.asarray(terms.posterior.mean))
  _, _, terms2 = f(jax.random.key(1))
  np.testing.assert_array_equal(np.asarray(terms2.z), np.asarray(terms.z))  # no latent noise
  d = terms.z.shape[-1]
  w2 = float(wae.w2_squared_standard_normal(terms.z)) / d
  np.testing.assert_allclose(float(m["wae/w2"]), w2, rtol=1e-5)
  np.testing.assert_allclose(float(loss), float(jnp.mean(terms.recon.loss)) + 0.128 * w2, rtol=1e-5)
  # a stochastic objective on the same model samples z
  beta = state_lib.Setup(
    model=model, objective=objectives.make("beta", _config(), model), tx=optax.identity()
  )
  tb, _, _ = jax.jit(lambda k: step_lib.level_terms(beta, v, batch, None, k, 0, train=True))(
    jax.random.key(0)
  )
  assert not np.allclose(np.asarray(tb.z), np.asarray(tb.posterior.mean))


def test_wae_runs_alone():
  c = _config()
  c.objective.multiscale.n_levels = 2
  with pytest.raises(ValueError, match="WAE baseline"):
    objectives.build(c, _Model())
  c.objective.multiscale.n_levels = 1
  c.objective.augmented.enabled = True
  with pytest.raises(ValueError, match="WAE baseline"):
    objectives.build(c, _Model())
