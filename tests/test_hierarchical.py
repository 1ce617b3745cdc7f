"""LVAE, LVAE+ and BIVA (models/hierarchical.py, paper 002): the dependencies of every
conditional of p and q are exactly the paper's (jax.jacobian on tiny models, so that a variant
built with another variant's stages fails), shapes, the KL estimators against scipy, sampling,
dropout, and training steps through the core's trainer."""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
import scipy.special
import scipy.stats

from alala_jax import config as base_config
from alala_jax import objectives
from alala_jax.data import images
from alala_jax.models import base
from alala_jax.models.hierarchical import (
  VARIANTS,
  HierarchicalConfig,
  HierarchicalPosterior,
  HierarchicalVAE,
  config_from_model_config,
)
from alala_jax.nn import hierarchical as hnn
from alala_jax.train import state as state_lib
from alala_jax.train.trainer import Trainer

P, DIMS, H, M, B = 16, (4, 3, 2), 6, 2, 3  # distinct latent sizes; L = 3 (a skip over 2 layers)
L = len(DIMS)
N_MC = 2000  # samples of the Monte Carlo check of the analytic KL
# parameter groups by top-level name prefix: the generative blocks and their z inputs (the
# deterministic top-down path), p's Gaussian heads, p's output layer, the inference network
PARAM_GROUPS = ("p_block", "p_in", "p_head", "p_bu_head", "p_td_head", "p_out", "q_")


def _model(variant, **kw):
  cfg = dict(num_pixels=P, variant=variant, latent_dims=DIMS, hidden=H, block_layers=M)
  cfg.update(kw)
  return HierarchicalVAE(HierarchicalConfig(**cfg))


def _binary(seed, n=B):
  return (np.random.default_rng(seed).random((n, P)) < 0.4).astype(np.float32)


def _slot_outputs(model, stats):
  """{slot name: [B, 2 size] (mean, log-variance)} of the slots that have a Gaussian."""
  return {
    s.name: jnp.concatenate([stats.mean[k], stats.logvar[k]], -1)
    for k, s in enumerate(model.slots)
    if stats.mean[k] is not None
  }


def _run(model, model_analytic, v, x, key):
  """Every quantity the tests of one variant read, in one compiled program: the interface's
  outputs at a posterior sample z (the one `fused_terms` draws with the same key), the
  Jacobians of p's and q's conditionals w.r.t. the latents and x, and their directional
  derivatives along each parameter group."""
  k_fused, k_prior, k_dec, k_mc = jax.random.split(key, 4)
  k_z = jax.random.split(k_fused)[0]  # fused_terms' latent key
  q, aux = model.encode(v, x)
  z = model.reparameterize(v, q, k_z)
  rec = model.recon(v, x, z, aux, key=None)
  z_prior = model.sample_latents(v, k_prior, 4)

  def p_fn(params, z):
    stats, logits = model.generate({"params": params}, z)
    return {**_slot_outputs(model, stats), "x": logits}

  def q_fn(params, x, z):
    return _slot_outputs(model, model.infer({"params": params}, x, z, given=True)[1])

  def group_tangents(params):  # directional derivatives along one parameter group each
    def along(group):
      return {
        name: jax.tree.map(lambda a, on=name.startswith(group): jnp.full_like(a, float(on)), sub)
        for name, sub in params.items()
      }

    return jax.vmap(lambda t: jax.jvp(lambda p: (q_fn(p, x, z), p_fn(p, z)), (params,), (t,))[1])(
      jax.tree.map(lambda *a: jnp.stack(a), *[along(g) for g in PARAM_GROUPS])
    )

  out = {
    "z": z,
    "eps": jax.random.normal(k_z, z.shape),
    "mean": q.mean,
    "kl": model.kl(q, z),
    "kl_analytic": model_analytic.kl(q, z),
    "recon": rec,
    "log_q": q.log_prob(z),
    "ratio": model.log_density_ratio(q, z),
    "stats": model.layer_stats(v, x, z),
    "mean_stats": model.layer_stats(v, x, q.mean),
    "z_prior": z_prior,
    "eps_prior": jax.random.normal(k_prior, z_prior.shape),
    "prior_stats": model.generate(v, z_prior)[0],
    "decoded": model.decode(v, z, k_dec),
    "fused": model.fused_terms(v, x, k_fused)[1:],
    "fused_train": model.fused_terms(v, x, k_fused, train=True)[1:],
    "recon_dropout": model.recon(v, x, z, aux, key=k_dec, train=True).nll,
    "recon_eval_with_key": model.recon(v, x, z, aux, key=k_dec, train=False).nll,
    "jac_p": jax.jacfwd(p_fn, argnums=1)(v["params"], z),  # name -> [B, out, B, D]
    "jac_q": jax.jacfwd(q_fn, argnums=(1, 2))(v["params"], x, z),  # ([B, out, B, P], [.. D])
    "by_group": group_tangents(v["params"]),  # ({slot: [G, B, out]}, {slot or 'x': [G, ..]})
  }
  # L^{>k} (Eq 3) for every k with its draws: z_{>k} = the posterior sample z above (same key),
  # z_{<=k} ancestral from the prior given them
  eps_p = jax.random.normal(jax.random.split(k_fused)[1], z.shape)
  mixed = [
    model.net.apply(v, eps_p, z, k, method=hnn.HierarchicalNet.prior_sample) for k in range(L + 1)
  ]
  out["l_above"] = [model.l_above_k(v, x, k_fused, k) for k in range(L + 1)]
  out["eps_above"] = eps_p
  out["mixed"] = mixed
  out["mixed_p"] = [model.generate(v, zk) for zk in mixed]
  if model.config.variant == "lvae":  # q(z_L | x) reads x alone: Monte Carlo of its KL row
    keys = jax.random.split(k_mc, N_MC)
    out["mc_top"] = jax.vmap(lambda k: model.kl(q, q.sample(k))[-1])(keys)
  return out


