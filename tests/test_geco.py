"""GECO (paper 003 Algorithm 1, objectives/geco.py): bookkeeping against a plain Python loop,
a linear-Gaussian VAE whose constrained optimum is known in closed form, and the registry."""

import math
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.optimize
from ml_collections import ConfigDict

from alala_jax.models.base import Recon
from alala_jax.objectives import base
from alala_jax.objectives import geco as geco_lib


def _terms(fields, kl, loss=None, nll=None, kl_scale=1.0) -> base.Terms:
  b = kl.shape[-1]
  zero = jnp.zeros((b,), jnp.float32)
  return base.Terms(
    recon=Recon(
      nll=zero if nll is None else nll, loss=zero if loss is None else loss, fields=fields
    ),
    kl=kl,
    z=jnp.zeros((b, 1)),
    posterior=None,
    row_mask=None,
    kl_scale=kl_scale,
  )


# ------------------------------------------------------------------------------------------
# 1. Algorithm 1 bookkeeping


def test_algorithm1_bookkeeping_matches_python_loop():
  """C_ma from the first batch then alpha-averaged, lambda <- lambda exp(nu C_ma) with log lambda
  clipped, loss = KL + sum lambda_prev C_ma: against a float64 loop written from Algorithm 1."""
  alpha, nu, lo, hi, kl_w = 0.6, 0.5, -1.0, 1.5, 0.7
  tols = {"a": 0.5, "b": 2.0}
  cons = [geco_lib.Constraint("a", "a", tols["a"]), geco_lib.Constraint("b", "b", tols["b"])]
  obj = geco_lib.geco(
    cons, alpha=alpha, nu=nu, lambda_init=1.0, log_lambda_clamp=(lo, hi), kl_weight=kl_w
  )
  rng = np.random.default_rng(0)
  t_steps, bsz = 16, 5
  # 'a' violated for 3 batches then slack (lambda climbs to the ceiling and comes back down),
  # 'b' slack throughout (lambda falls to the floor and stays there)
  a_mean = np.where(np.arange(t_steps) < 3, 3.0, 0.0)
  a_vals = (a_mean[:, None] + rng.normal(0, 0.3, (t_steps, bsz))).astype(np.float32)
  b_vals = rng.uniform(0, 1, (t_steps, bsz)).astype(np.float32)
  kl_vals = rng.uniform(0, 3, (t_steps, 2, bsz)).astype(np.float32)  # [L, B]: summed

  @jax.jit
  def step(state, a, b, kl):
    terms = _terms({"a": a, "b": b}, kl)
    loss, m = obj.loss(state, terms, step=0, level=base.Level())
    new, _ = obj.update(
      state, terms, step=0, key=jax.random.key(0), phase=base.TRAIN, level=base.Level()
    )
    return new, loss, m

  state = obj.init(jax.random.key(0))
  lam = np.ones(2)
  c_ma = None
  hit = {"lo": False, "hi": False, "inside_after_hi": False}
  for t in range(t_steps):
    c_hat = np.array(
      [
        a_vals[t].astype(np.float64).mean() - tols["a"],
        b_vals[t].astype(np.float64).mean() - tols["b"],
      ]
    )
    c_ma = c_hat if t == 0 else alpha * c_ma + (1 - alpha) * c_hat
    want_loss = kl_w * kl_vals[t].astype(np.float64).sum(0).mean() + np.sum(lam * c_ma)
    new, loss, m = step(state, a_vals[t], b_vals[t], kl_vals[t])
    np.testing.assert_allclose(float(loss), want_loss, rtol=1e-5)
    np.testing.assert_allclose([m["geco/c/a"], m["geco/c/b"]], c_hat, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([m["geco/c_ma/a"], m["geco/c_ma/b"]], c_ma, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([m["geco/lambda/a"], m["geco/lambda/b"]], lam, rtol=1e-5)
    np.testing.assert_allclose(
      m["geco/kl_nats"], kl_vals[t].astype(np.float64).sum(0).mean(), rtol=1e-5
    )
    log_lam = np.log(lam) + nu * c_ma
    hit["lo"] |= bool(np.any(log_lam < lo))
    hit["inside_after_hi"] |= hit["hi"] and lo < log_lam[0] < hi
    hit["hi"] |= bool(np.any(log_lam > hi))
    lam = np.exp(np.clip(log_lam, lo, hi))
    state = new
    s = state["geco"]
    assert int(s.count) == t + 1
    np.testing.assert_allclose(s.c_ma, c_ma, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s.lagrange, lam, rtol=1e-5)
  assert hit == {"lo": True, "hi": True, "inside_after_hi": True}  # the clamp did bind
  np.testing.assert_allclose(state["geco"].lagrange[1], math.exp(lo), rtol=1e-5)


def test_straight_through_constraint_gradient():
  """C_t's value is C_ma-based, its gradient C_hat's: d loss / d term_i = lambda / B, d loss /
  d kl_i = kl_weight / B, and no gradient reaches the state (lambda, C_ma)."""
  bsz = 8
  obj = geco_lib.geco(
    [geco_lib.Constraint("x", "x", 0.3), geco_lib.Constraint("L", "loss", 1.0)],
    alpha=0.9,
    kl_weight=0.5,
  )
  state = {
    "geco": geco_lib.GECOState(
      lagrange=jnp.array([2.5, 0.4]), c_ma=jnp.array([0.7, -0.2]), count=jnp.array(3, jnp.int32)
    )
  }
  k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
  x = jax.random.uniform(k1, (bsz,))
  rl = jax.random.uniform(k2, (bsz,))
  kl = jax.random.uniform(k3, (bsz,))

  def f(state, x, rl, kl):
    return obj.loss(state, _terms({"x": x}, kl, loss=rl), step=0, level=base.Level())[0]

  g_state, g_x, g_rl, g_kl = jax.grad(f, argnums=(0, 1, 2, 3), allow_int=True)(state, x, rl, kl)
  np.testing.assert_allclose(g_x, np.full(bsz, 2.5 / bsz), rtol=1e-6)
  np.testing.assert_allclose(g_rl, np.full(bsz, 0.4 / bsz), rtol=1e-6)
  np.testing.assert_allclose(g_kl, np.full(bsz, 0.5 / bsz), rtol=1e-6)
  chex.assert_trees_all_close(g_state["geco"].lagrange, jnp.zeros(2))
  chex.assert_trees_all_close(g_state["geco"].c_ma, jnp.zeros(2))
  # the value: the moving average (not the batch value) times lambda
  c_hat = np.array([np.mean(x) - 0.3, np.mean(rl) - 1.0])
  c_ma = 0.9 * np.array([0.7, -0.2]) + 0.1 * c_hat
  want = 0.5 * np.mean(kl) + np.sum(np.array([2.5, 0.4]) * c_ma)
  np.testing.assert_allclose(f(state, x, rl, kl), want, rtol=1e-6)
  # the KL is in nats as the paper minimises it: the model's beta units do not enter
  loss_scaled, _ = obj.loss(
    state, _terms({"x": x}, kl, loss=rl, kl_scale=0.125), step=0, level=base.Level()
  )
  np.testing.assert_allclose(loss_scaled, want, rtol=1e-6)


def test_special_terms_and_missing_field():
  obj = geco_lib.geco(
    [geco_lib.Constraint("nll", "nll", 0.0), geco_lib.Constraint("p", "postcode", 0.0)]
  )
  state = obj.init(jax.random.key(0))
  kl = jnp.ones((3,))
  t = _terms({"postcode": jnp.array([1.0, 2.0, 3.0])}, kl, nll=jnp.array([4.0, 5.0, 6.0]))
  _, m = obj.loss(state, t, step=0, level=base.Level())
  np.testing.assert_allclose([m["geco/c/nll"], m["geco/c/p"]], [5.0, 2.0])
  t = _terms({"street": kl, "(lat,long)": kl}, kl)
  with pytest.raises(KeyError, match=r"'postcode'.*\(lat,long\).*street"):
    jax.jit(lambda s, t: obj.loss(s, t, step=0, level=base.Level()))(state, t)


def test_constraints_are_measured_on_the_real_rows():
  """Augmented training appends generated variants (row_mask 0): C_hat averages the real
  rows only, while the KL term keeps every row."""
  obj = geco_lib.geco([geco_lib.Constraint("p", "postcode", 1.0)])
  state = obj.init(jax.random.key(0))
  kl = jnp.array([1.0, 2.0, 3.0, 30.0])
  t = _terms({"postcode": jnp.array([1.0, 2.0, 3.0, 100.0])}, kl)
  t = t.replace(row_mask=jnp.array([1.0, 1.0, 1.0, 0.0]))
  loss, m = obj.loss(state, t, step=0, level=base.Level())
  np.testing.assert_allclose(m["geco/c/p"], 2.0 - 1.0, rtol=1e-6)
  np.testing.assert_allclose(loss, np.mean(kl) + 1.0 * (2.0 - 1.0), rtol=1e-6)


# ------------------------------------------------------------------------------------------
# 2. A linear-Gaussian VAE with a closed-form constrained optimum

S = np.array([2.0, 1.0, 0.25])  # data standard deviations per dimension, x ~ N(0, diag(S^2))


def optimal_recon(lam, s=S):
  """The reconstruction error at the minimum of E[KL] + lambda E||x - w z||^2.

  Per dimension, x ~ N(0, s^2), q(z | x) = N(a x, v), decoder mean w z, prior N(0, 1):

    R  = E||x - w z||^2 = (1 - w a)^2 s^2 + w^2 v
    KL = E KL(q || p)   = 1/2 (a^2 s^2 + v - 1 - log v)

  Stationarity of L = KL + lambda R:
    dL/dv = 1/2 (1 - 1/v) + lambda w^2 = 0            =>  v = 1 / (1 + u),  u = 2 lambda w^2
    dL/da = a s^2 - 2 lambda w (1 - w a) s^2 = 0     =>  a = 2 lambda w / (1 + u),
                                                         w a = u / (1 + u)
    dL/dw = 2 lambda (w v - a (1 - w a) s^2) = 0     =>  w / (1 + u) = 2 lambda w s^2 / (1 + u)^2
  so either w = 0 (then a = 0, v = 1: a collapsed dimension, R = s^2, KL = 0), or
  1 + u = 2 lambda s^2, which needs u > 0, i.e. lambda > 1 / (2 s^2); then
    R = s^2 / (1 + u)^2 + (u / (2 lambda)) / (1 + u)
      = 1 / (4 lambda^2 s^2) + (2 lambda s^2 - 1) / (4 lambda^2 s^2) = 1 / (2 lambda),
    v = 1 / (2 lambda s^2),  a^2 s^2 = 1 - v,  KL = -1/2 log v = 1/2 log(2 lambda s^2).
  The collapsed point is a minimum only for lambda < 1 / (2 s^2) (L's quadratic form in (a, w)
  there, [[s^2/2, -lambda s^2], [-lambda s^2, lambda]], is positive definite iff
  2 lambda s^2 < 1), so per dimension R* = min(s^2, 1 / (2 lambda)) and over d dimensions
    R*(lambda)  = sum_i min(s_i^2, 1 / (2 lambda)),
    KL*(lambda) = sum_i max(0, 1/2 log(2 lambda s_i^2)):
  reverse water-filling, the Gaussian rate-distortion function with distortion D = 1 / (2 lambda).
  (beta = 1 / lambda: the beta-VAE with this Gaussian decoder has R* = min(s^2, beta / 2).)
  """
  return float(np.sum(np.minimum(s**2, 1.0 / (2.0 * lam))))


def optimal_kl(lam, s=S):
  return float(np.sum(np.maximum(0.0, 0.5 * np.log(2.0 * lam * s**2))))


def _toy_objective(p, s, lam):
  a, log_v, w = p
  v = math.exp(log_v)
  return 0.5 * (a * a * s * s + v - 1 - log_v) + lam * ((1 - w * a) ** 2 * s * s + w * w * v)


@pytest.mark.parametrize("lam", [0.3, 1.0, 4.0, 20.0])
def test_closed_form_matches_scipy(lam):
  """R*(lambda) and KL*(lambda) against a numerical minimisation of the same objective."""
  rng = np.random.default_rng(0)
  r_num, kl_num = 0.0, 0.0
  for s in S:
    best = min(
      (
        scipy.optimize.minimize(
          _toy_objective, rng.normal(0, 1, 3), args=(s, lam), method="BFGS", options={"gtol": 1e-10}
        )
        for _ in range(5)
      ),
      key=lambda r: r.fun,
    )
    a, log_v, w = best.x
    v = math.exp(log_v)
    r_num += (1 - w * a) ** 2 * s * s + w * w * v
    kl_num += 0.5 * (a * a * s * s + v - 1 - log_v)
  np.testing.assert_allclose(r_num, optimal_recon(lam), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(kl_num, optimal_kl(lam), rtol=1e-4, atol=1e-5)


def _toy_terms(params, x, eps) -> base.Terms:
  """Per-example terms of the linear-Gaussian VAE: z = a x + sqrt(v) eps (reparameterised)."""
  a, log_v, w = params["a"], params["log_v"], params["w"]
  v = jnp.exp(log_v)
  z = a * x + jnp.sqrt(v) * eps  # [B, d]
  err = jnp.sum((x - w * z) ** 2, -1)  # [B] ||x - w z||^2
  kl = 0.5 * jnp.sum((a * x) ** 2 + v - 1.0 - log_v, -1)  # [B] nats
  return base.Terms(
    recon=Recon(nll=err, loss=err, fields={"x": err}), kl=kl, z=z, posterior=None, row_mask=None
  )


def _expected_recon(params) -> float:
  a, v, w = params["a"], np.exp(params["log_v"]), params["w"]
  return float(np.sum((1 - w * a) ** 2 * S**2 + w**2 * v))


def _train_toy(tolerance, steps, seed=0, batch=256, **geco_kw):
  """GECO on the toy: a jitted lax.scan of (loss -> adam step -> update) on fresh batches."""
  obj = geco_lib.geco([geco_lib.Constraint("x", "x", tolerance)], **geco_kw)
  opt = optax.adam(optax.exponential_decay(1e-2, steps, 0.1))
  k_init, k_run = jax.random.split(jax.random.key(seed))
  params = {
    "a": jax.random.uniform(k_init, (3,), minval=0.3, maxval=0.7),
    "log_v": jnp.zeros((3,)),
    "w": jnp.full((3,), 0.5),
  }
  s = jnp.asarray(S, jnp.float32)

  def body(carry, key):
    params, opt_state, gstate = carry
    k_x, k_e, k_u = jax.random.split(key, 3)
    x = s * jax.random.normal(k_x, (batch, 3))
    eps = jax.random.normal(k_e, (batch, 3))

    def loss_fn(p):
      terms = _toy_terms(p, x, eps)
      loss, m = obj.loss(gstate, terms, step=0, level=base.Level())
      return loss, (terms, m)

    (_, (terms, m)), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
    upd, opt_state = opt.update(g, opt_state, params)
    params = optax.apply_updates(params, upd)
    gstate, _ = obj.update(gstate, terms, step=0, key=k_u, phase=base.TRAIN, level=base.Level())
    return (params, opt_state, gstate), (m["geco/lambda/x"], m["geco/c_ma/x"])

  run = jax.jit(lambda p, keys: jax.lax.scan(body, (p, opt.init(p), obj.init(k_init)), keys))
  (params, _, gstate), (lam_traj, cma_traj) = run(params, jax.random.split(k_run, steps))
  return (
    jax.device_get(params),
    jax.device_get(gstate["geco"]),
    np.asarray(lam_traj),
    np.asarray(cma_traj),
  )


# At lambda* = 4 the dims s = 2, 1 are active (1 / (2 s^2) = 0.125, 0.5 < 4) and s = 0.25 is
# collapsed (1 / (2 s^2) = 8 > 4): kappa^2 = R*(4) = 2 / 8 + 0.25^2 = 0.3125 (from R*(1) = 1.25).
LAMBDA_STAR = 4.0


def test_geco_finds_the_multiplier_of_a_binding_constraint():
  """tolerance kappa^2 = R*(lambda*): GECO's lambda must settle near lambda* (from lambda_0 = 1)
  and the constraint must hold. Slack: the expected error may exceed kappa^2 by 3 % and C_ma
  (a noisy 100-step average of batch means) end within 3 % of kappa^2 above 0."""
  kappa2 = optimal_recon(LAMBDA_STAR)
  params, s, lam_traj, _ = _train_toy(kappa2, steps=4000)
  lam_end = float(s.lagrange[0])
  lam_tail = float(np.exp(np.mean(np.log(lam_traj[-500:]))))
  recon = _expected_recon(params)
  print(
    f"lambda* {LAMBDA_STAR} learned {lam_end:.3f} (tail {lam_tail:.3f}); kappa^2 {kappa2:.4f} "
    f"E recon {recon:.4f}; C_ma {float(s.c_ma[0]):.5f}; max lambda {lam_traj.max():.3f}"
  )
  assert abs(math.log(lam_end / LAMBDA_STAR)) < math.log(1.2)
  assert abs(math.log(lam_tail / LAMBDA_STAR)) < math.log(1.2)
  assert recon <= kappa2 * 1.03
  assert float(s.c_ma[0]) <= 0.03 * kappa2
  # the collapsed dimension (s = 0.25 < 1/sqrt(2 lambda*)) carries no information
  assert abs(float(params["w"][2] * params["a"][2])) < 0.1


def test_geco_slack_constraint_lowers_lambda():
  """tolerance above even the collapsed model's error sum s^2: the constraint never binds, C_ma
  ends negative and lambda falls, to the clamp's floor."""
  tol = float(np.sum(S**2)) + 1.0
  params, s, lam_traj, cma_traj = _train_toy(tol, steps=1500, log_lambda_clamp=(-6.0, 6.0))
  print(
    f"slack: lambda {float(s.lagrange[0]):.3g}, C_ma {float(s.c_ma[0]):.4f}, "
    f"E recon {_expected_recon(params):.4f}"
  )
  assert float(s.c_ma[0]) <= 0.0
  assert np.all(cma_traj <= 0.0)
  assert float(s.lagrange[0]) < 1.0
  np.testing.assert_allclose(s.lagrange[0], math.exp(-6.0), rtol=1e-5)
  assert np.all(np.diff(np.log(lam_traj)) <= 1e-7)


# ------------------------------------------------------------------------------------------
# 3. The registry


def _cfg(constraints, **kw):
  geco = dict(
    constraints=constraints,
    alpha=0.99,
    nu=0.01,
    lambda_init=1.0,
    log_lambda_min=-10.0,
    log_lambda_max=10.0,
  )
  geco.update(kw)
  return ConfigDict({"objective": {"name": "geco", "geco": geco}, "train": {"num_steps": 100}})


def test_registry_builds_geco():
  assert "geco" in base.names()
  obj = base.make("geco", _cfg("postcode<=0.5, (lat,long)<=0.1"), None)
  assert obj.name == "geco"
  st = obj.init(jax.random.key(0))["geco"]
  chex.assert_shape([st.lagrange, st.c_ma], (2,))
  np.testing.assert_allclose(st.lagrange, [1.0, 1.0])
  bsz = 4
  t = _terms(
    {"postcode": jnp.full((bsz,), 0.7), "(lat,long)": jnp.full((bsz,), 0.05)}, jnp.zeros((bsz,))
  )
  _, m = obj.loss(obj.init(jax.random.key(0)), t, step=0, level=base.Level())
  np.testing.assert_allclose(
    [m["geco/c/postcode"], m["geco/c/(lat,long)"]], [0.2, -0.05], rtol=1e-5
  )
  obj = base.make("geco", _cfg("loss<=0.2"), None)
  assert [c.field for c in geco_lib.parse_constraints("loss<=0.2")] == ["loss"]


@pytest.mark.parametrize(
  "spec, item",
  [
    ("postcode<0.5", "postcode<0.5"),
    ("postcode<=0.5,city<=abc", "city<=abc"),
    ("<=0.5", "<=0.5"),
    ("a<=0.1,,b<=0.2", "''"),
    ("a<=0.1,(lat,long<=0.1", "(lat,long<=0.1"),
    ("a<=0.1,a<=0.2", "a<=0.2"),
    ("a<=0.1<=0.2", "a<=0.1<=0.2"),
    ("a<=nan", "a<=nan"),
  ],
)
def test_malformed_constraints_name_the_item(spec, item):
  with pytest.raises(ValueError, match=re.escape(item)):
    base.make("geco", _cfg(spec), None)


def test_bad_hyperparameters():
  with pytest.raises(ValueError, match="lambda_init"):
    base.make("geco", _cfg("a<=1", lambda_init=1e-9), None)
  with pytest.raises(ValueError, match="alpha"):
    geco_lib.geco([geco_lib.Constraint("a", "a", 1.0)], alpha=1.0)
  with pytest.raises(ValueError, match="at least one"):
    geco_lib.geco([])
