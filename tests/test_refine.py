"""Semi-amortized refinement (alala_jax/refine.py): the SVI update against an explicit Python
loop, exact gradients through the unrolled loop against finite differences of the whole
pipeline, the reference's finite-difference HVP mode against exact autodiff (float64, no clip),
rematerialisation, batch (in)dependence of the two modes, and the variants' gradient paths."""

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alala_jax import refine
from alala_jax.models import base
from alala_jax.models.image import DenseImageVAE, ImageVAEConfig

P, D, B = 10, 2, 6
MODEL = DenseImageVAE(ImageVAEConfig(num_pixels=P, latent_dim=D, hidden=(8,)))


@functools.cache
def _variables():
  p = MODEL.init(jax.random.key(0), jnp.zeros((1, P)))["params"]
  return {"params": jax.tree.map(lambda a: 2.0 * a, p)}  # a z-dependent decoder


def _x(n=B, seed=0):
  return jnp.asarray((np.random.default_rng(seed).random((n, P)) < 0.4).astype(np.float32))


def _ref(**kw):
  cfg = dict(steps=5, lr=0.5, momentum=0.5, clip=0.0, backward_clip=0.0)
  cfg.update(kw)
  return refine.Refinement(refine.SVIConfig(**cfg))


def _loop_svi(cfg, variables, x, lam0, key, w):
  """The update rule written out: a Python loop, jax.grad per step, no scan / checkpoint."""
  k_eps, k_dec = jax.random.split(key)
  eps = jax.random.normal(k_eps, (cfg.steps,) + lam0[0].shape)
  keys = jax.random.split(k_dec, cfg.steps)
  lam, v = lam0, (jnp.zeros_like(lam0[0]), jnp.zeros_like(lam0[1]))
  for k in range(cfg.steps):

    def loss(l):
      ell = refine.per_example_loss(
        MODEL, variables, x, None, l, eps[k], w, key=keys[k], train=False
      )
      return jnp.mean(ell) if cfg.mode == "reference" else jnp.sum(ell) / cfg.batch_scale

    g = jax.grad(loss)(lam)
    if cfg.clip:
      if cfg.mode == "reference":
        g = tuple(gi * min(1.0, cfg.clip / (float(jnp.linalg.norm(gi)) + 1e-6)) for gi in g)
      else:
        g = tuple(
          gi * jnp.minimum(1.0, cfg.clip / (jnp.linalg.norm(gi, axis=-1, keepdims=True) + 1e-6))
          for gi in g
        )
    v = tuple(cfg.momentum * vi - gi for vi, gi in zip(v, g))
    lam = tuple(li + cfg.lr * vi for li, vi in zip(lam, v))
  return lam


@pytest.mark.parametrize("mode", ["reference", "per_example"])
@pytest.mark.parametrize("clip", [0.0, 0.05])
def test_svi_matches_an_explicit_loop(mode, clip):
  r = _ref(mode=mode, clip=clip, batch_scale=4)
  v, x = _variables(), _x()
  q0, _ = MODEL.encode(v, x)
  lam0 = refine.from_posterior(q0)
  key = jax.random.key(3)
  lam, losses = r.svi(MODEL, v, x, None, lam0, key, kl_weight=0.7, train=False)
  want = _loop_svi(r.config, v, x, lam0, key, 0.7)
  chex.assert_trees_all_close(lam, want, rtol=2e-5, atol=2e-6)
  chex.assert_shape(losses, (r.config.steps,))
  assert not np.allclose(lam[0], lam0[0])


def test_svi_lowers_its_objective():
  r = _ref(steps=20, lr=1.0, mode="per_example", batch_scale=8, clip=5.0)
  v, x = _variables(), _x()
  lam0 = refine.from_posterior(MODEL.encode(v, x)[0])
  _, losses = r.svi(MODEL, v, x, None, lam0, jax.random.key(1), kl_weight=1.0, train=False)
  assert np.all(np.isfinite(losses))
  assert float(np.mean(losses[-5:])) < float(np.mean(losses[:5])) - 1.0


def _outer_loss(params, r, x, key, gradient="exact"):
  """The SA-VAE training loss at q_K as a function of all parameters."""
  r = dataclasses.replace(r, config=dataclasses.replace(r.config, gradient=gradient))
  v = {"params": params}
  q0, _ = MODEL.encode(v, x)
  qk, _, _ = r.apply(MODEL, v, x, None, q0, key, step=0, train=True)
  z = qk.sample(jax.random.key(11))
  return jnp.mean(MODEL.recon(v, x, z, None, key=None).nll + qk.kl_standard_normal())


def _direction(params, seed):
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(
    tree, [jax.random.normal(k, a.shape, a.dtype) for k, a in zip(keys, leaves)]
  )