@pytest.fixture(scope="module", params=VARIANTS)
def setup(request):
  """(model, variables, x, outputs of `_run`) of one variant, weight norm off (fewer ops to
  compile; the trainer test runs the default)."""
  model = _model(request.param, weight_norm=False)
  model_a = _model(request.param, weight_norm=False, kl_estimator="analytic")
  # random parameters of the init's shapes (numpy: no compile; the trainer test runs `init`)
  rng = np.random.default_rng(0)
  v = jax.tree.map(
    lambda a: (0.5 * rng.normal(size=a.shape)).astype(np.float32),
    jax.eval_shape(model.init, jax.random.key(0), _binary(0)),
  )
  x = _binary(1)
  out = jax.jit(_run, static_argnums=(0, 1))(model, model_a, v, x, jax.random.key(1))
  to_np = lambda a: None if a is None else np.asarray(a)
  return model, v, x, jax.tree.map(to_np, out, is_leaf=lambda a: a is None)


# ------------------------------------------------------------------ the paper's graphs --


def _layers_above(names, i):
  return {n for n in names if _layer(n) > i}


def _layer(name):
  return int(name[1:].split("_")[0])


def expected_parents(variant):
  """Per slot: the latent slots its p and its q depend on (x: every q; p(x | .) under 'x'),
  from the factorisations of the module doc (Sec 2, 3.1, 4.1)."""
  if variant == "biva":
    names = [f"z{i}_{part}" for i in range(1, L) for part in ("bu", "td")] + [f"z{L}"]
  else:
    names = [f"z{i}" for i in range(1, L + 1)]
  bu = lambda below: {f"z{j}_bu" for j in range(1, below)}
  p, q = {}, {}
  for n in names:
    i = _layer(n)
    if variant == "lvae":
      p[n] = {f"z{i + 1}"} if i < L else set()  # p(z_i | z_{i+1})
      q[n] = {f"z{i + 1}"} if i < L else set()  # q(z_i | z_{i+1}, x)
    elif variant == "lvae+":
      p[n] = _layers_above(names, i)  # p(z_i | z_{>i})
      q[n] = _layers_above(names, i)  # q(z_i | z_{>i}, x)
    else:
      p[n] = _layers_above(names, i)  # p(z_i^BU | z_{>i}), p(z_i^TD | z_{>i})
      if n.endswith("_bu") or i == L:
        q[n] = bu(i)  # q(z_i^BU | x, z^BU_{<i}), q(z_L | x, z^BU_{<L})
      else:
        q[n] = bu(i) | _layers_above(names, i)  # q(z_i^TD | x, z^BU_{<i}, z_{>i})
  p["x"] = {"z1"} if variant == "lvae" else set(names)  # p(x | z_1) or p(x | z)
  return names, p, q


