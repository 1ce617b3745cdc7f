"""Multiscale VAE (paper 000 Sec 6, App J, K): level spacings, the registered loss variants
against explicit formulas, the level axis (`Levels`, collection splitting), and the vmapped
level loss of `train.step.loss_and_grads` against an explicit Python loop over levels."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from alala_jax import config as base_config
from alala_jax import objectives
from alala_jax.models import record
from alala_jax.models.base import Recon
from alala_jax.objectives import multiscale
from alala_jax.objectives.base import Level, Terms
from alala_jax.train import state as state_lib
from alala_jax.train import step as step_lib
from alala_jax.train.state import Salt
from tests.conftest import B_LEVEL as B
from tests.conftest import D_LEVEL as D
from tests.conftest import N_LEVELS


def test_beta_spacings_match_the_paper():
  np.testing.assert_allclose(multiscale.beta_multipliers(32), (np.arange(32) + 1) / 32)
  g = multiscale.beta_multipliers(32, "geometric", 0.9)  # App J: 0.9^31 ... 0.9, 1
  np.testing.assert_allclose(g[[0, 1, 30, 31]], [0.9**31, 0.9**30, 0.9, 1.0], rtol=1e-6)
  with pytest.raises(ValueError, match="spacing"):
    multiscale.beta_multipliers(4, "cubic")
  with pytest.raises(ValueError, match="ratio"):
    multiscale.beta_multipliers(4, "geometric", 1.5)


def test_p_sampled_spacings_match_app_k():
  lin = multiscale.level_p_sampled(32, 0.2, 1.0, "linear")  # Table 13: 0.225, 0.25, ..., 1
  np.testing.assert_allclose(lin[[0, 1, 31]], [0.225, 0.25, 1.0], rtol=1e-6)
  geo = multiscale.level_p_sampled(32, 0.2, 1.0, "geometric")  # Table 14: 5^(-31/32) ... 1
  np.testing.assert_allclose(geo[[0, 1, 31]], [5 ** (-31 / 32), 5 ** (-30 / 32), 1.0], rtol=1e-6)
  np.testing.assert_allclose(multiscale.level_p_sampled(4, 0.1, 0.2), [0.2] * 4)
  with pytest.raises(ValueError, match="must lie in"):
    multiscale.level_p_sampled(4, 0.5, 1.5, "linear")
  with pytest.raises(ValueError, match="p_sampled spacing"):
    multiscale.level_p_sampled(4, 0.1, 0.2, "cubic")


def test_capacities_match_app_j():
  c = multiscale.capacities(32, 10.0, 0.5)  # C_0 = 10, C_1 = 10.5, ... 25.5
  np.testing.assert_allclose(c[[0, 1, 2, 31]], [10.0, 10.5, 11.0, 25.5])


# ------------------------------------------------------------------------------------------
# The registered loss variants on hand-built terms


class _Model:
  """What `objectives.make` reads of a model."""

  latent_dim = 8
  kl_scale = 1.0 / 8


def _config(name="beta", beta=0.5, **objective):
  c = base_config.base_config()
  c.objective.name = name
  c.objective.beta_schedule, c.objective.beta_end = "constant", beta
  c.train.num_steps = 100
  c.objective.update(objective)
  return c


def _terms(recon, kl, kl_scale=1.0 / 8):
  recon, kl = jnp.asarray(recon, jnp.float32), jnp.asarray(kl, jnp.float32)
  b = recon.shape[0]
  return Terms(
    recon=Recon(nll=recon, loss=recon, fields={}),
    kl=kl,
    z=jnp.zeros((b, 2)),
    posterior=None,
    row_mask=None,
    kl_scale=kl_scale,
  )


def _per_example(obj, recon, kl, level):
  """The objective's loss of each row alone (the batch loss is their mean)."""
  kl = np.asarray(kl)
  rows = [
    obj.loss({}, _terms(recon[i : i + 1], kl[..., i : i + 1]), step=3, level=level)[0]
    for i in range(len(recon))
  ]
  return np.asarray(rows)


