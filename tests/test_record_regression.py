"""The record VAE on the model interface and the new training core reproduces the trainer it
replaced: for fixed parameters, batch and key, the loss, its gradients, one training step
(plain and augmented), the evaluation loss and the generated and reconstructed records equal
the reference outputs the old `Programs` trainer wrote at commit 4101fcf
(tests/golden/make_record_golden.py), for the multiscale + augmented test config, a plain
beta-VAE, the capacity mode and the WAE and AAE baselines.

Tolerances: float results agree to 1e-5 relative (the computation is the same, its XLA fusion
is not); sampled strings and all integers are equal.
"""

import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alala_jax.train import loop
from alala_jax.train import step as step_lib

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "record_vae_4101fcf.npz")
RTOL, ATOL = 1e-5, 1e-6


def small_config(name):
  """The configs of make_record_golden.py, in today's config keys."""
  from experiments.configs import test as test_config

  c = test_config.get_config()
  c.model.latent_dim, c.model.char_dim = 8, 4
  if name in ("plain", "wae", "aae"):
    c.objective.multiscale.n_levels = 1
    c.objective.augmented.enabled = False
  if name in ("wae", "aae"):
    c.objective.name = name
  if name == "capacity":
    c.objective.augmented.enabled = False
    c.objective.name = "capacity"
  return c


@pytest.fixture(scope="module")
def golden():
  return dict(np.load(GOLDEN))


def _old_key(new_path: str) -> str:
  """keystr of a new TrainState leaf -> keystr of the old one."""
  return (
    new_path.replace(".model_state['batch_stats']", ".batch_stats")
    .replace(".objective_state['augmented']", ".objective_state")
    .replace(".objective_state['aae']", ".objective_state")
  )


def _load(golden, prefix, template):
  """A pytree like `template` whose leaves are the golden arrays of `prefix` (objective
  states get the level axis the new core adds to a single level)."""

  def leaf(path, x):
    key = prefix + _old_key(jax.tree_util.keystr(path))
    if key not in golden:
      raise KeyError(key)
    g = golden[key]
    if g.shape != x.shape and g.shape == x.shape[1:]:
      g = g[None]
    return jnp.asarray(g, x.dtype)

  return jax.tree_util.tree_map_with_path(leaf, template)


def _golden_state(golden, name, task):
  state = task.trainer.create_state(0, jax.tree.map(lambda a: a, _batch(golden, name, "batch0")))
  loaded = lambda t, sub: _load(golden, f"{name}/state0.{sub}", t)
  state = state.replace(
    step=jnp.asarray(golden[f"{name}/state0.step"]),
    params=loaded(state.params, "params"),
    key=jnp.asarray(golden[f"{name}/state0.key"]),
  )
  state = state.replace(
    model_state={
      "batch_stats": _load(golden, f"{name}/state0.batch_stats", state.model_state["batch_stats"])
    }
  )
  obj = state.objective_state
  if "augmented" in obj:
    obj = {
      **obj,
      "augmented": obj["augmented"]._replace(
        z=jnp.asarray(golden[f"{name}/state0.objective_state.z"])
      ),
    }
  if "aae" in obj:
    obj = {
      **obj,
      "aae": obj["aae"]._replace(
        params=_load(golden, f"{name}/state0.objective_state.params", obj["aae"].params)
      ),
    }
  return state.replace(objective_state=obj)


def _batch(golden, name, which):
  prefix = f"{name}/{which}"
  out = {}
  for k, v in golden.items():
    if k.startswith(prefix):
      node = out
      keys = [p.strip("'") for p in k[len(prefix) :].strip("[]").split("][")]
      for p in keys[:-1]:
        node = node.setdefault(p, {})
      node[keys[-1]] = v
  return out


def _assert_close_to(golden, prefix, tree):
  def check(path, x):
    g = golden[prefix + _old_key(jax.tree_util.keystr(path))]
    x = np.asarray(x).reshape(g.shape)
    if np.issubdtype(g.dtype, np.floating):
      np.testing.assert_allclose(
        x, g, rtol=RTOL, atol=ATOL, err_msg=prefix + jax.tree_util.keystr(path)
      )
    else:
      np.testing.assert_array_equal(x, g, err_msg=prefix + jax.tree_util.keystr(path))

  jax.tree_util.tree_map_with_path(check, tree)


# metric of the new step -> the old step's name (the old 'kl' held each mode's latent term)
_METRIC_NAMES = {"wae": {"wae/w2": "kl"}, "aae": {"aae/adversarial_ce": "kl"}}
_SHARED_METRICS = ("loss", "recon", "bpc", "beta", "p_tuple", "p_string", "grad_norm")


