"""Multiscale VAE (paper 000 Sec 6, App J, K): level spacings, the loss variants, and the
vmapped level loss against an explicit Python loop over levels."""

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from alala_jax.objectives import elbo, multiscale
from tests.conftest import B_LEVEL as B
from tests.conftest import D_LEVEL as D
from tests.conftest import N_LEVELS


def test_beta_spacings_match_the_paper():
  np.testing.assert_allclose(multiscale.beta_multipliers(32), (np.arange(32) + 1) / 32)
  g = multiscale.beta_multipliers(32, "geometric", 0.9)          # App J: 0.9^31 ... 0.9, 1
  np.testing.assert_allclose(g[[0, 1, 30, 31]], [0.9**31, 0.9**30, 0.9, 1.0], rtol=1e-6)
  with pytest.raises(ValueError, match="spacing"):
    multiscale.beta_multipliers(4, "cubic")


def test_p_sampled_spacings_match_app_k():
  lin = multiscale.level_p_sampled(32, 0.2, 1.0, "linear")       # Table 13: 0.225, 0.25, ..., 1
  np.testing.assert_allclose(lin[[0, 1, 31]], [0.225, 0.25, 1.0], rtol=1e-6)
  geo = multiscale.level_p_sampled(32, 0.2, 1.0, "geometric")    # Table 14: 5^(-31/32) ... 1
  np.testing.assert_allclose(geo[[0, 1, 31]], [5 ** (-31 / 32), 5 ** (-30 / 32), 1.0], rtol=1e-6)
  np.testing.assert_allclose(multiscale.level_p_sampled(4, 0.1, 0.2), [0.2] * 4)
  with pytest.raises(ValueError, match="must lie in"):
    multiscale.level_p_sampled(4, 0.5, 1.5, "linear")


def test_capacities_match_app_j():
  c = multiscale.capacities(32, 10.0, 0.5)                       # C_0 = 10, C_1 = 10.5, ... 25.5
  np.testing.assert_allclose(c[[0, 1, 2, 31]], [10.0, 10.5, 11.0, 25.5])


def test_per_example_loss_variants():
  recon, kl = jnp.array([1.0, 2.0]), jnp.array([4.0, 20.0])
  np.testing.assert_allclose(elbo.per_example_loss(recon, kl, 8, 0.5), recon + 0.5 * kl / 8)
  np.testing.assert_allclose(elbo.per_example_loss(recon, kl, 8, 0.5, "inverted"),
                             recon / 0.5 + kl / 8)
  np.testing.assert_allclose(elbo.per_example_loss(recon, kl, 8, 0.5, "capacity", 10.0, 128.0),
                             [1.0, 2.0 + 128.0 * 10.0 / 8])


def _ms_config(**kw):
  c = ml_collections.ConfigDict(dict(n_levels=4, spacing="linear", ratio=0.9, mode="beta",
                                     gamma=128.0, c_min=10.0, c_inc=0.5, shared_batch=False,
                                     gen_level=0))
  c.update(kw)
  return c


def test_levels_split_and_validation():
  lv = multiscale.Levels.from_config(_ms_config())
  batch = {"a": np.arange(8 * 3).reshape(8, 3)}
  chex.assert_shape(lv.split(batch)["a"], (4, 2, 3))
  np.testing.assert_array_equal(lv.split(batch)["a"][1], batch["a"][2:4])   # own rows per level
  shared = multiscale.Levels.from_config(_ms_config(shared_batch=True)).split(batch)["a"]
  chex.assert_shape(shared, (4, 8, 3))
  np.testing.assert_array_equal(shared[3], batch["a"])
  np.testing.assert_allclose(lv.betas(1.28), [0.32, 0.64, 0.96, 1.28], rtol=1e-6)
  with pytest.raises(ValueError, match="does not split evenly"):
    lv.per_level_batch(10)
  with pytest.raises(ValueError, match="gen_level"):
    multiscale.Levels.from_config(_ms_config(gen_level=4))
  assert multiscale.Levels.from_config(_ms_config(n_levels=1)).n == 1