def _dependency_sets(model, out):
  """(p_parents, q_parents, q_reads_x, cross_example) from the Jacobians of `_run`: slot s is a
  parent of a conditional when some derivative w.r.t. s is not exactly 0."""
  jp = out["jac_p"]  # [B, out, B, D]
  jq_x = {n: j[0] for n, j in out["jac_q"].items()}  # [B, out, B, P]
  jq_z = {n: j[1] for n, j in out["jac_q"].items()}
  cols = lambda jac, s: jac[..., s.start : s.start + s.size]
  diag = lambda jac: np.stack([jac[b, :, b] for b in range(B)])  # the example's own inputs
  parents = lambda j: {s.name for s in model.slots if np.any(cols(diag(j), s) != 0)}
  p_par = {n: parents(j) for n, j in jp.items()}
  q_par = {n: parents(j) for n, j in jq_z.items()}
  q_x = {n: bool(np.all(np.any(diag(j) != 0, axis=(1, 2)))) for n, j in jq_x.items()}
  cross = any(
    np.any(j[b, :, c] != 0)
    for j in [*jp.values(), *jq_z.values(), *jq_x.values()]
    for b, c in itertools.permutations(range(B), 2)
  )
  return p_par, q_par, q_x, cross


@pytest.fixture(scope="module")
def measured(setup):
  model, _, _, out = setup
  return _dependency_sets(model, out)


def test_generative_model_dependencies_are_the_papers(setup, measured):
  model, *_ = setup
  variant = model.config.variant
  names, want_p, _ = expected_parents(variant)
  p_par, _, _, cross = measured
  assert set(p_par) == set(names[:-1]) | {"x"}  # every slot but the top has a conditional
  for n in p_par:
    assert p_par[n] == want_p[n], (variant, n, p_par[n], want_p[n])
  assert not cross  # no example reads another's latents


def test_inference_network_dependencies_are_the_papers(setup, measured):
  model, *_ = setup
  variant = model.config.variant
  names, _, want_q = expected_parents(variant)
  _, q_par, q_x, cross = measured
  assert set(q_par) == set(names)
  for n in names:
    assert q_par[n] == want_q[n], (variant, n, q_par[n], want_q[n])
  assert all(q_x.values()), q_x  # every q reads x (deterministic paths from the data)
  assert not cross


@pytest.mark.parametrize("a,b", list(itertools.permutations(VARIANTS, 2)))
def test_a_variant_built_from_anothers_stages_fails_its_structure(a, b):
  """The expected graphs differ pairwise (p's and q's alike), so the measured-graph tests above
  reject a variant built from another variant's stages (a swapped-stages port fails)."""
  _, p_a, q_a = expected_parents(a)
  _, p_b, q_b = expected_parents(b)
  assert p_a != p_b and q_a != q_b


def test_skip_path_exists_exactly_in_lvae_plus_and_biva(setup, measured):
  """LVAE has no deterministic top-down path: its generative blocks take no auxiliary input
  and p(z_1 | .) has zero gradient w.r.t. z_3; LVAE+ and BIVA feed every block but the top the
  block above's layers (App A Eq 5)."""
  model, v, _, _ = setup
  skip = model.config.variant in ("lvae+", "biva")  # the paper's, not the config's property
  assert model.config.skip == skip
  p = v["params"]
  for i in range(L):
    has_aux = ["aux" in p[f"p_block_{i}"][f"layer_{j}"] for j in range(M)]
    assert has_aux == [skip and i < L - 1] * M, (i, has_aux)
  p_par = measured[0]
  z1 = [n for n in p_par if n.startswith("z1")]
  assert z1 and all((f"z{L}" in p_par[n]) == skip for n in z1)
  assert (f"z{L}" in p_par["x"]) == skip  # p(x | z_1) vs p(x | z)