RECON, KL = np.array([1.0, 2.0, 0.5]), np.array([4.0, 20.0, 11.0])


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_beta_loss_is_recon_plus_beta_kl_per_latent_dim(scale):
  obj = objectives.make("beta", _config(beta=0.5), _Model())
  level = Level(beta_scale=scale)
  want = RECON + 0.5 * scale * KL / 8
  np.testing.assert_allclose(_per_example(obj, RECON, KL, level), want, rtol=1e-6)
  loss, m = obj.loss({}, _terms(RECON, KL), step=3, level=level)
  np.testing.assert_allclose(float(loss), want.mean(), rtol=1e-6)
  assert float(m["beta"]) == 0.5  # the schedule's beta_max, not beta_i
  # a hierarchy of stochastic layers [L, B]: the KL is summed over layers
  kl2 = np.stack([KL, 0.5 * KL])
  np.testing.assert_allclose(
    float(obj.loss({}, _terms(RECON, kl2), step=3, level=level)[0]),
    np.mean(RECON + 0.5 * scale * 1.5 * KL / 8),
    rtol=1e-6,
  )


def test_inverted_loss_divides_the_reconstruction_by_beta_i():
  obj = objectives.make("inverted", _config("inverted", beta=0.5), _Model())
  for scale in (1.0, 0.25):
    np.testing.assert_allclose(
      _per_example(obj, RECON, KL, Level(beta_scale=scale)),
      RECON / (0.5 * scale) + KL / 8,
      rtol=1e-6,
    )
  c = _config("inverted", beta=0.5)
  c.objective.beta_schedule, c.objective.beta_start = "linear", 0.0  # beta passes through 0
  with pytest.raises(ValueError, match="inverted"):
    objectives.make("inverted", c, _Model())


def test_capacity_loss_penalises_kl_above_c_i():
  obj = objectives.make("capacity", _config("capacity", multiscale={"gamma": 128.0}), _Model())
  for cap in (10.0, 12.0):
    want = RECON + 128.0 * np.maximum(KL - cap, 0.0) / 8
    np.testing.assert_allclose(_per_example(obj, RECON, KL, Level(capacity=cap)), want, rtol=1e-6)
  # gamma is the config's, beta_i does not enter
  np.testing.assert_allclose(
    _per_example(obj, RECON, KL, Level(beta_scale=3.0, capacity=10.0)),
    [1.0, 2.0 + 128.0 * 10.0 / 8, 0.5 + 128.0 / 8],
    rtol=1e-6,
  )
  obj2 = objectives.make("capacity", _config("capacity", multiscale={"gamma": 2.0}), _Model())
  np.testing.assert_allclose(
    _per_example(obj2, RECON, KL, Level(capacity=10.0)),
    RECON + 2.0 * np.maximum(KL - 10.0, 0.0) / 8,
    rtol=1e-6,
  )


def test_free_bits_clamps_each_layer_from_below():
  obj = objectives.make("free_bits", _config("free_bits", beta=0.5, free_bits=5.0), _Model())
  kl = np.array([[4.0, 20.0, 11.0], [6.0, 1.0, 0.0]])  # [L, B]
  want = RECON + 0.5 * 2.0 * np.maximum(kl, 5.0).sum(0) / 8
  np.testing.assert_allclose(_per_example(obj, RECON, kl, Level(beta_scale=2.0)), want, rtol=1e-6)
  np.testing.assert_allclose(
    _per_example(obj, RECON, KL, Level()),  # one layer [B]
    RECON + 0.5 * np.maximum(KL, 5.0) / 8,
    rtol=1e-6,
  )
  with pytest.raises(ValueError, match="free_bits"):
    objectives.make("free_bits", _config("free_bits", free_bits=-1.0), _Model())


