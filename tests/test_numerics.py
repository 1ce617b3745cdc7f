"""Pure-math pieces against independent references (numpy, scipy, finite differences)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from scipy import stats

from alala_jax.nn import gru, layers, moments, scalar_tuple, sigma, vae


class ActivationTest(parameterized.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  def test_celu_values(self):
    x = jnp.linspace(-10, 10, 101)
    ref = np.where(x > 0, x, 3 * np.expm1(np.asarray(x) / 3))
    chex.assert_trees_all_close(self.variant(layers.celu)(x), ref, atol=1e-6)
    chex.assert_trees_all_close(self.variant(layers.celu6)(x), np.minimum(ref, 6), atol=1e-6)

  @parameterized.named_parameters(("celu", layers.celu), ("celu6", layers.celu6))
  def test_custom_jvp_matches_finite_differences(self, fn):
    x = np.array([-7.0, -2.5, -0.3, 0.2, 1.7, 5.5, 5.99, 6.5, 9.0], np.float64)
    g = jax.vmap(jax.grad(lambda v: fn(v)))(jnp.asarray(x, jnp.float32))
    h = 1e-3
    f = lambda v: np.asarray(fn(jnp.asarray(v, jnp.float32)), np.float64)
    fd = (f(x + h) - f(x - h)) / (2 * h)
    np.testing.assert_allclose(g, fd, atol=2e-3)


class GRUTest(parameterized.TestCase):
  def test_matches_numpy_loop(self):
    cell = gru.GRUCell(8)
    key = jax.random.key(0)
    x = jax.random.normal(key, (6, 4, 3))  # [T, B, I]
    params = cell.init(key, jnp.zeros((4, 8)), x[0])["params"]
    params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(key, p.shape), params)

    def run(h, xt):
      h = cell.apply({"params": params}, h, xt)
      return h, h

    _, hs = jax.lax.scan(run, jnp.zeros((4, 8)), x)
    np_params = jax.tree.map(np.asarray, params)
    h = np.zeros((4, 8), np.float32)
    for t in range(6):
      h = gru.gru_reference(np_params, h, np.asarray(x[t]))
      np.testing.assert_allclose(hs[t], h, rtol=1e-5, atol=1e-5)

  def test_gate_init(self):
    params = gru.GRUCell(8).init(jax.random.key(1), jnp.zeros((2, 8)), jnp.zeros((2, 3)))["params"]
    chex.assert_trees_all_equal(params["update"]["kernel"], jnp.zeros((11, 8)))
    chex.assert_trees_all_equal(params["update"]["bias"], jnp.ones(8))
    # fan_in counts input + state: std of the truncated normal is 1 / sqrt(11)
    assert np.std(np.asarray(params["reset"]["kernel"])) == pytest.approx(11**-0.5, rel=0.25)
    # truncated at 2 std of the underlying normal, whose std is 1 / sqrt(11) / 0.8796 (TF's rule)
    bound = 2 * 11**-0.5 / 0.87962566103423978
    assert np.abs(np.asarray(params["reset"]["kernel"])).max() <= bound + 1e-6


class KLTest(parameterized.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  def test_closed_form_per_dimension(self):
    mu = np.array([[0.0, 1.0, -2.0]]), np.array([[1.0, 0.5, 0.1]])
    got = self.variant(vae.kl_diag_normal)(jnp.asarray(mu[0]), jnp.asarray(mu[1]))
    m, s = mu
    ref = np.sum(np.log(1 / s) + (s**2 + m**2) / 2 - 0.5, -1)
    chex.assert_trees_all_close(got, ref, rtol=1e-6)

  def test_monte_carlo(self):
    rng = np.random.default_rng(0)
    mu, s = rng.normal(size=4), rng.uniform(0.2, 1.5, size=4)
    z = mu + s * rng.normal(size=(200_000, 4))
    mc = np.mean(np.sum(stats.norm.logpdf(z, mu, s) - stats.norm.logpdf(z), -1))
    got = float(vae.kl_diag_normal(jnp.asarray(mu), jnp.asarray(s)))
    assert got == pytest.approx(mc, abs=0.02)


class WhiteningTest(parameterized.TestCase):
  def test_whitened_covariance_is_identity(self):
    rng = np.random.default_rng(0)
    x = rng.multivariate_normal([44, -72], [[0.3, 0.25], [0.25, 0.4]], 5000).astype(np.float32)
    mean, cov, _ = moments.weighted_moments(jnp.asarray(x))
    np.testing.assert_allclose(cov, np.cov(x, rowvar=False, ddof=1), rtol=1e-4)
    w, w_inv = scalar_tuple.whitening(mean, cov, 1e-5)
    xw = (x - np.asarray(mean)) @ np.asarray(w)
    np.testing.assert_allclose(np.cov(xw, rowvar=False), np.eye(2), atol=1e-3)
    np.testing.assert_allclose(xw @ np.asarray(w_inv) + np.asarray(mean), x, atol=1e-4)

  def test_moving_moments_match_explicit_ema(self):
    m = moments.MovingMoments(2, decay=0.9)
    rng = np.random.default_rng(1)
    batches = [rng.normal(size=(16, 2)).astype(np.float32) * (i + 1) for i in range(4)]
    v = m.init(jax.random.key(0), method=lambda mod: mod())
    ref_mean, ref_cov = None, None
    for b in batches:
      _, upd = m.apply(
        v, jnp.asarray(b), method=moments.MovingMoments.update, mutable=["batch_stats"]
      )
      v = {**v, **upd}
      bm, bc = b.mean(0), np.cov(b, rowvar=False, ddof=1)
      if ref_mean is None:  # first batch initialises (BUILD_NOTES)
        ref_mean, ref_cov = bm, bc
      else:
        ref_mean, ref_cov = 0.9 * ref_mean + 0.1 * bm, 0.9 * ref_cov + 0.1 * bc
    np.testing.assert_allclose(v["batch_stats"]["mean"], ref_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v["batch_stats"]["cov"], ref_cov, rtol=1e-5, atol=1e-6)
    assert int(v["batch_stats"]["count"]) == 4


def test_sigma_network_starts_at_sigmoid_minus_five():
  net = sigma.SigmaNet(16)
  mu = jax.random.normal(jax.random.key(0), (5, 16))
  v = net.init(jax.random.key(1), mu)
  chex.assert_trees_all_close(net.apply(v, mu), jnp.full((5, 16), jax.nn.sigmoid(-5.0)))
  assert len(v["params"]) == 4  # 3 hidden CELU layers + the sigmoid layer