def test_parameter_sharing_between_q_and_p(setup):
  """Directional derivatives (jax.jvp) along each parameter group: the TD inference path reads
  the generative model's top-down path (theta: p_block, p_in) and BIVA's BU path and the top
  posterior do not; no q reads p's heads or output layer; p reads no inference parameter."""
  model, v, _, out = setup
  dq, dp = out["by_group"]
  reads = lambda d, group: bool(np.any(d[PARAM_GROUPS.index(group)] != 0))
  for s in model.slots:
    top_down = s.part == "td" or (s.part == "z" and s.layer < L)
    assert reads(dq[s.name], "p_block") == top_down, s.name
    assert reads(dq[s.name], "p_in") == top_down, s.name
    for group in ("p_head", "p_bu_head", "p_td_head", "p_out"):
      assert not reads(dq[s.name], group), (s.name, group)
    assert reads(dq[s.name], "q_")
  for name, d in dp.items():
    assert not reads(d, "q_") and reads(d, "p_block"), name
    assert reads(d, "p_out") == (name == "x")
  if model.config.variant == "biva":  # p(z_i^BU | .) and p(z_i^TD | .): one head each
    assert reads(dp["z1_bu"], "p_bu_head") and not reads(dp["z1_bu"], "p_td_head")
    assert reads(dp["z1_td"], "p_td_head") and not reads(dp["z1_td"], "p_bu_head")
  labels = model.partition(v["params"])
  by_prefix = lambda pre: {
    lab for name, sub in labels.items() if name.startswith(pre) for lab in jax.tree.leaves(sub)
  }
  assert by_prefix("q_") == {"encoder"} and by_prefix("p_") == {"decoder"}
  assert set(labels) == set(v["params"])


# ------------------------------------------------------------------ the interface --


def test_interface_shapes(setup):
  model, v, x, out = setup
  variant = model.config.variant
  n_rows = 2 * L - 1 if variant == "biva" else L
  d = (2 * sum(DIMS[:-1]) + DIMS[-1]) if variant == "biva" else sum(DIMS)
  assert model.latent_dim == d and len(model.kl_rows) == n_rows and model.kl_scale == 1.0
  q, aux = jax.eval_shape(model.encode, v, x)
  assert aux is None and isinstance(q, HierarchicalPosterior)
  # the mean path is computed on access; posteriors stacked over levels give one per level
  chex.assert_shape(jax.eval_shape(lambda v, x: model.encode(v, x)[0].mean, v, x), (B, d))
  stacked = lambda v, x: jax.tree.map(lambda a: jnp.stack([a, a]), model.encode(v, x)[0]).mean
  chex.assert_shape(jax.eval_shape(stacked, v, x), (2, B, d))
  chex.assert_shape([out["z"], out["mean"], out["z_prior"][:3]], (B, d))
  chex.assert_shape([out["kl"], out["kl_analytic"]], (n_rows, B))
  r = out["recon"]
  chex.assert_shape([r.nll, r.loss, r.fields["pixels"], out["log_q"], out["ratio"]], (B,))
  log_q_k = lambda v, x, z: model.encode(v, x)[0].log_prob(z)  # K samples: [K, B, D] -> [K, B]
  chex.assert_shape(jax.eval_shape(log_q_k, v, x, jnp.zeros((2, B, d))), (2, B))
  chex.assert_shape(out["decoded"], (B, P))
  assert set(np.unique(out["decoded"])) <= {0.0, 1.0}
  chex.assert_tree_all_finite((out["kl"], out["kl_analytic"], r.nll, out["log_q"]))
  np.testing.assert_array_equal(r.loss, r.nll)
  if variant == "biva":
    assert model.kl_rows == ("z1_bu", "z1_td", "z2_bu", "z2_td", "z3")
    chex.assert_shape(v["params"]["q_bu_head_0"]["mean"]["kernel"], (H, DIMS[0]))
    chex.assert_shape(v["params"]["p_in_0"]["kernel"], (2 * DIMS[0], H))  # (z_1^TD, z_1^BU)
  else:
    assert model.kl_rows == ("z1", "z2", "z3")
  chex.assert_shape(v["params"]["p_out"]["kernel"], (H, P))


