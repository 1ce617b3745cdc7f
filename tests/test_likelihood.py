"""ELBO and importance-weighted NLL (metrics/likelihood.py) against float64 numpy references."""

import functools
from unittest import mock

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from scipy import special

from alala_jax.metrics import likelihood
from alala_jax.models.image import DenseImageVAE, ImageVAEConfig

P, D, B = 12, 2, 6
MODEL = DenseImageVAE(ImageVAEConfig(num_pixels=P, latent_dim=D, hidden=(8,)))


@functools.cache
def _variables(decoder_scale=3.0, logvar_shift=-2.0):
  """Random params with a z-dependent decoder and a posterior narrower than the prior, so that
  the importance-weighted bound is far from the ELBO."""
  p = MODEL.init(jax.random.key(0), jnp.zeros((1, P)))["params"]
  scale = p["encoder_scale"]
  return {
    "params": {
      **p,
      "decoder": jax.tree.map(lambda a: decoder_scale * a, p["decoder"]),
      "encoder_scale": {**scale, "bias": scale["bias"] + logvar_shift},
    }
  }


def _images(seed=0, n=B):
  return (np.random.default_rng(seed).random((n, P)) < 0.4).astype(np.float32)


def _np_log_weights(variables, x, key, num_samples):
  """float64 log p(x | z_j) + log N(z_j; 0, I) - log q(z_j | x) [k, B] by hand, with the
  documented sample keys: z_j = mean + scale * N(0, I) drawn from fold_in(split(key)[0], j)."""
  q, _ = MODEL.encode(variables, x)
  mean, scale = np.asarray(q.mean, np.float64), np.asarray(q.scale, np.float64)
  k_z = jax.random.split(key)[0]
  out = []
  for j in range(num_samples):
    eps = np.asarray(jax.random.normal(jax.random.fold_in(k_z, j), (len(x), D)), np.float64)
    z = mean + scale * eps
    logits = np.asarray(MODEL.logits(variables, jnp.asarray(z, jnp.float32)), np.float64)
    log_px = np.sum(x * -np.logaddexp(0, -logits) + (1 - x) * -np.logaddexp(0, logits), -1)
    log_pz = np.sum(-0.5 * z**2 - 0.5 * np.log(2 * np.pi), -1)
    log_qz = np.sum(-0.5 * eps**2 - np.log(scale) - 0.5 * np.log(2 * np.pi), -1)
    out.append(log_px + log_pz - log_qz)
  return np.stack(out)


def _np_kl(variables, x):
  q, _ = MODEL.encode(variables, x)
  m, s = np.asarray(q.mean, np.float64), np.asarray(q.scale, np.float64)
  return 0.5 * np.sum(m**2 + s**2 - 1 - 2 * np.log(s), -1)


class LikelihoodTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  def test_iw_nll_with_one_sample_is_the_hand_computed_single_sample_bound(self):
    v, x, key = _variables(), _images(1), jax.random.key(3)
    got = self.variant(functools.partial(likelihood.iw_nll, MODEL, num_samples=1, chunk=1))(
      v, x, key
    )
    chex.assert_shape(got, (B,))
    np.testing.assert_allclose(got, -_np_log_weights(v, x, key, 1)[0], rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_elbo_is_sample_zero_reconstruction_minus_analytic_kl(self):
    v, x, key = _variables(), _images(2), jax.random.key(4)
    got = self.variant(functools.partial(likelihood.elbo, MODEL))(v, x, key)
    # -log p(x | z_0) = -(log w_0 - log p(z_0) + log q(z_0)): rebuild it from the hand weights
    q, _ = MODEL.encode(v, x)
    eps = np.asarray(jax.random.normal(jax.random.fold_in(jax.random.split(key)[0], 0), (B, D)))
    z = np.asarray(q.mean, np.float64) + np.asarray(q.scale, np.float64) * eps
    logits = np.asarray(MODEL.logits(v, jnp.asarray(z, jnp.float32)), np.float64)
    log_px = np.sum(x * -np.logaddexp(0, -logits) + (1 - x) * -np.logaddexp(0, logits), -1)
    np.testing.assert_allclose(got, log_px - _np_kl(v, x), rtol=1e-5)
    nll, kl = likelihood.elbo_terms(MODEL, v, x, key)
    np.testing.assert_allclose(kl, _np_kl(v, x), rtol=1e-5)
    np.testing.assert_allclose(nll, -log_px, rtol=1e-5)

  def test_one_sample_iw_nll_is_minus_elbo_in_expectation(self):
    v, x = _variables(), _images(3)
    keys = jax.random.split(jax.random.key(5), 2000)
    f = jax.jit(
      jax.vmap(lambda k: likelihood.iw_nll(MODEL, v, x, k, 1, 1) + likelihood.elbo(MODEL, v, x, k))
    )
    diff = np.asarray(f(keys)).mean(1)  # [keys]: single-sample KL - analytic KL
    self.assertLess(abs(diff.mean()), 4 * diff.std() / np.sqrt(len(diff)))
    self.assertGreater(diff.std(), 0.1)  # the single-sample KL really is random

  def test_iw_nll_is_below_minus_elbo_and_decreases_with_k(self):
    v, x = _variables(), _images(4, n=16)
    keys = jax.random.split(jax.random.key(6), 8)

    @jax.jit
    def estimates():
      iw = {
        k: jnp.mean(jax.vmap(lambda kk, k=k: likelihood.iw_nll(MODEL, v, x, kk, k, 100))(keys))
        for k in (10, 100, 1000)
      }
      neg_elbo = -jnp.mean(
        jax.vmap(lambda kk: likelihood.elbo(MODEL, v, x, kk))(
          jax.random.split(jax.random.key(7), 200)
        )
      )
      return iw, neg_elbo

    iw, neg_elbo = jax.device_get(estimates())
    # measured: -ELBO 15.5; IW-NLL 11.5 (k 10), 11.0 (k 100), 10.9 (k 1000)
    self.assertLess(iw[10], neg_elbo - 2.0)
    self.assertLessEqual(iw[100], iw[10] + 0.02)
    self.assertLessEqual(iw[1000], iw[100] + 0.02)
    self.assertLess(iw[1000], iw[10] - 0.3)

  @chex.variants(with_jit=True, without_jit=True)
  def test_chunked_equals_direct_logsumexp_of_the_same_samples(self):
    v, x, key, k = _variables(), _images(5), jax.random.key(8), 30
    log_w = _np_log_weights(v, x, key, k)
    want = -(special.logsumexp(log_w, 0) - np.log(k))
    for chunk in (30, 10, 7, 1, 64):  # one chunk, exact split, remainder, clipped
      got = self.variant(functools.partial(likelihood.iw_nll, MODEL, num_samples=k, chunk=chunk))(
        v, x, key
      )
      np.testing.assert_allclose(got, want, rtol=1e-5, err_msg=f"chunk={chunk}")

  def test_decoder_ignoring_z_gives_the_exact_nll(self):
    """Decoder kernels 0: p(x | z) = p(x) with logits = the output bias. With q = the prior
    every weight is p(x), so IW-NLL = -log p(x) exactly; with q != p it converges to it."""
    p = _variables()["params"]
    bias = np.random.default_rng(9).normal(0, 2, P).astype(np.float32)
    dec = jax.tree.map(jnp.zeros_like, p["decoder"])
    dec["logits"]["bias"] = jnp.asarray(bias)
    x = _images(6)
    b = bias.astype(np.float64)
    exact = np.sum(x * np.logaddexp(0, -b) + (1 - x) * np.logaddexp(0, b), -1)  # -log p(x)

    prior_q = {
      "encoder": {**p["encoder"], "mean": jax.tree.map(jnp.zeros_like, p["encoder"]["mean"])},
      "encoder_scale": jax.tree.map(jnp.zeros_like, p["encoder_scale"]),
    }
    v = {"params": {**p, **prior_q, "decoder": dec}}
    got = likelihood.iw_nll(MODEL, v, x, jax.random.key(10), num_samples=50, chunk=10)
    np.testing.assert_allclose(got, exact, rtol=1e-5)
    np.testing.assert_allclose(-likelihood.elbo(MODEL, v, x, jax.random.key(11)), exact, rtol=1e-5)

    # q(z | x) = N(0.7, 1.2^2) != p(z) for every x (wider than the prior, so p / q has a finite
    # variance): the weights p(x) p(z) / q(z) average to p(x)
    shifted_q = {
      "encoder": {
        **p["encoder"],
        "mean": {
          "kernel": jnp.zeros_like(p["encoder"]["mean"]["kernel"]),
          "bias": jnp.full((D,), 0.7),
        },
      },
      "encoder_scale": {
        "kernel": jnp.zeros_like(p["encoder_scale"]["kernel"]),
        "bias": jnp.full((D,), 2 * np.log(1.2)),
      },
    }
    v = {"params": {**p, **shifted_q, "decoder": dec}}
    self.assertGreater(float(np.mean(_np_kl(v, x))), 0.5)
    got = likelihood.iw_nll(MODEL, v, x, jax.random.key(12), num_samples=2000, chunk=500)
    np.testing.assert_allclose(got, exact, atol=0.08)  # measured max error 0.03 (k 10: 0.4)

  def test_evaluate_images_matches_per_batch_terms_and_traces_once(self):
    model = DenseImageVAE(ImageVAEConfig(num_pixels=P, latent_dim=3, hidden=(5,)))  # fresh jit
    v = model.init(jax.random.key(0), jnp.zeros((1, P)))
    data, key = _images(7, n=11), jax.random.key(13)
    traced = chex.assert_max_traces(likelihood._batch_terms, n=1)
    with mock.patch.object(likelihood, "_batch_terms", traced):
      out = likelihood.evaluate_images(model, v, data, key, batch_size=4, num_samples=20, chunk=8)
      likelihood.evaluate_images(
        model, v, _images(8, n=11), key, batch_size=4, num_samples=20, chunk=8
      )  # same shapes: no new trace

    @jax.jit
    def reference(xb, k_elbo, k_iw):  # [b] terms of one unpadded batch
      nll, kl_b = likelihood.elbo_terms(model, v, xb, k_elbo)
      return nll, kl_b, likelihood.iw_nll(model, v, xb, k_iw, num_samples=20, chunk=8)

    recon, kl, iw = [], [], []
    for i, start in enumerate(range(0, 11, 4)):  # the documented keys: fold_in(key, batch)
      k_elbo, k_iw = jax.random.split(jax.random.fold_in(key, i))
      for acc, term in zip((recon, kl, iw), reference(data[start : start + 4], k_elbo, k_iw)):
        acc.append(term)
    recon, kl, iw = (np.concatenate(a) for a in (recon, kl, iw))
    self.assertEqual((out["num_examples"], out["num_samples"]), (11, 20))
    np.testing.assert_allclose(out["recon"], recon.mean(), rtol=1e-5)
    np.testing.assert_allclose(out["kl"], kl.mean(), rtol=1e-5)
    np.testing.assert_allclose(out["iw_nll"], iw.mean(), rtol=1e-5)
    np.testing.assert_allclose(out["elbo"], -(recon + kl).mean(), rtol=1e-5)
    self.assertLess(out["iw_nll"], -out["elbo"] + 0.5)

  def test_bad_arguments_raise(self):
    v, x = _variables(), _images(0)
    with self.assertRaisesRegex(ValueError, "num_samples"):
      likelihood.iw_nll(MODEL, v, x, jax.random.key(0), num_samples=0)
    with self.assertRaisesRegex(ValueError, "non-empty"):
      likelihood.evaluate_images(MODEL, v, x[:0], jax.random.key(0))


if __name__ == "__main__":
  absltest.main()
