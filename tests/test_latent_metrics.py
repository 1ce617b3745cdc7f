"""MI, active units, perplexity and the posterior mean space (metrics/latent.py) against float64
numpy references and closed forms of a linear-Gaussian toy VAE."""

import dataclasses
import functools
import math
import os
import tempfile
from unittest import mock

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from scipy import special

from alala_jax.metrics import latent, likelihood
from alala_jax.models import base
from alala_jax.models.image import DenseImageVAE, ImageVAEConfig

LOG_2PI = math.log(2 * math.pi)


@dataclasses.dataclass(frozen=True)
class LinearGaussianVAE(base.VAEModel):
  """A pytree-input toy: x = {'values': [B, P] float, 'length': [B] int} ('length' is only read
  by the tests' token counts); q(z | x) = N(values W_e + b_e, diag(exp(log_s)^2)) with one scale
  for all x; p(x | z) = N(z W_d + b_d, sigma^2 I). Frozen: hashable, a static jit argument."""

  num_values: int
  latent_dim: int

  def init(self, key, x):
    del x
    k1, k2, k3 = jax.random.split(key, 3)
    p, d = self.num_values, self.latent_dim
    return {
      "params": {
        "enc_w": jax.random.normal(k1, (p, d)),
        "enc_b": jnp.zeros(d),
        "enc_log_scale": jnp.full((d,), -1.0),
        "dec_w": jax.random.normal(k2, (d, p)),
        "dec_b": jax.random.normal(k3, (p,)),
        "dec_log_sigma": jnp.zeros(()),
      }
    }

  def encode(self, variables, x):
    p = variables["params"]
    mean = jnp.asarray(x["values"], jnp.float32) @ p["enc_w"] + p["enc_b"]
    scale = jnp.broadcast_to(jnp.exp(p["enc_log_scale"]), mean.shape)
    return base.DiagGaussian(mean, scale), None

  def recon(self, variables, x, z, aux, *, key, step=0):
    del aux, key, step
    p = variables["params"]
    loc = z @ p["dec_w"] + p["dec_b"]
    d = (jnp.asarray(x["values"], jnp.float32) - loc) / jnp.exp(p["dec_log_sigma"])
    nll = jnp.sum(0.5 * d**2 + p["dec_log_sigma"] + 0.5 * LOG_2PI, -1)
    return base.Recon(nll=nll, loss=nll, fields={})

  def decode(self, variables, z, key, *, greedy=False):
    del key, greedy
    p = variables["params"]
    return z @ p["dec_w"] + p["dec_b"]

  def partition(self, params):
    return base.partition_by_top_level(params, {"enc_w", "enc_b", "enc_log_scale"})


P, D = 3, 2
MODEL = LinearGaussianVAE(P, D)
SCALAR = LinearGaussianVAE(P, 1)  # posterior mean space
ONE_D = LinearGaussianVAE(1, 1)  # x ~ N(0, 1), the closed-form MI


def _variables(model=MODEL, seed=0, log_scale=-1.0, enc_scale=1.0):
  p = model.init(jax.random.key(seed), None)["params"]
  return {
    "params": {
      **p,
      "enc_w": enc_scale * p["enc_w"],
      "enc_log_scale": jnp.asarray(p["enc_log_scale"] * 0 + log_scale),
    }
  }


def _data(n, seed=0, p=P):
  rng = np.random.default_rng(seed)
  return {
    "values": rng.normal(size=(n, p)).astype(np.float32),
    "length": rng.integers(1, 9, n).astype(np.int32),
  }


def _rows(data, lo, hi):
  return jax.tree.map(lambda a: a[lo:hi], data)


def _np_posterior(model, v, x):
  q, _ = model.encode(v, x)
  return np.asarray(q.mean, np.float64), np.asarray(q.scale, np.float64)


