"""AAE baseline (paper 000 App H): the discriminator, its step, the 'aae' loss, and one
alternating training step through `Programs`."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import Person

from alala_jax import config as base
from alala_jax import schema as sc
from alala_jax.data import codec
from alala_jax.objectives import aae, elbo, multiscale
from alala_jax.train import state as state_lib

D = 8


@pytest.fixture(scope="module")
def adv():
  return aae.adversarial(optax.adam(1e-2), features=D)


def test_discriminator_is_the_sigma_network_body_with_a_two_way_softmax(adv):
  s = adv.init(jax.random.key(0), D)
  shapes = jax.tree.map(lambda a: a.shape, s.params)
  assert shapes == {**{f"CeluDense_{i}": {"Dense_0": {"kernel": (D, D), "bias": (D,)}}
                       for i in range(3)},
                    "Dense_0": {"kernel": (D, 2), "bias": (2,)}}


def test_generator_loss_is_the_cross_entropy_against_the_prior_class(adv):
  s = adv.init(jax.random.key(1), D)
  z = jax.random.normal(jax.random.key(2), (5, D))
  logits = np.asarray(aae.Discriminator(D).apply({"params": s.params}, z), np.float64)
  ref = np.log(np.exp(logits).sum(-1)) - logits[:, aae.PRIOR]
  chex.assert_shape(adv.generator_loss(s, z), (5,))
  np.testing.assert_allclose(np.asarray(adv.generator_loss(s, z)), ref, rtol=1e-5)


def test_discriminator_steps_learn_to_tell_encoder_latents_from_the_prior(adv):
  s = adv.init(jax.random.key(3), D)
  z_enc = 2.0 + 0.3 * jax.random.normal(jax.random.key(4), (64, D))   # far from N(0, I)
  step = jax.jit(adv.update)
  _, first = step(s, z_enc, jax.random.key(0))
  for i in range(60):
    s, m = step(s, z_enc, jax.random.key(i))
  assert float(m["adv/disc_loss"]) < 0.5 * float(first["adv/disc_loss"])
  assert float(m["adv/disc_accuracy"]) > 0.95
  # the generator term is now large on the encoder's latents, small on prior draws
  prior = jax.random.normal(jax.random.key(99), (64, D))
  assert float(jnp.mean(adv.generator_loss(s, z_enc))) > float(
      jnp.mean(adv.generator_loss(s, prior))) + 1.0


def test_aae_loss_mode_is_deterministic_and_weighs_the_adversarial_term(small, adv):
  model, params, stats, batches = small
  v = multiscale.level_variables(params, stats, 0)
  batch = multiscale.level_slice(batches, 0)
  s = adv.init(jax.random.key(5), model.cfg.latent_dim)
  adversary = lambda z: adv.generator_loss(s, z)

  def loss(p, key, weight):
    return elbo.vae_loss(model, p, v["batch_stats"], batch, key, weight, 1.0, 1.0, False,
                         mode="aae", adversary=adversary)
  loss_and_grad = jax.jit(jax.value_and_grad(loss, has_aux=True))    # compiled once
  (l1, (terms, _, out)), g1 = loss_and_grad(v["params"], jax.random.key(0), 1.0)
  np.testing.assert_array_equal(np.asarray(out.z), np.asarray(out.mu))
  ce = np.asarray(adversary(out.z))
  np.testing.assert_allclose(float(terms.latent), ce.mean(), rtol=1e-5)
  np.testing.assert_allclose(float(l1), float(terms.recon) + ce.mean(), rtol=1e-5)
  # the adversarial term reaches the encoder: its gradient differs from weight 0's
  _, g0 = loss_and_grad(v["params"], jax.random.key(0), 0.0)
  diff = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), g1, g0)
  assert max(jax.tree.leaves(diff)) > 0
  with pytest.raises(ValueError, match="adversary"):
    elbo.vae_loss(model, v["params"], v["batch_stats"], batch, jax.random.key(0), 1.0, 1.0,
                  1.0, False, mode="aae")


def _aae_config():
  c = base.base_config()
  c.objective.kind = "aae"
  c.objective.beta_schedule, c.objective.beta_end = "constant", 1.0
  c.model.latent_dim, c.model.char_dim = D, 4
  c.train.batch_size, c.train.num_steps = 6, 4
  c.optim.learning_rate = 1e-2
  return c


def test_one_step_trains_the_autoencoder_and_then_the_discriminator():
  records = [Person(name=f"n{i % 5}x", height=float(i)) for i in range(12)]
  root = sc.parse_schema(Person)
  spec = codec.build_spec(root, records)
  batch, _ = codec.encode(root, spec, records[:6])
  progs = state_lib.Programs(root, spec, _aae_config())
  s0 = progs.create_state(0, batch)
  d0 = jax.tree.map(np.asarray, s0.objective_state)
  p0 = jax.tree.map(np.asarray, s0.params)
  key3 = progs._step_key(s0, 3)
  s1, metrics, aux = progs.train_step(s0, batch)
  # the discriminator moved by exactly one of its own steps on this step's encoder latents
  want, want_m = progs.adv.update(aae.AAEState(*jax.tree.map(jnp.asarray, d0)), aux["mu"][0],
                                  key3)
  chex.assert_trees_all_close(s1.objective_state, want, atol=1e-6)
  np.testing.assert_allclose(float(metrics["adv/disc_loss"]), float(want_m["adv/disc_loss"]),
                             rtol=1e-5)
  # the autoencoder moved, the unused sigma-network did not (deterministic encoder)
  moved = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != b)), s1.params, p0)
  assert any(x for k, sub in moved.items() if k != multiscale.LEVEL_PARAMS
             for x in jax.tree.leaves(sub))
  assert not any(jax.tree.leaves(moved[multiscale.LEVEL_PARAMS]))
  np.testing.assert_array_equal(np.asarray(aux["z"]), np.asarray(aux["mu"]))
  assert np.isfinite(float(metrics["loss"])) and int(s1.bad_step) == -1


def test_aae_runs_alone():
  c = _aae_config()
  c.objective.multiscale.n_levels = 2
  with pytest.raises(ValueError, match="AAE baseline"):
    state_lib.resolve_objective(c)