def test_exact_gradient_through_the_loop_matches_finite_differences():
  with jax.enable_x64(True):
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), _variables()["params"])
    x = jnp.asarray(_x(), jnp.float64)
    r, key = _ref(steps=4), jax.random.key(5)
    f = lambda p: _outer_loss(p, r, x, key)
    g = jax.grad(f)(params)
    u = _direction(params, 0)
    h = 1e-5
    fd = (
      f(jax.tree.map(lambda a, b: a + h * b, params, u))
      - f(jax.tree.map(lambda a, b: a - h * b, params, u))
    ) / (2 * h)
    dot = sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(u)))
    np.testing.assert_allclose(float(dot), float(fd), rtol=1e-6)
    # the encoder gets a gradient only through the K steps and lambda_0
    assert float(jnp.abs(g["encoder"]["mean"]["kernel"]).max()) > 0


def test_finite_difference_hvp_mode_agrees_with_exact_autodiff_without_clip():
  with jax.enable_x64(True):
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), _variables()["params"])
    x = jnp.asarray(_x(), jnp.float64)
    r, key = _ref(steps=4, fd_eps=1e-7), jax.random.key(5)
    exact = jax.grad(lambda p: _outer_loss(p, r, x, key))(params)
    fd = jax.grad(lambda p: _outer_loss(p, r, x, key, "fd"))(params)
    chex.assert_trees_all_close(fd, exact, rtol=1e-4, atol=1e-7)
    # the value is the same program: only the backward pass differs
    np.testing.assert_allclose(
      _outer_loss(params, r, x, key, "fd"), _outer_loss(params, r, x, key), rtol=1e-12
    )


def test_clip_cotangent_is_the_identity_whose_cotangent_is_clipped():
  tree = (jnp.ones((3, 2)), jnp.ones((3, 4)))
  g = (jnp.arange(6.0).reshape(3, 2), -jnp.arange(12.0).reshape(3, 4) / 10)
  for rows in (False, True):
    out, vjp = jax.vjp(functools.partial(refine.clip_cotangent, 1.5, rows), tree)
    chex.assert_trees_all_equal(out, tree)
    (got,) = vjp(g)
    flat = np.concatenate([np.asarray(a).reshape(3, -1) for a in g], 1)
    norm = np.linalg.norm(flat, axis=1, keepdims=True) if rows else np.linalg.norm(flat)
    want = flat * np.minimum(1.0, 1.5 / (norm + 1e-6))
    np.testing.assert_allclose(np.concatenate([np.asarray(a) for a in got], 1), want, rtol=1e-6)
  (small,) = jax.vjp(functools.partial(refine.clip_cotangent, 100.0, False), tree)[1](g)
  chex.assert_trees_all_close(small, g)  # under the cap: unchanged


@pytest.mark.parametrize("mode", ["reference", "per_example"])
def test_backward_clip_exact_and_finite_difference_paths_agree(mode):
  """The reference's backward clip (each step's adjoint of lambda and its HVP share of the
  decoder's gradient, capped) in the autodiff path (custom-vjp identities inside the scan)
  against the explicit reverse recursion of the 'fd' path; the cap fires, so both differ from
  the uncapped gradient."""
  with jax.enable_x64(True):
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), _variables()["params"])
    x = jnp.asarray(_x(), jnp.float64)
    key = jax.random.key(5)
    kw = dict(steps=4, fd_eps=1e-7, mode=mode, batch_scale=4)
    r = _ref(backward_clip=0.02, **kw)
    exact = jax.grad(lambda p: _outer_loss(p, r, x, key))(params)
    fd = jax.grad(lambda p: _outer_loss(p, r, x, key, "fd"))(params)
    chex.assert_trees_all_close(fd, exact, rtol=1e-4, atol=1e-7)
    free = jax.grad(lambda p: _outer_loss(p, _ref(**kw), x, key))(params)
    enc = lambda g: np.asarray(g["encoder"]["mean"]["kernel"])
    assert np.abs(enc(exact) - enc(free)).max() > 1e-3 * np.abs(enc(free)).max()
    # the value is unchanged: only the backward pass differs
    np.testing.assert_allclose(
      _outer_loss(params, r, x, key), _outer_loss(params, _ref(**kw), x, key), rtol=1e-12
    )


def test_remat_does_not_change_values_or_gradients():
  params, x, key = _variables()["params"], _x(), jax.random.key(2)
  a = jax.value_and_grad(lambda p: _outer_loss(p, _ref(remat=True), x, key))(params)
  b = jax.value_and_grad(lambda p: _outer_loss(p, _ref(remat=False), x, key))(params)
  chex.assert_trees_all_close(a, b, rtol=1e-5, atol=1e-7)