def _np_mi(mean, scale, eps):
  """float64 minibatch MI by explicit loops: mean_j neg_entropy_j - mean_j log q_B(z_j), z_j =
  mean_j + scale_j * eps_j, q_B the mixture of the B given posteriors (reference calc_mi)."""
  b, d = mean.shape
  neg_entropy = [-0.5 * d * LOG_2PI - 0.5 * np.sum(1 + 2 * np.log(scale[i])) for i in range(b)]
  z = mean + scale * eps
  log_qz = []
  for j in range(b):
    log_n = []
    for i in range(b):
      dev = (z[j] - mean[i]) / scale[i]
      log_n.append(np.sum(-0.5 * dev**2 - np.log(scale[i]) - 0.5 * LOG_2PI))
    log_qz.append(special.logsumexp(log_n) - np.log(b))
  return np.mean(neg_entropy) - np.mean(log_qz)


@functools.cache
def _mi_minibatch_jit(model):
  return jax.jit(functools.partial(latent.mi_minibatch, model))


@functools.cache
def _pms_jit(model, chunk):
  return jax.jit(functools.partial(latent.posterior_mean_space, model, chunk=chunk))


class MutualInformationTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  def test_minibatch_mi_is_the_reference_estimator_by_hand(self):
    """One z per example from eps = jax.random.normal(key, [B, D]) (the default reparameterize)."""
    v, x, key = _variables(), _data(7, 1), jax.random.key(3)
    got = self.variant(functools.partial(latent.mi_minibatch, MODEL))(v, x, key)
    chex.assert_shape(got, ())
    mean, scale = _np_posterior(MODEL, v, x)
    eps = np.asarray(jax.random.normal(key, (7, D)), np.float64)
    want = _np_mi(mean, scale, eps)
    self.assertGreater(want, 0.1)  # the posteriors do differ
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    # masked rows leave both means and the mixture: the estimate of the first 5 rows alone
    mask = np.arange(7) < 5
    got = self.variant(functools.partial(latent.mi_minibatch, MODEL))(v, x, key, mask)
    np.testing.assert_allclose(got, _np_mi(mean[:5], scale[:5], eps[:5]), rtol=1e-5, atol=1e-5)

  def test_minibatch_mi_saturates_at_log_b(self):
    """Per draw the estimate is <= log B + 1/2 mean_j sum_d (eps_jd^2 - 1) (module doc), with
    equality up to rounding when the posteriors do not overlap; the mean over draws <= log B."""
    f, b = _mi_minibatch_jit(MODEL), 8
    x = _data(b, 2)
    for log_scale, separated in ((0.0, False), (-6.0, True)):
      v = _variables(log_scale=log_scale)
      estimates, bounds = [], []
      for s in range(50):
        key = jax.random.key(100 + s)
        eps = np.asarray(jax.random.normal(key, (b, D)), np.float64)
        estimates.append(float(f(v, x, key)))
        bounds.append(np.log(b) + 0.5 * np.mean(np.sum(eps**2 - 1, -1)))
      estimates, bounds = np.array(estimates), np.array(bounds)
      self.assertTrue(np.all(estimates <= bounds + 1e-4), (estimates - bounds).max())
      if separated:
        np.testing.assert_allclose(estimates, bounds, atol=1e-4)
      else:
        self.assertLess(estimates.mean(), np.log(b) - 0.3)
      self.assertLess(estimates.mean(), np.log(b) + 3 * bounds.std() / np.sqrt(len(bounds)))

  def test_encoder_ignoring_x_gives_no_information(self):
    """Equal posteriors: the mixture is each posterior itself, so both estimates are exactly
    1/2 mean_j sum_d (eps_jd^2 - 1), a mean-zero noise (std sqrt(D / (2 N)))."""
    v = _variables(enc_scale=0.0)
    n, key = 500, jax.random.key(5)
    data = _data(n, 3)
    got = latent.mi_dataset(MODEL, v, data, key, batch_size=200)
    eps = np.asarray(jax.random.normal(jax.random.fold_in(key, 0), (n, D)), np.float64)
    np.testing.assert_allclose(got["mi"], 0.5 * np.mean(np.sum(eps**2 - 1, -1)), atol=1e-5)
    self.assertLess(abs(got["mi"]), 4 * np.sqrt(D / (2 * n)))

    ref = latent.mi_reference(MODEL, v, data, key, batch_size=64)
    want = 0.0
    for i, lo in enumerate(range(0, n, 64)):  # batch i: eps = normal(fold_in(key, i), [64, D])
      real = min(64, n - lo)
      e = np.asarray(jax.random.normal(jax.random.fold_in(key, i), (64, D)), np.float64)
      want += 0.5 * np.sum(np.sum(e[:real] ** 2 - 1, -1))
    np.testing.assert_allclose(ref["mi"], want / n, atol=1e-5)
    self.assertLess(abs(ref["mi"]), 4 * np.sqrt(D / (2 * n)))

  def test_linear_gaussian_closed_form(self):
    """x ~ N(0, 1), q(z | x) = N(a x, s^2): q(z) = N(0, a^2 + s^2) and I = 1/2 log(1 + a^2 / s^2).
    With N = 4000 the whole-set estimate was within 0.011 of it (3 (a, s) settings x 5 seeds;
    its Monte Carlo std is 0.003-0.006), so the tolerance is 0.05; the B = 16 minibatch one sat
    0.17 below (a, s = 2, 0.5) and 0.62 below (4, 0.25), near its cap log 16 = 2.77."""
    a, s, n = 2.0, 0.5, 4000
    p = ONE_D.init(jax.random.key(0), None)["params"]
    v = {
      "params": {**p, "enc_w": jnp.full((1, 1), a), "enc_log_scale": jnp.full((1,), math.log(s))}
    }
    data = _data(n, 4, p=1)
    true = 0.5 * math.log(1 + a**2 / s**2)
    whole = latent.mutual_information(ONE_D, v, data, jax.random.key(6), 1000, "dataset")
    mini = latent.mutual_information(ONE_D, v, data, jax.random.key(6), 16, "minibatch")
    self.assertEqual((whole["mi_estimator"], mini["mi_estimator"]), ("dataset", "minibatch"))
    np.testing.assert_allclose(whole["mi_cap"], math.log(n))
    np.testing.assert_allclose(mini["mi_cap"], math.log(16))
    self.assertLess(abs(whole["mi"] - true), 0.05)
    self.assertLess(mini["mi"], true - 0.1)
    self.assertLess(abs(whole["mi"] - true), abs(mini["mi"] - true) - 0.1)
    self.assertLessEqual(whole["mi"], whole["mi_cap"])

  def test_dataset_mi_is_the_whole_set_mixture_by_hand_whatever_batch_and_chunk(self):
    v, n, s, key = _variables(log_scale=-0.5), 37, 2, jax.random.key(7)
    data = _data(n, 5)
    mean, scale = _np_posterior(MODEL, v, data)
    neg_entropy = np.mean(-0.5 * D * LOG_2PI - 0.5 * np.sum(1 + 2 * np.log(scale), -1))
    log_qz = []
    for k in range(s):  # sample k of all N rows: eps = normal(fold_in(key, k), [N, D])
      eps = np.asarray(jax.random.normal(jax.random.fold_in(key, k), (n, D)), np.float64)
      z = mean + scale * eps
      for j in range(n):
        log_n = np.sum(-0.5 * ((z[j] - mean) / scale) ** 2 - np.log(scale) - 0.5 * LOG_2PI, -1)
        log_qz.append(special.logsumexp(log_n) - np.log(n))
    want = neg_entropy - np.mean(log_qz)
    for batch_size, chunk in ((8, 5), (37, 1000), (100, 16)):
      got = latent.mi_dataset(MODEL, v, data, key, batch_size, num_samples=s, chunk=chunk)
      np.testing.assert_allclose(got["mi"], want, rtol=1e-5, err_msg=f"{batch_size}, {chunk}")
    self.assertEqual(
      {k: got[k] for k in ("mi_estimator", "mi_samples", "num_examples")},
      {"mi_estimator": "dataset", "mi_samples": s, "num_examples": n},
    )
    np.testing.assert_allclose(got["mi_cap"], math.log(n))

  def test_reference_average_weights_batches_by_size_and_drops_padding(self):
    v, key, data = _variables(), jax.random.key(8), _data(11, 6)
    got = latent.mi_reference(MODEL, v, data, key, batch_size=4)  # batches of 4, 4, 3 (+ 1 pad)
    want = 0.0
    for i, (lo, hi) in enumerate(((0, 4), (4, 8), (8, 11))):
      mean, scale = _np_posterior(MODEL, v, _rows(data, lo, hi))
      eps = np.asarray(jax.random.normal(jax.random.fold_in(key, i), (4, D)), np.float64)
      want += (hi - lo) * _np_mi(mean, scale, eps[: hi - lo])
    np.testing.assert_allclose(got["mi"], want / 11, rtol=1e-5)
    np.testing.assert_allclose(got["mi_cap"], (8 * math.log(4) + 3 * math.log(3)) / 11)
    self.assertEqual((got["mi_estimator"], got["mi_batch_size"]), ("minibatch", 4))

  def test_bad_arguments_raise(self):
    v, data = _variables(), _data(5)
    with self.assertRaisesRegex(ValueError, "estimator"):
      latent.mutual_information(MODEL, v, data, jax.random.key(0), 4, "aggregate")
    with self.assertRaisesRegex(ValueError, "num_samples"):
      latent.mi_dataset(MODEL, v, data, jax.random.key(0), 4, num_samples=0)
    with self.assertRaisesRegex(ValueError, "leading dimension"):
      latent.mi_dataset(MODEL, v, {**data, "length": data["length"][:3]}, jax.random.key(0), 4)