def test_free_bits_switch_off_for_the_lambda_0_fine_tune():
  """free_bits_until = 0.6 of 100 steps: lambda until step 59, 0 from step 60 (the plain
  beta-ELBO), as paper 002's fine-tune."""
  obj = objectives.make(
    "free_bits", _config("free_bits", beta=1.0, free_bits=5.0, free_bits_until=0.6), _Model()
  )
  kl = jnp.asarray([[4.0, 20.0, 11.0], [6.0, 1.0, 0.0]])
  terms = _terms(RECON, kl)
  for step, lam in ((0, 5.0), (59, 5.0), (60, 0.0), (99, 0.0)):
    loss, metrics = obj.loss({}, terms, step=jnp.int32(step), level=Level())
    want = np.mean(RECON + np.maximum(np.asarray(kl), lam).sum(0) / 8)
    np.testing.assert_allclose(float(loss), want, rtol=1e-6)
    assert float(metrics["free_bits"]) == lam
  with pytest.raises(ValueError, match="free_bits_until"):
    objectives.make("free_bits", _config("free_bits", free_bits_until=1.5), _Model())


def test_registry():
  assert {"beta", "inverted", "capacity", "free_bits", "wae", "aae"} <= set(objectives.names())
  with pytest.raises(ValueError, match="unknown objective 'vae'"):
    objectives.make("vae", _config(), _Model())
  for name in ("beta", "inverted", "capacity", "free_bits"):
    obj = objectives.build(_config(name), _Model())
    assert obj.name == name and not obj.deterministic and obj.init(jax.random.key(0)) == {}


# ------------------------------------------------------------------------------------------
# The level axis


def _ms_config(**kw):
  c = ml_collections.ConfigDict(
    {
      "n_levels": 4,
      "spacing": "linear",
      "ratio": 0.9,
      "gamma": 128.0,
      "c_min": 10.0,
      "c_inc": 0.5,
      "shared_batch": False,
      "gen_level": 0,
    }
  )
  c.update(kw)
  return c


def test_levels_split_and_validation():
  lv = multiscale.Levels.from_config(_ms_config())
  assert lv.n == 4 and lv.gen_level == 0
  np.testing.assert_allclose(lv.multipliers, [0.25, 0.5, 0.75, 1.0])
  np.testing.assert_allclose(lv.capacities, [10.0, 10.5, 11.0, 11.5])
  np.testing.assert_allclose(lv.p_sampled, [0.2] * 4)  # augmented off: unused default
  batch = {"a": np.arange(8 * 3).reshape(8, 3)}
  chex.assert_shape(lv.split(batch)["a"], (4, 2, 3))
  np.testing.assert_array_equal(lv.split(batch)["a"][1], batch["a"][2:4])  # own rows per level
  shared = multiscale.Levels.from_config(_ms_config(shared_batch=True)).split(batch)["a"]
  chex.assert_shape(shared, (4, 8, 3))
  np.testing.assert_array_equal(shared[3], batch["a"])
  np.testing.assert_allclose(lv.betas(1.28), [0.32, 0.64, 0.96, 1.28], rtol=1e-6)
  with pytest.raises(ValueError, match="does not split evenly"):
    lv.per_level_batch(10)
  with pytest.raises(ValueError, match="does not split evenly over 4 levels"):
    lv.split({"a": np.zeros((10, 3))})
  with pytest.raises(ValueError, match="gen_level"):
    multiscale.Levels.from_config(_ms_config(gen_level=4))
  with pytest.raises(ValueError, match="unknown beta spacing"):
    multiscale.Levels.from_config(_ms_config(spacing="cubic"))
  with pytest.raises(ValueError, match="n_levels must be >= 1"):
    multiscale.Levels.from_config(_ms_config(n_levels=0))
  assert multiscale.Levels.from_config(_ms_config(n_levels=1)).n == 1
  none = multiscale.Levels.from_config(None)
  assert (none.n, none.multipliers, none.capacities) == (1, (1.0,), (0.0,))
  geo = multiscale.Levels.from_config(_ms_config(spacing="geometric", ratio=0.8))
  np.testing.assert_allclose(geo.multipliers, [0.8**3, 0.8**2, 0.8, 1.0], rtol=1e-6)
  args = lv.level_args()
  chex.assert_shape([args.beta_scale, args.capacity, args.p_sampled], (4,))
  np.testing.assert_allclose(args.capacity, lv.capacities)