def _lam_k(r, x, key):
  v = _variables()
  lam0 = refine.from_posterior(MODEL.encode(v, x)[0])
  return r.svi(MODEL, v, x, None, lam0, key, kl_weight=1.0, train=False)[0]


def test_per_example_mode_does_not_depend_on_the_batch_but_reference_does():
  x8 = _x(8, seed=1)
  key = jax.random.key(4)
  # the same eps per example: draw for the big batch, keep the first 4 rows' eps
  r = _ref(mode="per_example", batch_scale=4, clip=0.5)
  eps, keys = refine._step_inputs(key, (8, D), r.config.steps)

  def run(cfg, x, eps):
    v = _variables()
    lam0 = refine.from_posterior(MODEL.encode(v, x)[0])
    problem = refine._Problem(MODEL, v, x, None, 1.0, cfg, False)
    return refine._forward(problem, lam0, v["params"], eps, keys)[0]

  small = run(r.config, x8[:4], eps[:, :4])
  big = run(r.config, x8, eps)
  chex.assert_trees_all_close(jax.tree.map(lambda a: a[:4], big), small, rtol=1e-5, atol=1e-6)
  ref_cfg = dataclasses.replace(r.config, mode="reference")
  small_ref, big_ref = run(ref_cfg, x8[:4], eps[:, :4]), run(ref_cfg, x8, eps)
  assert not np.allclose(big_ref[0][:4], small_ref[0], atol=1e-4)
  # at B = batch_scale and without clipping the two modes take the same steps
  same = dataclasses.replace(r.config, clip=0.0)
  chex.assert_trees_all_close(
    run(same, x8[:4], eps[:, :4]),
    run(dataclasses.replace(same, mode="reference"), x8[:4], eps[:, :4]),
    rtol=1e-5,
    atol=1e-6,
  )


def _grads(variant):
  r = _ref(variant=variant)
  v, x = _variables(), _x()

  def loss(params):
    vv = {"params": params}
    q0, _ = MODEL.encode(vv, x)
    qk, enc_loss, _ = r.apply(MODEL, vv, x, None, q0, jax.random.key(8), step=0, train=True)
    z = qk.sample(jax.random.key(9))
    total = jnp.mean(MODEL.recon(vv, x, z, None, key=None).nll + qk.kl_standard_normal())
    return total + (0.0 if enc_loss is None else jnp.mean(enc_loss))

  return jax.grad(loss)(v["params"])


def _nonzero(tree):
  return any(float(jnp.abs(a).max()) > 0 for a in jax.tree.leaves(tree))


def test_variants_route_gradients_as_the_paper_says():
  g = {name: _grads(name) for name in refine.VARIANTS}
  enc = lambda t: {k: t[k] for k in ("encoder", "encoder_scale")}
  assert not _nonzero(enc(g["svi"]))  # no encoder
  for name in ("savae", "vae_svi", "vae_svi_kl"):
    assert _nonzero(enc(g[name])), name
  # VAE+SVI and VAE+SVI+KL train the decoder on the same (stopped) lambda_K only
  chex.assert_trees_all_close(g["vae_svi"]["decoder"], g["vae_svi_kl"]["decoder"])
  # SA-VAE's decoder gradient also flows through the K steps: it differs
  assert not np.allclose(
    g["savae"]["decoder"]["logits"]["kernel"], g["vae_svi"]["decoder"]["logits"]["kernel"]
  )
  # the encoders' losses differ (ELBO at lambda_0 vs KL(q_0 || q_K))
  assert not np.allclose(
    g["vae_svi"]["encoder"]["mean"]["kernel"], g["vae_svi_kl"]["encoder"]["mean"]["kernel"]
  )


def test_svi_baseline_starts_from_zero_in_training_and_noise_in_evaluation():
  r = _ref(variant="svi")
  q0 = base.DiagGaussian(jnp.ones((3, D)), jnp.ones((3, D)))
  lam = r.initial(q0, jax.random.key(0), train=True)
  chex.assert_trees_all_equal(lam, (jnp.zeros((3, D)), jnp.zeros((3, D))))
  lam = r.initial(q0, jax.random.key(0), train=False)
  assert 0 < float(jnp.std(lam[0])) < 0.3


def test_refined_model_encodes_the_refined_posterior_and_bad_config():
  r = _ref()
  m = refine.RefinedModel(MODEL, r)
  v, x = _variables(), _x()
  qk, _ = m.encode(v, x)
  q0, _ = MODEL.encode(v, x)
  assert not np.allclose(qk.mean, q0.mean)
  assert hash(m) == hash(refine.RefinedModel(MODEL, r))
  with pytest.raises(ValueError, match="variant"):
    refine.SVIConfig(variant="nope")
  with pytest.raises(ValueError, match="SVI"):
    refine.SVIConfig(lr=0.0)