class ActiveUnitsTest(chex.TestCase):
  def test_variance_of_posterior_means_with_ddof_1(self):
    v, data = _variables(), _data(13, 7)
    # dimension 1 barely moves with x: a small encoder column makes it inactive
    v["params"]["enc_w"] = v["params"]["enc_w"].at[:, 1].multiply(0.01)
    got = latent.active_units(MODEL, v, data, batch_size=5)
    mean, _ = _np_posterior(MODEL, v, data)
    want = np.var(mean, 0, ddof=1)
    np.testing.assert_allclose(got["variances"], want, rtol=1e-5)
    self.assertGreater(want[0], 0.01)
    self.assertLess(want[1], 0.01)
    self.assertEqual(got["au"], 1)
    self.assertEqual(latent.active_units(MODEL, v, data, 5, threshold=0.0)["au"], 2)

  def test_threshold_comparison_is_inclusive_like_the_reference(self):
    means = np.array([[0.5, 0.0], [-0.5, 0.0]])  # variances (ddof 1) exactly 0.5 and 0
    self.assertEqual(latent.au_from_means(means, threshold=0.5)["au"], 1)  # >=, not >
    self.assertEqual(latent.au_from_means(means, threshold=0.5 + 1e-12)["au"], 0)
    self.assertEqual(latent.au_from_means(means, threshold=0.3)["au"], 1)  # ddof 0 gives 0.25
    with self.assertRaisesRegex(ValueError, "N >= 2"):
      latent.au_from_means(means[:1])