def test_levels_per_level_p_sampled_from_the_augmented_config():
  aug = ml_collections.ConfigDict(
    {"enabled": True, "p_sampled": 1.0, "p_min": 0.2, "p_spacing": "linear"}
  )
  lv = multiscale.Levels.from_config(_ms_config(n_levels=32), aug)
  np.testing.assert_allclose(np.asarray(lv.p_sampled)[[0, 1, 31]], [0.225, 0.25, 1.0], rtol=1e-6)
  aug.p_sampled, aug.p_spacing = 0.3, "constant"
  assert multiscale.Levels.from_config(None, aug).p_sampled == pytest.approx((0.3,))
  aug.p_sampled = 1.5  # a probability outside [0, 1] is refused
  with pytest.raises(ValueError, match="must lie in"):
    multiscale.Levels.from_config(_ms_config(), aug)
  aug.enabled = False  # off: not read
  assert multiscale.Levels.from_config(_ms_config(), aug).p_sampled == pytest.approx((0.2,) * 4)


def test_split_and_merge_collections_follow_the_declaration(small_core):
  model, state, _ = small_core
  variables = state.variables()
  shared, per_level = multiscale.split_collections(variables, model.level_collections)
  assert set(per_level) == {"params", "batch_stats"}
  assert set(per_level["params"]) == {"sigma_net"}
  assert set(per_level["batch_stats"]) == {"latent_moments"}
  assert "sigma_net" not in shared["params"] and "latent_moments" not in shared["batch_stats"]
  chex.assert_trees_all_equal(multiscale.merge_collections(shared, per_level), variables)
  # one level's variables: the level's slice of the declared entries, the shared ones as is
  v1 = state_lib.level_variables(_setup(model, "beta", multiscale.Levels()), variables, 1)
  chex.assert_trees_all_equal(
    v1["params"]["sigma_net"], multiscale.level_slice(variables["params"]["sigma_net"], 1)
  )
  chex.assert_trees_all_equal(
    v1["batch_stats"]["latent_moments"]["mean"],
    variables["batch_stats"]["latent_moments"]["mean"][1],
  )
  chex.assert_trees_all_equal(
    {k: v for k, v in v1["params"].items() if k != "sigma_net"}, shared["params"]
  )


def test_merge_shared_updates_averages_floats_and_keeps_level0_counters():
  stacked = {"mean": jnp.array([[1.0, 2.0], [3.0, 6.0]]), "count": jnp.array([4, 9])}
  got = multiscale.merge_shared_updates(stacked)
  np.testing.assert_allclose(got["mean"], [2.0, 4.0])
  assert int(got["count"]) == 4 and got["count"].dtype == jnp.int32


def test_over_levels_one_level_equals_vmap_over_one_level():
  f = lambda shared, x, k: {"y": shared * jnp.sum(x) + jax.random.normal(k, ())}
  x, keys = jnp.arange(6.0).reshape(1, 2, 3), jax.random.split(jax.random.key(0), 1)
  one = multiscale.over_levels(f, 1, (None, 0, 0))(2.0, x, keys)
  ref = jax.vmap(f, in_axes=(None, 0, 0))(2.0, x, keys)
  chex.assert_shape(one["y"], (1,))
  np.testing.assert_allclose(one["y"], ref["y"], rtol=1e-6)


# ------------------------------------------------------------------------------------------
# The vmapped multiscale loss against a Python loop over levels

MULTIPLIERS, CAPACITIES, BETA_MAX = (0.4, 1.0, 2.2), (0.5, 1.0, 1.5), 0.5


def _setup(model, name, levels):
  obj = objectives.make(name, _config(name, beta=BETA_MAX, multiscale={"gamma": 128.0}), model)
  return state_lib.Setup(model=model, objective=obj, tx=optax.identity(), levels=levels)


