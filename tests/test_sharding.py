"""The multiscale step as one SPMD program on a (data, beta) mesh of 8 forced host devices
(conftest sets --xla_force_host_platform_device_count=8): same loss, gradients and step as on
one device, the leaves the model and objective declare per level on 'beta', clear errors."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import Person
from jax.sharding import PartitionSpec as P

from alala_jax import config as base
from alala_jax import objectives
from alala_jax import schema as sc
from alala_jax.data import codec
from alala_jax.objectives import multiscale
from alala_jax.tasks import records
from alala_jax.train import sharding
from alala_jax.train import state as state_lib
from alala_jax.train import step as step_lib
from alala_jax.train.trainer import Trainer

N_LEVELS, BATCH = 4, 16  # 4 rows per level; the mesh: data 2 x beta 4


@pytest.fixture(scope="module")
def setup():
  if jax.device_count() < 8:
    pytest.skip(f"needs 8 devices, found {jax.device_count()} (XLA_FLAGS was overridden?)")
  c = base.base_config()
  c.model.latent_dim, c.model.char_dim = 8, 4
  c.train.batch_size, c.train.num_steps = BATCH, 10
  c.objective.multiscale.n_levels = N_LEVELS
  c.objective.augmented.enabled, c.objective.augmented.n_augmented = True, N_LEVELS
  c.optim.ema_decay = 0.9  # EMA parameters: their sigma_net is per level too
  recs = [Person(name=f"n{i % 7}x{i % 3}", height=float(i) + 0.25 * (i % 5)) for i in range(BATCH)]
  root = sc.parse_schema(Person)
  spec = codec.build_spec(root, recs)
  batch, _ = codec.encode(root, spec, recs)
  model = records.make_model(root, spec, c)
  trainer = Trainer(state_lib.make_setup(model, objectives.build(c, model), c))
  return trainer, trainer.create_state(0, batch), batch, sharding.make_mesh(2, N_LEVELS)


def _names(path):
  return [getattr(k, "key", getattr(k, "name", None)) for k in path]


def _per_level(path) -> bool:
  """The leaves the record model and the objective declare per level (by name, not shape)."""
  names = _names(path)
  return names[0] == "objective_state" or "sigma_net" in names or "latent_moments" in names


def test_state_shardings_put_the_declared_leaves_on_beta(setup):
  trainer, state, _, mesh = setup
  shardings = sharding.state_shardings(state, mesh, trainer.setup)
  seen = set()
  for path, s in jax.tree_util.tree_flatten_with_path(shardings)[0]:
    if _per_level(path):
      seen.add(_names(path)[0])
      assert s.spec == P("beta"), jax.tree_util.keystr(path)
    else:
      assert s.spec == P(), jax.tree_util.keystr(path)
  # the declared entries wherever they occur: params, their Adam moments, EMA, statistics,
  # and the augmented latents
  assert seen == {"params", "opt_state", "ema_params", "model_state", "objective_state"}
  for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
    if _per_level(path):
      assert np.shape(leaf)[0] == N_LEVELS, jax.tree_util.keystr(path)


def test_sharded_loss_and_gradients_equal_single_device(setup):
  trainer, state, batch, mesh = setup
  s = trainer.setup
  f = jax.jit(lambda st, b: step_lib.loss_and_grads(s, st, s.levels.split(b), None))
  (loss, (metrics, stats, terms)), grads = f(state, batch)
  s_state, s_batch = sharding.shard(state, batch, mesh, s)
  assert s_state.params["sigma_net"]["Dense_0"]["kernel"].sharding.spec == P("beta")
  assert s_state.objective_state["augmented"].z.sharding.spec == P("beta")
  assert s_batch["name"]["chars"].sharding.spec == P(("beta", "data"))
  (s_loss, (s_metrics, s_stats, s_terms)), s_grads = f(s_state, s_batch)
  # the program really ran on the 8 devices
  assert len(s_grads["sigma_net"]["Dense_0"]["kernel"].sharding.device_set) == 8
  np.testing.assert_allclose(float(s_loss), float(loss), rtol=1e-6)
  chex.assert_trees_all_close(s_grads, grads, rtol=1e-5, atol=1e-7)
  chex.assert_trees_all_close(s_stats, stats, rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(s_metrics, metrics, rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(s_terms.z, terms.z, rtol=1e-5, atol=1e-6)


def test_sharded_train_step_keeps_levels_on_beta(setup):
  trainer, state, batch, mesh = setup
  s_state, s_batch = sharding.shard(state, batch, mesh, trainer.setup)
  ref_state = jax.tree.map(lambda a: a.copy(), state)  # train_step donates its state
  step = trainer.step_fn(0)
  ref, ref_m, _ = step(ref_state, batch)
  new, m, _ = step(s_state, s_batch)
  np.testing.assert_allclose(float(m["loss"]), float(ref_m["loss"]), rtol=1e-6)
  np.testing.assert_allclose(float(m["grad_norm"]), float(ref_m["grad_norm"]), rtol=1e-5)
  chex.assert_trees_all_close(new.objective_state, ref.objective_state, rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(new.params, ref.params, rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(new.model_state, ref.model_state, rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(new.ema_params, ref.ema_params, rtol=1e-5, atol=1e-6)
  # the seeded augmented latents are this step's sampled latents of each level (not zeros)
  assert float(jnp.min(jnp.abs(new.objective_state["augmented"].z))) > 0
  assert int(new.step) == 1 and int(new.bad_step) == -1
  assert new.params["sigma_net"]["Dense_0"]["kernel"].sharding.spec[0] == "beta"
  assert new.ema_params["sigma_net"]["Dense_0"]["kernel"].sharding.spec[0] == "beta"
  assert new.model_state["batch_stats"]["latent_moments"]["mean"].sharding.spec[0] == "beta"
  assert new.objective_state["augmented"].z.sharding.spec[0] == "beta"


def test_mesh_and_split_errors(setup):
  trainer, state, batch, mesh = setup
  with pytest.raises(ValueError, match="needs 16 devices"):
    sharding.make_mesh(4, 4)
  assert sharding.mesh_from_config("") is None
  assert dict(sharding.mesh_from_config("2,4").shape) == {"data": 2, "beta": 4}
  with pytest.raises(ValueError, match="train.mesh must be 'DATA,BETA'"):
    sharding.mesh_from_config("8")
  six = dataclasses.replace(
    trainer.setup,
    levels=multiscale.Levels(
      n=6, multipliers=(1.0,) * 6, capacities=(0.0,) * 6, p_sampled=(0.2,) * 6
    ),
  )
  with pytest.raises(ValueError, match="do not split over a 'beta' axis of 4"):
    sharding.state_shardings(state, mesh, six)
  with pytest.raises(ValueError, match="batch 6 does not split"):
    sharding.shard(state, jax.tree.map(lambda a: a[:6], batch), mesh, trainer.setup)


def test_a_per_level_leaf_without_the_level_axis_is_refused(setup):
  trainer, state, _, mesh = setup
  aug = state.objective_state["augmented"]
  wrong = state.replace(objective_state={"augmented": aug._replace(z=aug.z[:2])})
  with pytest.raises(
    ValueError,
    match=r"objective_state\['augmented'\].*declared per level "
    r"but has shape \(2, 1, 8\), not \[4, \.\.\.\]",
  ):
    sharding.state_shardings(wrong, mesh, trainer.setup)
  lost = state.replace(
    params={**state.params, "sigma_net": multiscale.level_slice(state.params["sigma_net"], 0)}
  )  # one level's sigma_net, no level axis
  with pytest.raises(ValueError, match=r"sigma_net.*declared per level"):
    sharding.state_shardings(lost, mesh, trainer.setup)
  scalar = state.replace(objective_state={"augmented": aug._replace(z=jnp.zeros(()))})
  with pytest.raises(ValueError, match=r"has shape \(\)"):
    sharding.state_shardings(scalar, mesh, trainer.setup)