class EvaluateLatentTest(chex.TestCase):
  def test_perplexity(self):
    np.testing.assert_allclose(latent.perplexity(30.0, 10), math.exp(3.0))
    assert latent.perplexity(8000.0, 10) == math.inf  # a diverged bound: reported, not raised
    with self.assertRaisesRegex(ValueError, "positive"):
      latent.perplexity(1.0, 0)

  def test_padded_batches_equal_the_unpadded_terms_and_trace_once(self):
    model = LinearGaussianVAE(P, 3)  # a fresh model: its own traces
    v = model.init(jax.random.key(1), None)
    n, bs, key = 11, 4, jax.random.key(9)
    data = _data(n, 8)
    tokens_fn = lambda b: b["length"] + 1  # + the end token
    traced = chex.assert_max_traces(latent._latent_batch_terms, n=1)
    with mock.patch.object(latent, "_latent_batch_terms", traced):
      kw = dict(batch_size=bs, iw_samples=20, iw_chunk=8, num_tokens_fn=tokens_fn)
      out = latent.evaluate_latent(model, v, data, key, **kw)
      latent.evaluate_latent(model, v, _data(n, 9), key, **kw)  # same shapes: no new trace

    k_lik, k_mi_batch, k_mi_data = jax.random.split(key, 3)

    @jax.jit
    def reference(xb, k):  # [b] terms of one unpadded batch, likelihood.evaluate_images' keys
      k_elbo, k_iw = jax.random.split(k)
      nll, kl = likelihood.elbo_terms(model, v, xb, k_elbo)
      return nll, kl, likelihood.iw_nll(model, v, xb, k_iw, num_samples=20, chunk=8)

    terms = [
      reference(_rows(data, lo, lo + bs), jax.random.fold_in(k_lik, i))
      for i, lo in enumerate(range(0, n, bs))
    ]
    recon, kl, iw = (
      np.concatenate([np.asarray(t[j], np.float64) for t in terms]) for j in range(3)
    )
    np.testing.assert_allclose(out["recon"], recon.mean(), rtol=1e-5)
    np.testing.assert_allclose(out["kl"], kl.mean(), rtol=1e-5)
    np.testing.assert_allclose(out["iw_nll"], iw.mean(), rtol=1e-5)
    np.testing.assert_allclose(out["elbo"], -(recon + kl).mean(), rtol=1e-5)
    self.assertLess(out["iw_nll"], -out["elbo"] + 0.5)

    tokens = float(np.sum(data["length"] + 1))
    self.assertEqual(out["num_tokens"], tokens)
    np.testing.assert_allclose(out["ppl_iw"], np.exp(iw.sum() / tokens), rtol=1e-5)
    np.testing.assert_allclose(out["ppl_elbo"], np.exp((recon + kl).sum() / tokens), rtol=1e-5)

    mini = latent.mi_reference(model, v, data, k_mi_batch, bs)
    whole = latent.mi_dataset(model, v, data, k_mi_data, bs)
    au = latent.active_units(model, v, data, bs)
    np.testing.assert_allclose(out["mi_minibatch"], mini["mi"], rtol=1e-6)
    np.testing.assert_allclose(out["mi_minibatch_cap"], mini["mi_cap"])
    np.testing.assert_allclose(out["mi_dataset"], whole["mi"], rtol=1e-6)
    np.testing.assert_allclose(out["mi_dataset_cap"], math.log(n))
    self.assertEqual(out["au"], au["au"])
    np.testing.assert_allclose(out["au_variances"], au["variances"], rtol=1e-6)
    self.assertEqual((out["num_examples"], out["iw_samples"], out["batch_size"]), (n, 20, bs))

  def test_image_arrays_give_evaluate_images_numbers(self):
    """A plain array data set and DenseImageVAE: the likelihood entries are
    likelihood.evaluate_images' with key k_lik (module doc), padding rows and all."""
    model = DenseImageVAE(ImageVAEConfig(num_pixels=12, latent_dim=2, hidden=(8,)))
    v = model.init(jax.random.key(0), jnp.zeros((1, 12)))
    x = (np.random.default_rng(12).random((11, 12)) < 0.4).astype(np.float32)
    key = jax.random.key(13)
    out = latent.evaluate_latent(model, v, x, key, batch_size=4, iw_samples=20, iw_chunk=8)
    ref = likelihood.evaluate_images(
      model, v, x, jax.random.split(key, 3)[0], batch_size=4, num_samples=20, chunk=8
    )
    for k in ("elbo", "recon", "kl", "iw_nll"):
      np.testing.assert_allclose(out[k], ref[k], rtol=1e-6, err_msg=k)
    self.assertNotIn("ppl_iw", out)  # no num_tokens_fn: no perplexities

  def test_padded_batches_copy_row_zero(self):
    data = _data(5, 10)
    batches = list(latent.padded_batches(data, 3))
    self.assertEqual([(i, real) for i, _, real in batches], [(0, 3), (1, 2)])
    last = batches[1][1]
    np.testing.assert_array_equal(last["values"], data["values"][[3, 4, 0]])
    np.testing.assert_array_equal(last["length"], data["length"][[3, 4, 0]])
    with self.assertRaisesRegex(ValueError, "non-empty"):
      list(latent.padded_batches(_rows(data, 0, 0), 3))