@pytest.fixture(scope="module", params=["ms2_aug", "plain", "capacity", "wae", "aae"])
def case(request, golden):
  name = request.param
  task = loop.prepare(small_config(name))
  return name, task, _golden_state(golden, name, task)


def test_loss_and_gradients_equal_the_old_trainer(case, golden):
  name, task, state = case
  setup = task.trainer.setup
  b0 = _batch(golden, name, "batch0")
  (loss, (_, stats, terms)), grads = jax.jit(
    lambda s, b: step_lib.loss_and_grads(setup, s, setup.levels.split(b), None)
  )(state, b0)
  np.testing.assert_allclose(loss, golden[f"{name}/loss"], rtol=RTOL)
  _assert_close_to(golden, f"{name}/grads", grads)
  _assert_close_to(golden, f"{name}/stats_after_loss", stats["batch_stats"])
  np.testing.assert_allclose(terms.z, golden[f"{name}/z"], rtol=RTOL, atol=ATOL)


def test_training_steps_equal_the_old_trainer(case, golden):
  name, task, state = case
  if name not in ("ms2_aug", "aae"):
    pytest.skip(
      "the step is compared on the multiscale + augmented and the AAE configs; "
      "the loss and gradients of every config are compared above"
    )
  trainer = task.trainer
  b0 = _batch(golden, name, "batch0")
  state1, metrics, _ = trainer.step_fn(0)(jax.tree.map(jnp.copy, state), b0)
  _assert_close_to(golden, f"{name}/state1.params", state1.params)
  _assert_close_to(golden, f"{name}/state1.batch_stats", state1.model_state["batch_stats"])
  if name == "aae":
    _assert_close_to(
      golden, f"{name}/state1.objective_state.params", state1.objective_state["aae"].params
    )
  else:
    _assert_close_to(
      golden, f"{name}/state1.objective_state.z", state1.objective_state["augmented"].z
    )
  names = dict(zip(_SHARED_METRICS, _SHARED_METRICS), **_METRIC_NAMES.get(name, {"kl": "kl"}))
  for new, old in names.items():
    np.testing.assert_allclose(
      metrics[new], golden[f"{name}/metrics1['{old}']"], rtol=RTOL, atol=ATOL, err_msg=new
    )
  if name == "ms2_aug":  # the augmented phase: variants decoded from z_aug, then re-drawn
    assert trainer.phase_at(3) == "augmented"
    state2, metrics2, _ = trainer.step_fn(3)(state1, _batch(golden, name, "batch1"))
    _assert_close_to(golden, f"{name}/state2.params", state2.params)
    _assert_close_to(
      golden, f"{name}/state2.objective_state.z", state2.objective_state["augmented"].z
    )
    np.testing.assert_allclose(metrics2["loss"], golden[f"{name}/metrics2['loss']"], rtol=RTOL)


def test_generation_reconstruction_and_eval_loss_equal_the_old_trainer(case, golden):
  name, task, state = case
  if name != "ms2_aug":
    pytest.skip("decoding does not depend on the objective: compared on one config")
  v = task.variables(state)
  _assert_close_to(golden, f"{name}/generated", task.generate(v, jax.random.key(42), 8, False))
  _assert_close_to(
    golden, f"{name}/generated_greedy", task.generate(v, jax.random.key(43), 8, True)
  )
  _assert_close_to(
    golden,
    f"{name}/reconstructed",
    task.reconstruct(v, jax.random.key(44), _batch(golden, name, "batch0"), False),
  )
  ev = task.eval_loss(state, _batch(golden, name, "batch0"), 1000)
  for k in ("loss", "recon", "kl", "bpc"):
    np.testing.assert_allclose(ev[k], golden[f"{name}/eval_loss['{k}']"], rtol=RTOL, err_msg=k)
  chex.assert_shape(ev["loss"], ())


def test_initial_state_equals_the_old_trainers(case, golden):
  """The same seed starts from the same parameters, so whole runs reproduce too."""
  name, task, _ = case
  if name not in ("ms2_aug", "aae"):
    pytest.skip(
      "initialisation does not depend on the beta-family objective: compared on "
      "the multiscale (2 levels) and the AAE (discriminator) configs"
    )
  fresh = task.trainer.create_state(0, _batch(golden, name, "batch0"))
  _assert_close_to(golden, f"{name}/state0.params", fresh.params)
  _assert_close_to(golden, f"{name}/state0.batch_stats", fresh.model_state["batch_stats"])
  if name == "aae":
    _assert_close_to(
      golden, f"{name}/state0.objective_state.params", fresh.objective_state["aae"].params
    )
