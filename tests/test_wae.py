"""WAE latent loss (paper 000 App I): W2^2 against scipy's sqrtm, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from alala_jax.objectives import wae


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
      float(wae.gaussian_w2_squared(jnp.asarray(m_hat), jnp.asarray(s_hat), jnp.zeros(d),
                                    jnp.eye(d))), _scipy_w2(m_hat, s_hat), rtol=1e-4)


def test_w2_is_zero_for_the_prior_and_grows_with_a_shift():
  z = jnp.asarray(np.random.default_rng(0).normal(size=(20000, 4)), jnp.float32)
  assert float(wae.w2_squared_standard_normal(z)) < 5e-3
  assert float(wae.w2_squared_standard_normal(z + 1.0)) == pytest.approx(4.0, rel=0.01)


def test_gradient_finite_difference_and_rank_deficient_batch():
  rng = np.random.default_rng(3)
  z = jnp.asarray(rng.normal(size=(30, 4)) * [1.0, 2.0, 0.5, 1.5], jnp.float32)
  g = jax.grad(wae.w2_squared_standard_normal)(z)
  eps = 1e-2
  for (i, j) in [(0, 0), (5, 2), (29, 3)]:
    dz = jnp.zeros_like(z).at[i, j].set(eps)
    w2 = wae.w2_squared_standard_normal
    fd = (w2(z + dz) - w2(z - dz)) / (2 * eps)
    np.testing.assert_allclose(float(g[i, j]), float(fd), rtol=2e-2, atol=1e-4)
  # fewer rows than dimensions (4 records per multiscale level): finite gradients
  few = jnp.asarray(rng.normal(size=(4, 16)), jnp.float32)
  assert np.all(np.isfinite(np.asarray(jax.grad(wae.w2_squared_standard_normal)(few))))


def test_wae_loss_mode_is_deterministic_with_batch_w2(small):
  """mode 'wae': z = mu, latent term = W2^2(batch of z) / D, loss = recon + beta * latent."""
  from alala_jax.objectives import elbo, multiscale
  model, params, stats, batches = small
  v = multiscale.level_variables(params, stats, 0)
  batch = multiscale.level_slice(batches, 0)
  f = jax.jit(lambda key: elbo.vae_loss(model, v["params"], v["batch_stats"], batch, key, 0.128,
                                        1.0, 1.0, False, mode="wae"))
  loss, (terms, _, out) = f(jax.random.key(0))
  np.testing.assert_array_equal(np.asarray(out.z), np.asarray(out.mu))
  _, (_, _, out2) = f(jax.random.key(1))
  np.testing.assert_array_equal(np.asarray(out2.z), np.asarray(out.z))    # no latent noise
  d = out.z.shape[-1]
  w2 = float(wae.w2_squared_standard_normal(out.z)) / d
  np.testing.assert_allclose(float(terms.latent), w2, rtol=1e-5)
  np.testing.assert_allclose(float(loss), float(terms.recon) + 0.128 * w2, rtol=1e-5)
