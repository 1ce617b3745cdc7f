"""AAE baseline (paper 000 App H): the discriminator, its step, the 'aae' loss, and one
alternating training step through `Trainer`."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import Person

from alala_jax import config as base
from alala_jax import objectives
from alala_jax import schema as sc
from alala_jax.data import codec
from alala_jax.models import record
from alala_jax.models.base import DiagGaussian, Recon
from alala_jax.objectives import aae
from alala_jax.objectives.base import TRAIN, Level, Terms
from alala_jax.tasks import records
from alala_jax.train import state as state_lib
from alala_jax.train.trainer import Trainer

D = 8


@pytest.fixture(scope="module")
def adv():
  return aae.adversarial(optax.adam(1e-2), D, optax.constant_schedule(1.0), features=D)


def _terms(z, recon=None, row_mask=None):
  b = z.shape[0]
  recon = jnp.zeros((b,)) if recon is None else jnp.asarray(recon, jnp.float32)
  return Terms(
    recon=Recon(nll=recon, loss=recon, fields={}),
    kl=jnp.zeros((b,)),
    z=z,
    posterior=DiagGaussian(z, jnp.ones_like(z)),
    row_mask=row_mask,
    kl_scale=1.0 / D,
  )


def _update(adv, s, z, key, row_mask=None):
  return adv.update(s, _terms(z, row_mask=row_mask), step=0, key=key, phase=TRAIN, level=Level())


def test_discriminator_is_the_sigma_network_body_with_a_two_way_softmax(adv):
  s = adv.init(jax.random.key(0))
  assert set(s) == {"aae"} and isinstance(s["aae"], aae.AAEState)
  assert adv.name == "aae" and adv.deterministic and adv.latent_label == "aae/adversarial_ce"
  shapes = jax.tree.map(lambda a: a.shape, s["aae"].params)
  assert shapes == {
    **{f"CeluDense_{i}": {"Dense_0": {"kernel": (D, D), "bias": (D,)}} for i in range(3)},
    "Dense_0": {"kernel": (D, 2), "bias": (2,)},
  }
  wide = (
    aae.adversarial(optax.adam(1e-2), 3, optax.constant_schedule(1.0), features=5, hidden_layers=2)
    .init(jax.random.key(0))["aae"]
    .params
  )
  assert jax.tree.map(lambda a: a.shape, wide)["CeluDense_0"]["Dense_0"]["kernel"] == (3, 5)
  assert set(wide) == {"CeluDense_0", "CeluDense_1", "Dense_0"}


def test_generator_term_is_the_cross_entropy_against_the_prior_class(adv):
  s = adv.init(jax.random.key(1))
  z = jax.random.normal(jax.random.key(2), (5, D))
  logits = np.asarray(aae.Discriminator(D).apply({"params": s["aae"].params}, z), np.float64)
  ref = np.log(np.exp(logits).sum(-1)) - logits[:, aae.PRIOR]  # -log softmax[prior]
  # per row: the loss of each row alone with a zero reconstruction
  rows = jax.vmap(lambda zi: adv.loss(s, _terms(zi[None]), step=0, level=Level())[0])(z)
  np.testing.assert_allclose(np.asarray(rows), ref, rtol=1e-5)
  # the batch: mean(recon + beta * beta_scale * CE), the CE mean as a metric
  recon = np.array([0.5, 1.0, 2.0, 0.0, 3.0])
  loss, m = adv.loss(s, _terms(z, recon), step=0, level=Level(beta_scale=0.25))
  np.testing.assert_allclose(float(loss), np.mean(recon + 0.25 * ref), rtol=1e-5)
  np.testing.assert_allclose(float(m["aae/adversarial_ce"]), ref.mean(), rtol=1e-5)
  assert float(m["beta"]) == 1.0
  # the adversarial term reaches z (the encoder's means)
  g = jax.grad(lambda zz: adv.loss(s, _terms(zz), step=0, level=Level())[0])(z)
  assert float(jnp.max(jnp.abs(g))) > 0


def test_discriminator_steps_learn_to_tell_encoder_latents_from_the_prior(adv):
  s = adv.init(jax.random.key(3))
  z_enc = 2.0 + 0.3 * jax.random.normal(jax.random.key(4), (64, D))  # far from N(0, I)
  step = jax.jit(lambda s, k: _update(adv, s, z_enc, k))
  _, first = step(s, jax.random.key(0))
  for i in range(60):
    s, m = step(s, jax.random.key(i))
  assert float(m["aae/disc_loss"]) < 0.5 * float(first["aae/disc_loss"])
  assert float(m["aae/disc_accuracy"]) > 0.95
  # the generator term is now large on the encoder's latents, small on prior draws
  prior = jax.random.normal(jax.random.key(99), (64, D))
  ce = lambda z: float(adv.loss(s, _terms(z), step=0, level=Level())[0])
  assert ce(z_enc) > ce(prior) + 1.0


def test_discriminator_step_weighs_encoder_rows_by_the_row_mask(adv):
  """Masked rows do not enter the encoder side: rows [real, junk] with mask [1, 0] give the
  step of rows [real, real] (the prior side draws as many rows either way)."""
  s = adv.init(jax.random.key(5))
  real = jax.random.normal(jax.random.key(6), (4, D)) + 1.0
  junk = 100.0 * jnp.ones((4, D))
  key = jax.random.key(7)
  masked, m1 = _update(adv, s, jnp.concatenate([real, junk]), key, jnp.array([1.0] * 4 + [0.0] * 4))
  dup, m2 = _update(adv, s, jnp.concatenate([real, real]), key)
  chex.assert_trees_all_close(masked, dup, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(float(m1["aae/disc_loss"]), float(m2["aae/disc_loss"]), rtol=1e-6)


# ------------------------------------------------------------------------------------------
# One alternating step through the Trainer


def _aae_config():
  c = base.base_config()
  c.objective.name = "aae"
  c.objective.beta_schedule, c.objective.beta_end = "constant", 1.0  # App H: weight 1
  c.model.latent_dim, c.model.char_dim = D, 4
  c.train.batch_size, c.train.num_steps = 6, 4
  c.optim.learning_rate = 1e-2
  return c


@pytest.fixture(scope="module")
def task():
  records_ = [Person(name=f"n{i % 5}x", height=float(i)) for i in range(12)]
  root = sc.parse_schema(Person)
  spec = codec.build_spec(root, records_)
  batch, _ = codec.encode(root, spec, records_[:6])
  c = _aae_config()
  model = records.make_model(root, spec, c)
  return c, model, batch


def test_one_step_trains_the_autoencoder_and_then_the_discriminator(task):
  c, model, batch = task
  objective = objectives.build(c, model)
  assert objective.name == "aae" and objective.deterministic
  trainer = Trainer(state_lib.make_setup(model, objective, c))
  assert trainer.levels.n == 1 and trainer.phase_at(3) == TRAIN
  s0 = trainer.create_state(0, batch)
  d0 = jax.tree.map(lambda a: np.asarray(a)[0], s0.objective_state)  # the one level
  p0 = jax.tree.map(np.asarray, s0.params)
  key = state_lib.step_key(s0, state_lib.Salt.OBJECTIVE_UPDATE)  # one level: used as is
  s1, metrics, aux = trainer.step_fn(0, means=True)(s0, batch)  # (donates s0)
  # the discriminator moved by exactly one of its own steps on this step's encoder latents
  want, want_m = objective.update(
    jax.tree.map(jnp.asarray, d0), _terms(aux["mu"][0]), step=0, key=key, phase=TRAIN, level=Level()
  )
  got = jax.tree.map(lambda a: a[0], s1.objective_state)
  # Adam's first step is +-lr = 1e-2 per weight, lr g / (|g| + eps) amplifies float noise
  # where |g| ~ eps: 5e-5 is 0.5 % of one step; another key's step is ~lr away
  chex.assert_trees_all_close(got, want, rtol=1e-5, atol=5e-5)
  other, _ = objective.update(
    jax.tree.map(jnp.asarray, d0),
    _terms(aux["mu"][0]),
    step=0,
    key=jax.random.fold_in(key, 1),
    phase=TRAIN,
    level=Level(),
  )
  with pytest.raises(AssertionError):
    chex.assert_trees_all_close(got["aae"].params, other["aae"].params, rtol=1e-5, atol=5e-5)
  assert not all(jax.tree.leaves(jax.tree.map(np.array_equal, jax.tree.map(np.asarray, got), d0)))
  np.testing.assert_allclose(
    float(metrics["aae/disc_loss"]), float(want_m["aae/disc_loss"]), rtol=1e-5
  )
  # the autoencoder moved, the unused sigma-network did not (deterministic encoder)
  moved = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != b)), s1.params, p0)
  assert any(
    x for k, sub in moved.items() if k != record.LEVEL_PARAMS for x in jax.tree.leaves(sub)
  )
  assert not any(jax.tree.leaves(moved[record.LEVEL_PARAMS]))
  np.testing.assert_array_equal(np.asarray(aux["z"]), np.asarray(aux["mu"]))
  assert "aae/adversarial_ce" in metrics and "aae/disc_accuracy" in metrics
  assert np.isfinite(float(metrics["loss"])) and int(s1.bad_step) == -1


def test_aae_runs_alone(task):
  c, model, _ = task
  c = c.copy_and_resolve_references()
  c.objective.multiscale.n_levels = 2
  with pytest.raises(ValueError, match="AAE baseline"):
    objectives.build(c, model)
  c.objective.multiscale.n_levels = 1
  c.objective.augmented.enabled = True
  with pytest.raises(ValueError, match="AAE baseline"):
    objectives.build(c, model)
