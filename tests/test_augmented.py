"""Augmented training (paper 000 Sec 5): the re-draw of the augmented latents (statistics,
without replacement, sampled latents), and the wrapper objective (state, phases, the variants
it appends, its update, validation in `objectives.build`)."""

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from alala_jax import config as base
from alala_jax import objectives
from alala_jax.models.base import DiagGaussian, Recon
from alala_jax.objectives import augmented, multiscale
from alala_jax.objectives.base import AUGMENTED, TRAIN, Level, Objective, Terms


def test_reinitialisation_statistics_match_p_sampled():
  b, n, d, p = 64, 32, 3, 0.2
  z_real = jnp.arange(1, b + 1, dtype=jnp.float32)[:, None] * jnp.ones((1, d))  # > 0
  z_var = -jnp.arange(1, n + 1, dtype=jnp.float32)[:, None] * jnp.ones((1, d))  # < 0
  keys = jax.random.split(jax.random.key(0), 4000)
  z = jax.vmap(lambda k: augmented.redraw(z_real, z_var, k, p))(keys)  # [K, n, d]
  from_real = np.asarray(z[..., 0] > 0)
  share = from_real.mean()
  sd = np.sqrt(p * (1 - p) / from_real.size)
  assert abs(share - p) < 5 * sd, (share, p)
  # a row not re-initialised keeps the latent of ITS OWN variant
  np.testing.assert_array_equal(
    np.asarray(z[..., 0])[~from_real],
    np.broadcast_to(-np.arange(1, n + 1), z.shape[:2])[~from_real],
  )
  # real examples are drawn without replacement within a step, and whole rows are copied
  for k in range(200):
    picked = np.asarray(z[k, :, 0])[from_real[k]]
    assert len(set(picked)) == len(picked)
  np.testing.assert_array_equal(np.asarray(z[..., 0:1]) * np.ones(d), np.asarray(z))
  # every real row is picked about equally often (a uniform permutation)
  counts = np.bincount(np.asarray(z[..., 0])[from_real].astype(int), minlength=b + 1)[1:]
  assert counts.min() > 0.5 * counts.mean()
  # a traced per-level p (App K) works under jit
  zt = jax.jit(lambda k, pp: augmented.redraw(z_real, z_var, k, pp))(keys[0], jnp.float32(1.0))
  assert bool(jnp.all(zt > 0))


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_reinitialisation_extremes(p):
  z = augmented.redraw(jnp.ones((8, 2)), -jnp.ones((4, 2)), jax.random.key(1), p)
  chex.assert_shape(z, (4, 2))
  assert bool(jnp.all(z > 0)) == (p == 1.0)
  assert bool(jnp.all(z < 0)) == (p == 0.0)


def test_bad_arguments():
  with pytest.raises(ValueError, match="n_augmented must be"):
    augmented.augmented(_counter(), 0, 2, 1)
  with pytest.raises(ValueError, match="exceeds the batch size"):
    augmented.redraw(jnp.ones((4, 2)), jnp.ones((8, 2)), jax.random.key(0), 0.2)
  # p_sampled outside [0, 1] is refused where it is read (the level axis)
  aug = ml_collections.ConfigDict({"enabled": True, "p_sampled": 1.5})
  with pytest.raises(ValueError, match="p_sampled"):
    multiscale.Levels.from_config(None, aug)


# ------------------------------------------------------------------------------------------
# The wrapper objective


def _counter() -> Objective:
  """An inner objective with a state of its own: counts its updates, remembers its key."""

  def init(key):
    del key
    return {"inner": (jnp.zeros((), jnp.int32), jnp.zeros((2,), jnp.uint32))}

  def loss(state, terms, *, step, level):
    del state, step
    return jnp.mean(terms.recon.loss) * level.beta_scale, {}

  def update(state, terms, *, step, key, phase, level):
    del terms, step, phase, level
    count, _ = state["inner"]
    return {**state, "inner": (count + 1, jax.random.key_data(key))}, {"inner/updates": count}

  return Objective(name="counter", init=init, loss=loss, update=update)


def _terms(z, mean=None):
  b = z.shape[0]
  zero = jnp.zeros((b,))
  mean = jnp.zeros_like(z) if mean is None else mean
  return Terms(
    recon=Recon(nll=zero, loss=zero, fields={}),
    kl=zero,
    z=z,
    posterior=DiagGaussian(mean, jnp.ones_like(z)),
    row_mask=None,
  )


N_AUG, D, GEN_START = 3, 2, 5


@pytest.fixture(scope="module")
def wrapped():
  return augmented.augmented(_counter(), N_AUG, D, GEN_START)


def test_state_and_phases(wrapped):
  s = wrapped.init(jax.random.key(0))
  assert set(s) == {"inner", augmented.NAME} and wrapped.name == "counter+augmented"
  chex.assert_trees_all_equal(s[augmented.NAME].z, jnp.zeros((N_AUG, D)))
  assert [wrapped.phase_at(t) for t in (0, GEN_START - 1, GEN_START, 100)] == [
    TRAIN,
    TRAIN,
    AUGMENTED,
    AUGMENTED,
  ]
  assert not wrapped.deterministic  # sampled latents, never means (the inner's choice)
  terms = _terms(jnp.ones((4, D)))
  assert wrapped.loss(s, terms, step=0, level=Level()) == _counter().loss(
    s, terms, step=0, level=Level()
  )