class PosteriorMeanSpaceTest(chex.TestCase):
  def test_grid_mean_is_the_conjugate_posterior_mean(self):
    """z ~ N(0, 1), x | z ~ N(z w + b, sigma^2 I): p(z | x) = N(w.(x - b) / (sigma^2 + |w|^2),
    sigma^2 / (sigma^2 + |w|^2)); App A's grid ([-20, 20], stride 0.01) resolves its std."""
    v = _variables(SCALAR, seed=2)
    v["params"]["dec_log_sigma"] = jnp.asarray(math.log(0.7))
    x = _data(9, 11)
    x["values"] = 3.0 * x["values"]  # posterior means far from 0
    mu_model, mu_enc = _pms_jit(SCALAR, 512)(v, x, None)
    chex.assert_shape((mu_model, mu_enc), (9,))
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), v["params"])
    w, b, s2 = p["dec_w"][0], p["dec_b"], 0.7**2
    want = (x["values"] - b) @ w / (s2 + w @ w)
    self.assertGreater(np.abs(want).max(), 1.0)
    np.testing.assert_allclose(mu_model, want, atol=1e-5)  # measured 5e-7
    np.testing.assert_allclose(mu_enc, SCALAR.encode(v, x)[0].mean[:, 0])
    self.assertEqual(latent.default_grid().shape, (4001,))
    np.testing.assert_allclose(np.diff(np.asarray(latent.default_grid())), 0.01, atol=1e-5)

    # a coarser grid given explicitly, chunked with a remainder, agrees with the default one
    grid = jnp.linspace(-10.0, 10.0, 1001)
    got, _ = _pms_jit(SCALAR, 300)(v, x, None, grid)
    np.testing.assert_allclose(got, want, atol=1e-5)

  def test_vector_latent_raises(self):
    with self.assertRaisesRegex(ValueError, "scalar latent"):
      latent.posterior_mean_space(MODEL, _variables(), _data(2), None)

  def test_plot_writes_a_png(self):
    rng = np.random.default_rng(0)
    stages = {f"iter = {i}": (rng.normal(size=50), 0.3 * i * rng.normal(size=50)) for i in range(3)}
    with tempfile.TemporaryDirectory() as tmp:
      path = latent.plot_posterior_mean_space(stages, os.path.join(tmp, "pms.png"), "basic VAE")
      with open(path, "rb") as f:
        head = f.read(8)
      self.assertEqual(head, b"\x89PNG\r\n\x1a\n")
      self.assertGreater(os.path.getsize(path), 5000)
    with self.assertRaisesRegex(ValueError, "empty"):
      latent.plot_posterior_mean_space({}, "unused.png")
    with self.assertRaisesRegex(ValueError, "encoder means"):
      latent.plot_posterior_mean_space({"a": (np.zeros(3), np.zeros(2))}, "unused.png")


if __name__ == "__main__":
  absltest.main()