def test_sampling_is_the_teacher_forced_q(setup):
  """z = mean + sigma * eps for every slot, with the q Gaussians of the teacher-forced pass at
  z itself (the sampling pass and the pass `kl` uses agree); the mean path likewise."""
  model, _, _, out = setup
  z, eps, stats = out["z"], out["eps"], out["stats"]
  for s in model.slots:
    st, cut = stats[s.name], lambda a: a[:, s.start : s.start + s.size]
    got = (cut(z) - st["q_mean"]) / jnp.exp(0.5 * st["q_logvar"])
    np.testing.assert_allclose(got, cut(eps), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(cut(out["mean"]), out["mean_stats"][s.name]["q_mean"], atol=1e-6)


def test_prior_sampling_is_ancestral(setup):
  model, _, _, out = setup
  z, eps, p = out["z_prior"], out["eps_prior"], out["prior_stats"]
  for k, s in enumerate(model.slots):
    cut = lambda a: np.asarray(a[:, s.start : s.start + s.size])
    if p.mean[k] is None:  # z_L ~ N(0, I)
      np.testing.assert_allclose(cut(z), cut(eps), rtol=1e-6)
    else:
      want = p.mean[k] + jnp.exp(0.5 * p.logvar[k]) * cut(eps)
      np.testing.assert_allclose(cut(z), want, rtol=1e-4, atol=1e-5)


def test_l_above_k_against_scipy(setup):
  """Paper 002 Eq 3 for every k: the slots above k are the posterior sample, those at or below
  k are ancestral draws from p given them; the value is log p(x | z) + log p(z_>k) -
  log q(z_>k | x) from scipy's normal and Bernoulli log-densities (q's Gaussians at the
  posterior sample: for BIVA's BU slots they read the discarded z^BU_<=k); k = 0 is the
  one-sample ELBO of the same noise (fused_terms)."""
  model, _, x, out = setup
  z_q, q_stats, eps = out["z"], out["stats"], out["eps_above"]
  for k in range(L + 1):
    zk, (p, logits) = out["mixed"][k], out["mixed_p"][k]
    want = scipy.stats.bernoulli.logpmf(x, scipy.special.expit(logits.astype(np.float64))).sum(-1)
    for j, s in enumerate(model.slots):
      cut = lambda a: np.asarray(a[:, s.start : s.start + s.size], np.float64)
      pm, plv = (0.0, 0.0) if p.mean[j] is None else (p.mean[j], p.logvar[j])
      if s.layer > k:
        np.testing.assert_array_equal(cut(zk), cut(z_q))
        qs = q_stats[s.name]
        want += scipy.stats.norm.logpdf(cut(zk), pm, np.exp(0.5 * plv)).sum(-1)
        want -= scipy.stats.norm.logpdf(cut(zk), qs["q_mean"], np.exp(0.5 * qs["q_logvar"])).sum(-1)
      else:
        np.testing.assert_allclose(cut(zk), pm + np.exp(0.5 * plv) * cut(eps), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["l_above"][k], want, rtol=1e-4, atol=1e-3)
  z, rec, kl = out["fused"]
  np.testing.assert_allclose(out["l_above"][0], -(rec.nll + kl.sum(0)), rtol=1e-5, atol=1e-4)
  with pytest.raises(ValueError, match="k must be in"):
    model.l_above_k({}, x, jax.random.key(0), L + 1)


def test_one_sample_kl_against_scipy(setup):
  """Row s of kl = log q(z_s | .) - log p(z_s | .) at the sampled z, with q's and p's
  Gaussians from the passes; scipy's normal log-density in float64 (the top's p is N(0, I));
  the rows sum to log q(z | x) - log p(z), and softplus keeps every log-variance >= 0."""
  model, _, _, out = setup
  kl = np.asarray(out["kl"])
  zz = np.asarray(out["z"], np.float64)
  for k, s in enumerate(model.slots):
    st = {
      n: None if a is None else np.asarray(a, np.float64) for n, a in out["stats"][s.name].items()
    }
    zs = zz[:, s.start : s.start + s.size]
    log_q = scipy.stats.norm.logpdf(zs, st["q_mean"], np.exp(0.5 * st["q_logvar"])).sum(-1)
    if st["p_mean"] is None:
      log_p = scipy.stats.norm.logpdf(zs).sum(-1)
    else:
      log_p = scipy.stats.norm.logpdf(zs, st["p_mean"], np.exp(0.5 * st["p_logvar"])).sum(-1)
      assert np.all(st["p_logvar"] >= 0)
    assert np.all(st["q_logvar"] >= 0)
    np.testing.assert_allclose(kl[k], log_q - log_p, rtol=1e-4, atol=1e-4)
  log_p_all = np.asarray(out["ratio"]) + np.asarray(out["log_q"])  # ratio = log p - log q
  np.testing.assert_allclose(kl.sum(0), np.asarray(out["log_q"]) - log_p_all, rtol=1e-4)


def test_analytic_kl_estimator(setup):
  """'analytic': the closed form of KL(q_s || p_s) (float64; one dimension also against
  scipy's numerical integral) where it is unbiased; BIVA's BU rows keep log q - log p; the
  one-sample rows of LVAE's top layer average to its closed form."""
  model, _, _, out = setup
  ks, ka = out["kl"], out["kl_analytic"]
  for k, s in enumerate(model.slots):
    if s.part == "bu":
      np.testing.assert_array_equal(ka[k], ks[k])
      continue
    st = {n: None if a is None else a.astype(np.float64) for n, a in out["stats"][s.name].items()}
    mq, sq = st["q_mean"], np.exp(0.5 * st["q_logvar"])
    mp, sp = (0.0, 1.0) if st["p_mean"] is None else (st["p_mean"], np.exp(0.5 * st["p_logvar"]))
    closed = np.log(sp / sq) + (sq**2 + (mq - mp) ** 2) / (2 * np.square(sp)) - 0.5  # [B, size]
    np.testing.assert_allclose(ka[k], closed.sum(-1), rtol=1e-4, atol=1e-5)
    m1, s1 = mq[0, 0], sq[0, 0]
    m2, s2 = (0.0, 1.0) if st["p_mean"] is None else (mp[0, 0], sp[0, 0])
    f = lambda t: (
      scipy.stats.norm.pdf(t, m1, s1)
      * (scipy.stats.norm.logpdf(t, m1, s1) - scipy.stats.norm.logpdf(t, m2, s2))
    )
    one_dim = scipy.integrate.quad(f, m1 - 12 * s1, m1 + 12 * s1, epsabs=1e-11)[0]
    np.testing.assert_allclose(closed[0, 0], one_dim, rtol=1e-5, atol=1e-8)
  if "mc_top" in out:
    rows = out["mc_top"]  # [N_MC, B]
    se = rows.std(0) / np.sqrt(N_MC)
    assert np.all(np.abs(rows.mean(0) - ka[-1]) < 5 * se + 1e-4), (rows.mean(0), ka[-1])


def test_fused_terms_equal_the_interface_and_dropout_acts_in_training(setup):
  """fused_terms without train = encode / sample / recon / kl with the same key; with train
  the references' dropout (0.5) changes the pass; recon drops out only when train."""
  _, _, _, out = setup
  z, rec, kl = out["fused"]
  np.testing.assert_allclose(z, out["z"], rtol=1e-6)
  np.testing.assert_allclose(kl, out["kl"], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(rec.nll, out["recon"].nll, rtol=1e-6)
  zt, rect, klt = out["fused_train"]
  assert not np.allclose(zt, z) and not np.allclose(rect.nll, rec.nll)
  chex.assert_tree_all_finite((zt, rect.nll, klt))
  assert not np.allclose(out["recon_dropout"], out["recon"].nll)
  np.testing.assert_array_equal(out["recon_eval_with_key"], out["recon"].nll)


def test_config_validation_and_from_model_config():
  assert HierarchicalConfig(num_pixels=784).latent_dims == (48, 40, 32, 24, 16, 8)
  c = HierarchicalConfig(num_pixels=784)
  assert (c.variant, c.hidden, c.block_layers, c.activation) == ("biva", 64, 3, "elu")
  assert (c.q_dropout, c.p_dropout, c.softplus_logvar, c.kl_estimator) == (0.5, 0.5, True, "sample")
  with pytest.raises(ValueError, match="variant"):
    HierarchicalConfig(num_pixels=P, variant="ladder")
  with pytest.raises(ValueError, match="L >= 2"):
    HierarchicalConfig(num_pixels=P, latent_dims=(4,))
  with pytest.raises(ValueError, match="q_dropout"):
    HierarchicalConfig(num_pixels=P, q_dropout=1.0)
  with pytest.raises(ValueError, match="kl_estimator"):
    HierarchicalConfig(num_pixels=P, kl_estimator="exact")
  mc = base_config.base_config().model
  mc.variant, mc.latent_dims, mc.hidden = "lvae+", [5, 4], 9
  got = config_from_model_config(mc, P)
  assert (got.variant, got.latent_dims, got.hidden, got.num_pixels) == ("lvae+", (5, 4), 9, P)
  a, b = _model("biva", latent_dims=[4, 3, 2]), _model("biva")
  assert a == b and hash(a) == hash(b) and a != _model("lvae")
  with pytest.raises(ValueError, match=r"\[B, 16\]"):
    a.encode({}, np.zeros((2, P + 1)))
  with pytest.raises(NotImplementedError):
    a.prior_moments({})


@pytest.mark.parametrize("weight_norm", [True, False], ids=["weight_norm", "plain"])
@pytest.mark.parametrize("init_scale", [0.01, 1.0])
def test_linear_data_dependent_init(weight_norm, init_scale):
  """At init on a batch every unit's output has zero mean and standard deviation init_scale
  (Salimans & Kingma; the TF reference's init pass uses 0.01); one row (init_levels' example)
  keeps w = v and bias 0."""
  x = jnp.asarray(np.random.default_rng(0).normal(3.0, 5.0, (64, 5)), jnp.float32)
  layer = hnn.Linear(4, weight_norm=weight_norm, init_scale=init_scale)
  v = layer.init(jax.random.key(0), x)
  y = np.asarray(layer.apply(v, x), np.float64)
  np.testing.assert_allclose(y.mean(0), 0.0, atol=1e-4 * init_scale)
  np.testing.assert_allclose(y.std(0), init_scale, rtol=1e-3)
  assert set(v["params"]) == ({"kernel", "bias", "scale"} if weight_norm else {"kernel", "bias"})
  one = layer.init(jax.random.key(0), x[:1])["params"]
  np.testing.assert_array_equal(one["bias"], 0.0)
  if weight_norm:
    np.testing.assert_allclose(one["scale"], np.linalg.norm(one["kernel"], axis=0), rtol=1e-6)


# --------------------------------------------------------------- through the trainer --


def test_trainer_steps_with_free_bits_lower_the_loss():
  """The core's Trainer (make_setup, create_state, the jitted train step) trains BIVA with free
  bits (lambda per KL row), Adamax and EMA parameters: finite losses that fall on average over
  40 steps of a tiny synthetic set; the step's aux carries z (and not the posterior means,
  which would cost the hierarchy an extra inference pass)."""
  data = images.synthetic_images(n=240, size=4, seed=0)
  model = _model("biva", latent_dims=(3, 2), hidden=8, block_layers=1)  # weight norm on
  c = base_config.base_config()
  c.objective.name = "free_bits"
  c.objective.free_bits = 0.1
  c.objective.beta_schedule, c.objective.beta_end = "constant", 1.0
  c.optim.name, c.optim.learning_rate, c.optim.decay_rate, c.optim.clip_norm = "adamax", 1e-2, 1, 0
  c.optim.ema_decay = 0.9995
  c.train.batch_size, c.train.num_steps = 24, 40
  trainer = Trainer(state_lib.make_setup(model, objectives.build(c, model), c))
  train = np.asarray(data.train, np.float32)
  state = trainer.create_state(0, train[:24])
  assert "scale" in state.params["p_out"]  # weight normalisation
  step = trainer.phase_step("train")
  losses = []
  for i in range(40):
    batch = train[(i * 24) % (len(train) - 24) :][:24]
    state, metrics, aux = step(state, batch)
    losses.append(float(metrics["loss"]))
  assert np.all(np.isfinite(losses)) and int(state.bad_step) == -1
  chex.assert_shape(aux["z"][0], (24, model.latent_dim))
  assert "mu" not in aux  # the Trainer's loops skip the mean path's extra inference pass
  assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.5, losses
  assert state.ema_params is not None
  labels = jax.tree.leaves(model.partition(state.params))
  assert set(labels) == {base.ENCODER, base.DECODER}


def test_core_step_uses_the_fused_pass_so_q_gets_dropout():
  """The core's `level_terms` calls a model's `fused_terms` (no refinement, sampled z): in
  training q's dropout changes the KL rows and z (the sequence encode / reparameterize / kl has
  no train flag, so it could not), and in evaluation the terms are the sequence's."""
  from alala_jax.train import step as step_lib

  model = _model("biva", latent_dims=(3, 2), hidden=8, block_layers=1, p_dropout=0.0)
  x = jnp.asarray(_binary(5, n=6))
  v = model.init(jax.random.key(0), x)
  c = base_config.base_config()
  c.objective.name = "free_bits"
  setup_ = state_lib.make_setup(model, objectives.build(c, model), c)
  key = jax.random.key(1)
  terms = {
    train: jax.jit(
      lambda v, x, k, train=train: step_lib.level_terms(setup_, v, x, None, k, 0, train=train)[0]
    )(v, x, key)
    for train in (False, True)
  }
  post, aux = model.encode(v, x)
  z = model.reparameterize(v, post, jax.random.split(key)[0])
  chex.assert_trees_all_close(
    (terms[False].z, terms[False].kl, terms[False].recon.nll),
    (z, model.kl(post, z), model.recon(v, x, z, aux, key=None).nll),
    rtol=1e-5,
    atol=1e-5,
  )
  _, zt, rect, klt = model.fused_terms(v, x, key, train=True)
  chex.assert_trees_all_close((terms[True].z, terms[True].kl), (zt, klt), rtol=1e-5, atol=1e-5)
  assert not np.allclose(terms[True].kl, terms[False].kl)
  assert not np.allclose(terms[True].z, terms[False].z)


def test_iw_nll_uses_the_hierarchy_density_ratio(setup):
  """`metrics.likelihood.iw_nll` on a hierarchy (its `log_density_ratio`, not the N(0, I)
  default) against an explicit log-mean-exp of p(x|z_j) p(z_j) / q(z_j|x) over the same
  samples, and k = 1 equals the one-sample bound in expectation's place: -nll - sum(kl)."""
  from alala_jax.metrics import likelihood

  model, v, x, _ = setup
  key = jax.random.key(3)
  got = np.asarray(likelihood.iw_nll(model, v, x, key, num_samples=6, chunk=4))
  post, aux = model.encode(v, x)
  lw = np.asarray(likelihood.log_weights(model, v, x, post, aux, key, jnp.arange(6)))
  want = -(scipy.special.logsumexp(lw, 0) - np.log(6))
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
  k_z, k_r = likelihood._sample_keys(key)
  z = model.reparameterize(v, post, jax.random.fold_in(k_z, 0))
  nll = model.recon(v, x, z, aux, key=jax.random.fold_in(k_r, 0)).nll
  one = -(np.asarray(nll) + np.asarray(model.kl(post, z)).sum(0))  # sample KL: log p - log q
  np.testing.assert_allclose(lw[0], one, rtol=1e-4, atol=1e-3)


def test_layer_report_per_slot_kl_and_active_units(setup):
  """KL rows and active units per slot against the model's own terms computed explicitly; the
  means do not depend on the batching, so neither do the active units."""
  from alala_jax.metrics import hierarchy
  from alala_jax.metrics.latent import au_from_means

  model, v, x, _ = setup
  key = jax.random.key(4)
  rep = hierarchy.layer_report(model, v, x, key, batch_size=x.shape[0])
  post, _ = model.encode(v, x)
  kl = np.asarray(model.kl(post, model.reparameterize(v, post, jax.random.fold_in(key, 0))))
  means = np.asarray(post.mean)
  assert [k[3:] for k in rep if k.startswith("kl/")] == list(model.kl_rows)
  for s, row in zip(model.slots, kl):
    np.testing.assert_allclose(rep[f"kl/{s.name}"], row.mean(), rtol=1e-5)
    au = au_from_means(means[:, s.start : s.start + s.size])["au"]
    assert rep[f"au/{s.name}"] == au and rep[f"units/{s.name}"] == s.size
  halves = hierarchy.layer_report(model, v, x, key, batch_size=x.shape[0] // 2)
  assert {k: halves[k] for k in halves if k.startswith("au/")} == {
    k: rep[k] for k in rep if k.startswith("au/")
  }
  lines = hierarchy.format_layers({f"test/{k}": val for k, val in rep.items()})
  assert len(lines) == len(model.slots) and lines[0].strip().startswith(model.slots[-1].name)
  with pytest.raises(ValueError, match="at least 2"):
    hierarchy.layer_report(model, v, x[:1], key)


def test_data_dependent_init_survives_a_checkpoint_restore(tmp_path):
  """The data-dependent initialisation lives in the parameters (scale and bias), so a restored
  state is the saved one, not a fresh init on the restoring process's batch (the PyTorch port
  kept an 'initialised' flag outside its state dict and re-initialised after loading)."""
  from alala_jax.train import loop

  model = _model("biva", latent_dims=(3, 2), hidden=8, block_layers=1)
  c = base_config.base_config()
  c.objective.name = "free_bits"
  trainer = Trainer(state_lib.make_setup(model, objectives.build(c, model), c))
  saved = trainer.create_state(0, _binary(7, n=8))
  other = trainer.create_state(0, _binary(8, n=8))  # the same key, another init batch
  assert not np.allclose(saved.params["p_out"]["scale"], other.params["p_out"]["scale"])
  mngr = loop.checkpoint_manager(str(tmp_path), 2)
  mngr.save(0, args=ocp.args.StandardSave(saved))
  mngr.wait_until_finished()
  restored = loop.restore_latest(loop.checkpoint_manager(str(tmp_path), 2), other)
  chex.assert_trees_all_equal(restored.params, saved.params)
  chex.assert_trees_all_equal(
    model.logits(restored.variables(), jnp.ones((4, model.latent_dim))),
    model.logits(saved.variables(), jnp.ones((4, model.latent_dim))),
  )