@pytest.mark.parametrize("mode", ["beta", "inverted", "capacity"])
def test_vmapped_loss_equals_python_loop_over_levels(small, mode):
  model, params, stats, batches = small
  keys = jax.random.split(jax.random.key(3), N_LEVELS)
  betas = jnp.array([0.2, 0.5, 1.1])
  caps = jnp.array([0.5, 1.0, 1.5])

  def vmapped(p):
    return multiscale.multiscale_loss(model, p, stats, batches, keys, betas, caps, 0.5, 1.0,
                                      True, mode=mode, gamma=128.0)

  (loss, (terms, new_stats, _)), grads = jax.jit(jax.value_and_grad(vmapped, has_aux=True))(
      params)

  @jax.jit
  def level(p, i):   # one level, as a worker would compute it (compiled once, called n times)
    v = multiscale.level_variables(p, stats, i)
    batch = multiscale.level_slice(batches, i)

    def f(pp):
      return elbo.vae_loss(model, pp, v["batch_stats"], batch, keys[i], betas[i], 0.5, 1.0,
                           True, mode=mode, capacity=caps[i], gamma=128.0)
    (l, (t, s, _)), g = jax.value_and_grad(f, has_aux=True)(v["params"])
    return l, t, s, g

  ref_losses, ref_grads, ref_stats = [], [], []
  for i in range(N_LEVELS):
    l, t, s, g = level(params, i)
    ref_losses.append(l)
    ref_stats.append(s)
    ref_grads.append(g)
    np.testing.assert_allclose(terms.recon[i], t.recon, rtol=1e-5)
    np.testing.assert_allclose(terms.latent[i], t.latent, rtol=1e-5)
  np.testing.assert_allclose(loss, np.mean(ref_losses), rtol=1e-5)
  # gradients: shared parameters get the mean over levels, sigma_net level i only level i's
  shared = lambda g: {k: v for k, v in g.items() if k != "sigma_net"}
  chex.assert_trees_all_close(shared(grads),
                              jax.tree.map(lambda *g: sum(g) / N_LEVELS,
                                           *[shared(g) for g in ref_grads]),
                              rtol=1e-4, atol=1e-7)
  for i in range(N_LEVELS):
    chex.assert_trees_all_close(multiscale.level_slice(grads["sigma_net"], i),
                                jax.tree.map(lambda g: g / N_LEVELS, ref_grads[i]["sigma_net"]),
                                rtol=1e-4, atol=1e-8)
    # per-level latent moments: updated from that level's own sampled latents
    chex.assert_trees_all_close(multiscale.level_slice(new_stats["latent_moments"], i),
                                ref_stats[i]["latent_moments"], rtol=1e-5)
  # shared statistics (ScalarTuple whitening): the mean of the per-level updates
  body = lambda s: [x for x in jax.tree.leaves(s["body"]) if x.dtype == jnp.float32]
  for got, *per_level in zip(body(new_stats), *[body(s) for s in ref_stats]):
    np.testing.assert_allclose(got, np.mean(per_level, 0), rtol=1e-5)
  # the levels really differ (distinct sigma networks and betas)
  assert len({round(float(x), 5) for x in terms.latent}) == N_LEVELS


def test_single_level_path_equals_vmapped_path(small):
  """n = 1 skips vmap (faster compile); it must compute the same as vmap over one level."""
  model, params, stats, batches = small
  one = lambda t: jax.tree.map(lambda a: a[:1], t)
  p1 = {**params, "sigma_net": one(params["sigma_net"])}
  s1 = {**stats, "latent_moments": one(stats["latent_moments"])}
  keys = jax.random.split(jax.random.key(4), 1)
  args = (model, p1, s1, one(batches), keys, jnp.array([0.3]), None, 0.5, 1.0, True)
  loss, (terms, new_stats, out) = jax.jit(lambda: multiscale.multiscale_loss(*args))()
  # the same through vmap, forced by calling the level function the vmapped way
  ref = jax.jit(lambda: jax.vmap(
      lambda sp, ls, b, k: elbo.vae_loss(model, {**params, "sigma_net": sp},
                                         {**stats, "latent_moments": ls}, b, k, 0.3, 0.5, 1.0,
                                         True))(p1["sigma_net"], s1["latent_moments"],
                                                one(batches), keys))()
  np.testing.assert_allclose(loss, ref[0][0], rtol=1e-6)
  chex.assert_shape(out.z, (1, B, D))
  chex.assert_trees_all_close(new_stats["latent_moments"], ref[1][1]["latent_moments"],
                              rtol=1e-5, atol=1e-10)
