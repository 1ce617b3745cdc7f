"""Paper 002's latent hierarchy on the record VAE (models/hierarchical_record.py): the hooks wire
the record encoder's embedding into the hierarchy and its output into the record decoder, the
core's fused pass equals the interface's sequence, L^{>0} is the ELBO, generation decodes
records from the hierarchy's prior, and the trainer steps it."""

import chex
import jax
import numpy as np
import pytest

from alala_jax.models import base
from alala_jax.models.hierarchical import HierarchicalConfig
from alala_jax.models.hierarchical_record import RECORD, HierarchicalRecordVAE
from alala_jax.tasks.records import RecordTask
from experiments.configs import records_hierarchy


@pytest.fixture(scope="module")
def task():
  return RecordTask.from_config(records_hierarchy.get_config("lvae+,smoke"))


def test_model_wiring_fused_pass_and_l_above(task):
  model = task.model
  assert isinstance(model, HierarchicalRecordVAE) and model.config.variant == "lvae+"
  assert model.config.num_pixels == model.record.latent_dim
  assert model.kl_scale == pytest.approx(1.0 / model.latent_dim)
  x = jax.tree.map(lambda a: a[:6], task.train_arrays)
  v = model.init(jax.random.key(0), x)
  assert RECORD in v["params"] and "batch_stats" in v
  key = jax.random.key(1)

  @jax.jit
  def run(v, x, key):
    post, aux = model.encode(v, x)
    k_z, k_r = jax.random.split(key)
    z = model.reparameterize(v, post, k_z)
    rec = model.recon(v, x, z, aux, key=k_r)
    _, zf, recf, klf = model.fused_terms(v, x, key)
    return {
      "seq": (z, model.kl(post, z), rec.nll, rec.loss),
      "fused": (zf, klf, recf.nll, recf.loss),
      "feats": (post.x, model.record.encode({**v, "params": v["params"][RECORD]}, x)[0].mean),
      "l0": model.l_above_k(v, x, key, 0),
      "l1": model.l_above_k(v, x, key, 1),
      "sample": model.sample(v, key, 4),
    }

  out = run(v, x, key)
  chex.assert_trees_all_close(out["fused"], out["seq"], rtol=1e-5, atol=1e-5)
  chex.assert_trees_all_close(*out["feats"])  # the hierarchy reads mu(x) of the record encoder
  z, kl, nll, _ = out["seq"]
  chex.assert_shape(z, (6, model.latent_dim))
  chex.assert_shape(kl, (2, 6))
  # teacher forcing at step 0: the record likelihood does not depend on the decoder's key
  np.testing.assert_allclose(out["l0"], -(nll + kl.sum(0)), rtol=1e-5, atol=1e-4)
  chex.assert_tree_all_finite(out["l1"])
  assert {a.shape[0] for a in jax.tree.leaves(out["sample"])} == {4}
  labels = model.partition(v["params"])
  assert labels[RECORD] == model.record.partition(v["params"][RECORD])
  leaves = lambda name: set(jax.tree.leaves(labels[name]))
  assert all(leaves(k) == {base.ENCODER} for k in labels if k.startswith("q_"))
  assert all(leaves(k) == {base.DECODER} for k in labels if k.startswith("p_"))


def test_trainer_steps_and_generation(task):
  state = task.trainer.create_state(0, task.example_batch(32))
  step = task.trainer.phase_step("train")
  for i in range(2):
    batch = jax.tree.map(lambda a, i=i: a[i * 32 : (i + 1) * 32], task.train_arrays)
    state, metrics, _ = step(state, batch)
  assert np.isfinite(float(metrics["loss"])) and int(state.bad_step) == -1
  assert "bpc" in metrics  # the record VAE's batch metrics pass through
  recs = task.generate(task.variables(state), jax.random.key(2), 3, False)
  assert {a.shape[0] for a in jax.tree.leaves(recs)} == {3}


def test_config_errors():
  c = records_hierarchy.get_config("biva,smoke")
  c.eval.generation_prior = "aggregate,tracked"
  with pytest.raises(ValueError, match="generation_prior='tracked'"):
    RecordTask.from_config(c)
  assert records_hierarchy.get_config("smoke").model.hierarchy.variant == "lvae+"
  with pytest.raises(ValueError, match="unknown config argument"):
    records_hierarchy.get_config("lvae,bogus")
  task = RecordTask.from_config(records_hierarchy.get_config("lvae,smoke"))
  with pytest.raises(ValueError, match="num_pixels must be"):
    HierarchicalRecordVAE(HierarchicalConfig(num_pixels=3), record=task.model.record)