@pytest.mark.parametrize("name", ["beta", "inverted", "capacity"])
def test_vmapped_loss_equals_python_loop_over_levels(small_core, name):
  model, state, batches = small_core
  levels = multiscale.Levels(
    n=N_LEVELS, multipliers=MULTIPLIERS, capacities=CAPACITIES, p_sampled=(0.2,) * N_LEVELS
  )
  setup = _setup(model, name, levels)
  (loss, (metrics, new_ms, terms)), grads = jax.jit(
    lambda s, b: step_lib.loss_and_grads(setup, s, b, None)
  )(state, batches)
  keys = jax.random.split(state_lib.step_key(state, Salt.LOSS), N_LEVELS)
  level_args = levels.level_args()

  @jax.jit
  def level(st, i):  # one level, as a worker would compute it (compiled once, called n times)
    v = state_lib.level_variables(setup, st.variables(), i)
    batch = multiscale.level_slice(batches, i)

    def f(p):
      t, new_vars, _ = step_lib.level_terms(
        setup, {**v, "params": p}, batch, None, keys[i], st.step, train=True
      )
      lv = multiscale.level_slice(level_args, i)
      l, _ = setup.objective.loss(
        multiscale.level_slice(st.objective_state, i), t, step=st.step, level=lv
      )
      return l, (t, new_vars)

    (l, (t, s)), g = jax.value_and_grad(f, has_aux=True)(v["params"])
    return l, t, s, g

  ref_losses, ref_grads, ref_stats = [], [], []
  for i in range(N_LEVELS):
    l, t, s, g = level(state, i)
    ref_losses.append(float(l))
    ref_stats.append(s["batch_stats"])
    ref_grads.append(g)
    np.testing.assert_allclose(terms.z[i], t.z, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(terms.kl[i], t.kl, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(terms.recon.loss[i], t.recon.loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics["loss"][i], l, rtol=1e-5)
    np.testing.assert_allclose(metrics["kl"][i], np.mean(t.kl) / D, rtol=1e-5)
    np.testing.assert_allclose(metrics["recon"][i], np.mean(t.recon.loss), rtol=1e-5)
    # the level loss is the explicit formula at beta_i = m_i beta_max, C_i
    recon, kl = np.asarray(t.recon.loss, np.float64), np.asarray(t.kl, np.float64)
    b_i = MULTIPLIERS[i] * BETA_MAX
    want = {
      "beta": recon + b_i * kl / D,
      "inverted": recon / b_i + kl / D,
      "capacity": recon + 128.0 * np.maximum(kl - CAPACITIES[i], 0.0) / D,
    }[name]
    np.testing.assert_allclose(float(l), want.mean(), rtol=1e-5)
  np.testing.assert_allclose(float(loss), np.mean(ref_losses), rtol=1e-5)
  # gradients: shared parameters get the mean over levels, sigma_net level i only level i's
  shared = lambda g: {k: v for k, v in g.items() if k != record.LEVEL_PARAMS}
  chex.assert_trees_all_close(
    shared(grads),
    jax.tree.map(lambda *g: sum(g) / N_LEVELS, *[shared(g) for g in ref_grads]),
    rtol=1e-4,
    atol=1e-7,
  )
  for i in range(N_LEVELS):
    chex.assert_trees_all_close(
      multiscale.level_slice(grads["sigma_net"], i),
      jax.tree.map(lambda g: g / N_LEVELS, ref_grads[i]["sigma_net"]),
      rtol=1e-4,
      atol=1e-8,
    )
    # per-level latent moments: updated from that level's own sampled latents
    chex.assert_trees_all_close(
      multiscale.level_slice(new_ms["batch_stats"]["latent_moments"], i),
      ref_stats[i]["latent_moments"],
      rtol=1e-5,
      atol=1e-7,
    )
  # shared statistics (ScalarTuple whitening): the mean of the per-level updates (counters:
  # level 0's), and they really moved
  body = lambda s: {k: v for k, v in s.items() if k != "latent_moments"}
  got_leaves = jax.tree.leaves(body(new_ms["batch_stats"]))
  per_level = [jax.tree.leaves(body(s)) for s in ref_stats]
  old_leaves = jax.tree.leaves(body(state.model_state["batch_stats"]))
  assert any(x.dtype == jnp.float32 for x in got_leaves)
  moved = False
  for j, got in enumerate(got_leaves):
    lv = [p[j] for p in per_level]
    if jnp.issubdtype(got.dtype, jnp.floating):
      np.testing.assert_allclose(got, np.mean(lv, 0), rtol=1e-5, atol=1e-7)
      moved |= not np.allclose(got, old_leaves[j])
    else:
      np.testing.assert_array_equal(got, lv[0])
  assert moved
  # the levels really differ (distinct sigma networks, betas and batches)
  assert len({round(float(x), 5) for x in metrics["kl"]}) == N_LEVELS
  assert len({round(float(x), 5) for x in metrics["loss"]}) == N_LEVELS


def _one_level(small_core, **schedules):
  """small_core's model (with `schedules`) and state cut to one level, and its level batch."""
  model, state, batches = small_core
  one = lambda t: jax.tree.map(lambda a: a[:1], t)
  params = {**state.params, "sigma_net": one(state.params["sigma_net"])}
  stats = {
    **state.model_state["batch_stats"],
    "latent_moments": one(state.model_state["batch_stats"]["latent_moments"]),
  }
  model = dataclasses.replace(model, **schedules)
  return model, state.replace(params=params, model_state={"batch_stats": stats}), one(batches)


def test_single_level_path_equals_vmapped_path(small_core, monkeypatch):
  """n = 1 skips vmap (faster compile); it must compute the same as vmap over one level.
  (Schedules that return arrays here; constant ones: the next test.)"""
  model, state1, batch1 = _one_level(
    small_core,
    p_tuple=optax.linear_schedule(1.0, 0.0, 10),
    p_string=optax.linear_schedule(1.0, 0.0, 20),
  )
  obj = objectives.make(
    "beta", _config(beta_schedule="linear", beta_start=0.1, beta_end=0.5), model
  )
  setup = state_lib.Setup(model=model, objective=obj, tx=optax.identity())
  assert setup.levels.n == 1
  f = lambda s, b: step_lib.loss_and_grads(setup, s, b, None)
  (loss, (metrics, new_ms, terms)), grads = jax.jit(f)(state1, batch1)
  # the same through vmap over one level
  monkeypatch.setattr(
    multiscale, "over_levels", lambda fn, n, in_axes: jax.vmap(fn, in_axes=in_axes)
  )
  (r_loss, (r_metrics, r_ms, r_terms)), r_grads = jax.jit(
    lambda s, b: step_lib.loss_and_grads(setup, s, b, None)
  )(state1, batch1)
  np.testing.assert_allclose(float(loss), float(r_loss), rtol=1e-6)
  chex.assert_shape(terms.z, (1, B, D))
  chex.assert_trees_all_close(terms.z, r_terms.z, rtol=1e-6, atol=1e-7)
  chex.assert_trees_all_close(metrics, r_metrics, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(metrics["p_tuple"], [0.3], rtol=1e-6)  # the schedules at 7
  np.testing.assert_allclose(metrics["beta"], [0.1 + 0.4 * 7 / 100], rtol=1e-6)
  chex.assert_trees_all_close(grads, r_grads, rtol=1e-5, atol=1e-8)
  chex.assert_trees_all_close(new_ms, r_ms, rtol=1e-5, atol=1e-7)
  chex.assert_shape(new_ms["batch_stats"]["latent_moments"]["mean"], (1, D))


def test_single_level_step_traces_with_constant_schedules(small_core):
  """Metrics that are Python floats (optax.constant_schedule returns its value as is: a
  constant beta, a TF/AS scheme's p_tuple / p_string) get the level axis of one level too."""
  model, state1, batch1 = _one_level(small_core)  # constant p_tuple 0.5, p_string 1
  obj = objectives.make("beta", _config(), model)  # constant beta
  setup = state_lib.Setup(model=model, objective=obj, tx=optax.identity())
  out = jax.eval_shape(lambda s, b: step_lib.loss_and_grads(setup, s, b, None), state1, batch1)
  chex.assert_shape(out[0][1][0]["p_string"], (1,))


def test_one_level_capacity_is_c_min():
  """The 'capacity' objective on one level uses C_0 = c_min (App J, Eq 9), not 0."""
  ms = ml_collections.ConfigDict(dict(n_levels=1, c_min=10.0, c_inc=0.5))
  np.testing.assert_allclose(multiscale.Levels.from_config(ms).level_args().capacity, [10.0])
  np.testing.assert_allclose(multiscale.Levels.from_config(None).level_args().capacity, [0.0])
