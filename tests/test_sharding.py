"""The multiscale step as one SPMD program on a (data, beta) mesh of 8 forced host devices
(conftest sets --xla_force_host_platform_device_count=8): same loss and gradients as on one
device, and the level axis stays sharded over 'beta'."""

import chex
import jax
import numpy as np
import pytest
from conftest import Person
from jax.sharding import PartitionSpec as P

from alala_jax import config as base
from alala_jax import schema as sc
from alala_jax.data import codec
from alala_jax.train import sharding
from alala_jax.train import state as state_lib

N_LEVELS, BATCH = 4, 16      # 4 rows per level; the mesh: data 2 x beta 4


@pytest.fixture(scope="module")
def setup():
  if jax.device_count() < 8:
    pytest.skip(f"needs 8 devices, found {jax.device_count()} (XLA_FLAGS was overridden?)")
  c = base.base_config()
  c.model.latent_dim, c.model.char_dim = 8, 4
  c.train.batch_size, c.train.num_steps = BATCH, 10
  c.objective.multiscale.n_levels = N_LEVELS
  c.objective.augmented.enabled, c.objective.augmented.n_augmented = True, N_LEVELS
  records = [Person(name=f"n{i % 7}x{i % 3}", height=float(i) + 0.25 * (i % 5))
             for i in range(BATCH)]
  root = sc.parse_schema(Person)
  spec = codec.build_spec(root, records)
  batch, _ = codec.encode(root, spec, records)
  progs = state_lib.Programs(root, spec, c)
  return progs, progs.create_state(0, batch), batch, sharding.make_mesh(2, N_LEVELS)


def test_sharded_loss_and_gradients_equal_single_device(setup):
  progs, state, batch, mesh = setup
  f = jax.jit(lambda s, b: progs.loss_and_grads(s, progs.levels.split(b)))
  (loss, (_, stats, out)), grads = f(state, batch)
  s_state, s_batch = sharding.shard(state, batch, mesh, N_LEVELS)
  assert s_state.params["sigma_net"]["Dense_0"]["kernel"].sharding.spec == P("beta")
  assert s_batch["name"]["chars"].sharding.spec == P(("beta", "data"))
  (s_loss, (_, s_stats, s_out)), s_grads = f(s_state, s_batch)
  # the program really ran on the 8 devices
  assert len(s_grads["sigma_net"]["Dense_0"]["kernel"].sharding.device_set) == 8
  np.testing.assert_allclose(float(s_loss), float(loss), rtol=1e-6)
  chex.assert_trees_all_close(s_grads, grads, rtol=1e-5, atol=1e-7)
  chex.assert_trees_all_close(s_stats, stats, rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(s_out.z, out.z, rtol=1e-5, atol=1e-6)


def test_sharded_train_step_keeps_levels_on_beta(setup):
  progs, state, batch, mesh = setup
  s_state, s_batch = sharding.shard(state, batch, mesh, N_LEVELS)
  ref_state = jax.tree.map(lambda a: a.copy(), state)        # train_step donates its state
  ref, ref_m, _ = progs.train_step(ref_state, batch)
  new, m, _ = progs.train_step(s_state, s_batch)
  np.testing.assert_allclose(float(m["loss"]), float(ref_m["loss"]), rtol=1e-6)
  np.testing.assert_allclose(float(m["grad_norm"]), float(ref_m["grad_norm"]), rtol=1e-5)
  chex.assert_trees_all_close(new.objective_state, ref.objective_state, rtol=1e-5, atol=1e-6)
  assert new.params["sigma_net"]["Dense_0"]["kernel"].sharding.spec[0] == "beta"
  assert new.objective_state.z.sharding.spec[0] == "beta"


def test_mesh_and_split_errors(setup):
  progs, state, batch, mesh = setup
  with pytest.raises(ValueError, match="needs 16 devices"):
    sharding.make_mesh(4, 4)
  with pytest.raises(ValueError, match="do not split over a 'beta' axis of 4"):
    sharding.state_shardings(state, mesh, 6)
  with pytest.raises(ValueError, match="batch 6 does not split"):
    sharding.shard(state, jax.tree.map(lambda a: a[:6], batch), mesh, N_LEVELS)