def test_prepare_appends_decoded_variants_with_a_real_row_mask(wrapped):
  n, b = 2, 4
  z = jnp.arange(n * N_AUG * D, dtype=jnp.float32).reshape(n, N_AUG, D)
  state = {**wrapped.init(jax.random.key(0)), augmented.NAME: augmented.AugmentedState(z)}
  x = {"a": jnp.full((n, b, 1), -1.0), "b": jnp.full((n, b), 7, jnp.int32)}
  calls = []

  def decode(zz, key):
    calls.append((zz.shape, key))
    return {"a": zz[:, :1], "b": jnp.zeros(zz.shape[:1], jnp.float32)}

  key = jax.random.key(9)
  same, mask = wrapped.prepare(state, x, decode=decode, key=key, phase=TRAIN)
  assert same is x and mask is None and not calls  # before gen_start: untouched
  full, mask = wrapped.prepare(state, x, decode=decode, key=key, phase=AUGMENTED)
  assert calls == [((n * N_AUG, D), key)]  # all levels decoded in one call
  chex.assert_shape(full["a"], (n, b + N_AUG, 1))
  np.testing.assert_array_equal(full["a"][:, :b], x["a"])
  np.testing.assert_array_equal(full["a"][:, b:, 0], z[..., 0])  # level i decodes its own z
  assert full["b"].dtype == jnp.int32  # variants take the batch's dtypes
  np.testing.assert_array_equal(mask, np.concatenate([np.ones((n, b)), np.zeros((n, N_AUG))], 1))


def test_update_seeds_then_redraws_from_sampled_latents(wrapped):
  s = wrapped.init(jax.random.key(0))
  b = 5
  z_real = jnp.arange(1, b + 1, dtype=jnp.float32)[:, None] * jnp.ones((1, D))
  key = jax.random.key(4)
  # before gen_start: the first n_augmented SAMPLED latents of the batch (not the means)
  seeded, _ = wrapped.update(
    s, _terms(z_real, mean=100 + z_real), step=0, key=key, phase=TRAIN, level=Level()
  )
  np.testing.assert_array_equal(seeded[augmented.NAME].z, z_real[:N_AUG])
  # the inner objective's update ran too, on its own key, and its state is kept
  assert int(seeded["inner"][0]) == 1
  np.testing.assert_array_equal(seeded["inner"][1], jax.random.key_data(jax.random.fold_in(key, 1)))
  # augmented phase: real rows then variants; the re-draw of `redraw` with the level's p
  z_var = -jnp.arange(1, N_AUG + 1, dtype=jnp.float32)[:, None] * jnp.ones((1, D))
  z_all = jnp.concatenate([z_real, z_var])
  for p in (0.0, 0.5, 1.0):
    new, _ = wrapped.update(
      seeded,
      _terms(z_all, mean=100 + z_all),
      step=GEN_START,
      key=key,
      phase=AUGMENTED,
      level=Level(p_sampled=p),
    )
    np.testing.assert_array_equal(new[augmented.NAME].z, augmented.redraw(z_real, z_var, key, p))
    assert bool(jnp.all(new[augmented.NAME].z < 100))  # samples, never the means
    assert int(new["inner"][0]) == 2
  assert bool(jnp.all(new[augmented.NAME].z > 0))  # p = 1: all from real rows
  # no gradient flows into the kept latents
  g = jax.grad(
    lambda zz: jnp.sum(
      wrapped.update(
        seeded, _terms(zz), step=GEN_START, key=key, phase=AUGMENTED, level=Level(p_sampled=0.5)
      )[0][augmented.NAME].z
    )
  )(z_all)
  assert float(jnp.max(jnp.abs(g))) == 0.0


class _Model:
  latent_dim = D
  kl_scale = 1.0 / D


def _config(**aug):
  c = base.base_config()
  c.train.batch_size, c.train.num_steps = 16, 100
  c.objective.augmented.enabled = True
  c.objective.augmented.update(aug)
  return c


def test_build_wraps_the_configured_objective():
  obj = objectives.build(_config(n_augmented=8, gen_start_fraction=0.25), _Model())
  assert obj.name == "beta+augmented" and not obj.deterministic
  assert obj.init(jax.random.key(0))[augmented.NAME].z.shape == (8, D)
  assert (obj.phase_at(24), obj.phase_at(25)) == (TRAIN, AUGMENTED)
  # n_augmented 0 = the batch size; gen_start at least step 1
  assert obj.phase_at(0) == TRAIN
  full = objectives.build(_config(n_augmented=0, gen_start_fraction=0.0), _Model())
  assert full.init(jax.random.key(0))[augmented.NAME].z.shape == (16, D)
  assert (full.phase_at(0), full.phase_at(1)) == (TRAIN, AUGMENTED)
  # per level under multiscale: n_augmented / n_levels each
  c = _config(n_augmented=8)
  c.objective.multiscale.n_levels = 4
  assert objectives.build(c, _Model()).init(jax.random.key(0))[augmented.NAME].z.shape == (2, D)
  c.objective.augmented.n_augmented = 6
  with pytest.raises(ValueError, match="does not split evenly over 4 levels"):
    objectives.build(c, _Model())
  c.objective.augmented.n_augmented = 20  # 5 per level > 16 / 4 real rows
  with pytest.raises(ValueError, match="exceed the 4 real rows"):
    objectives.build(c, _Model())
  c.objective.multiscale.shared_batch = True  # every level sees all 16 rows
  assert objectives.build(c, _Model()).init(jax.random.key(0))[augmented.NAME].z.shape == (5, D)
  off = _config()
  off.objective.augmented.enabled = False
  assert objectives.build(off, _Model()).name == "beta"
