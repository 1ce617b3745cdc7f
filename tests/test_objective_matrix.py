"""The test matrix of the training core: every registered objective (and augmented training
around one, and a 2-level multiscale run of one) on every model of the interface runs one
jitted training step, gets a finite loss and compiles once (`chex.assert_max_traces`)."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alala_jax import config as base_config
from alala_jax import objectives
from alala_jax import schema as sc
from alala_jax.data import codec
from alala_jax.data import images as image_data
from alala_jax.models.image import DenseImageVAE, ImageVAEConfig
from alala_jax.tasks.records import make_model
from alala_jax.train import state as state_lib
from alala_jax.train import step as step_lib
from tests.conftest import Person

B = 8
# per model: the GECO constraint on one of its per-field recon terms
GECO = {"record": "(height)<=0.5,name<=0.5", "image": "pixels<=20"}


def _config(name, model_kind, augmented=False, levels=1):
  c = base_config.base_config()
  c.objective.name = name
  c.objective.beta_schedule, c.objective.beta_end = "constant", 0.5
  c.objective.geco.constraints = GECO[model_kind]
  c.objective.augmented.enabled = augmented
  c.objective.augmented.n_augmented = 4
  c.objective.augmented.gen_start_fraction = 0.0
  c.objective.multiscale.n_levels = levels
  c.train.batch_size, c.train.num_steps = B, 10
  c.model.latent_dim, c.model.char_dim = 4, 2
  return c


def _record(config):
  records = [Person(name=f"n{i % 5}", height=float(i) + 0.3 * (i % 3)) for i in range(20)]
  root = sc.parse_schema(Person)
  spec = codec.build_spec(root, records)
  arrays, _ = codec.encode(root, spec, records[:B])
  return make_model(root, spec, config), arrays


def _image(config):
  data = image_data.synthetic_images(40, 4, seed=0)
  model = DenseImageVAE(
    ImageVAEConfig(num_pixels=16, latent_dim=config.model.latent_dim, hidden=(8,))
  )
  return model, np.asarray(data.train[:B])


CASES = [(name, kind) for name in objectives.names() for kind in ("record", "image")]
CASES += [(f"beta+{w}", kind) for w in ("augmented", "multiscale") for kind in ("record", "image")]


@pytest.mark.parametrize("name,kind", CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_one_jitted_step_is_finite_and_compiles_once(name, kind):
  augmented = name.endswith("+augmented")
  levels = 2 if name.endswith("+multiscale") else 1
  config = _config(name.split("+")[0], kind, augmented, levels)
  model, batch = (_record if kind == "record" else _image)(config)
  objective = objectives.build(config, model)
  setup = state_lib.make_setup(model, objective, config)
  state = state_lib.create_state(setup, 0, batch)
  initial = jax.tree.map(np.asarray, state.params)
  phase = objective.phase_at(1)
  chex.clear_trace_counter()
  assert phase == ("augmented" if augmented else "train")

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(state, batch):
    return step_lib.train_step(state, batch, setup=setup, phase=phase)

  for _ in range(2):
    new, metrics, _ = step(state, batch)
    state = new
  assert np.isfinite(float(metrics["loss"])), metrics
  assert int(state.step) == 2 and int(state.bad_step) == -1
  moved = jax.tree.leaves(jax.tree.map(lambda a, b: bool(np.any(a != b)), state.params, initial))
  assert any(moved)
  if name == "geco":  # Algorithm 1 ran: C_ma initialised from the batch, lambda moved
    g = state.objective_state["geco"]
    assert int(g.count[0]) == 2 and np.all(np.asarray(g.lagrange) != 1.0)
  if augmented:  # the variants were decoded and trained on
    assert int(state.objective_state["augmented"].z.shape[1]) == 4
  for col, names in model.level_collections.items():  # the declared entries: [levels, ...]
    tree = state.params if col == "params" else state.model_state[col]
    for name in names:
      assert all(a.shape[0] == levels for a in jax.tree.leaves(tree[name]))


def test_every_objective_is_registered():
  assert set(objectives.names()) >= {
    "beta",
    "inverted",
    "capacity",
    "free_bits",
    "geco",
    "wae",
    "aae",
  }
  with pytest.raises(ValueError, match="registered objectives"):
    objectives.make("elbo++", _config("beta", "image"), None)


def test_unknown_objective_name_in_config_is_a_clear_error():
  config = _config("beta", "image")
  config.objective.name = "betaa"
  model, _ = _image(config)
  with pytest.raises(ValueError, match="unknown objective 'betaa'"):
    objectives.build(config, model)


def test_models_are_frozen():
  model, _ = _image(_config("beta", "image"))
  with pytest.raises(dataclasses.FrozenInstanceError):
    model.config = None


def test_non_finite_loss_with_finite_gradients_applies_nothing():
  """A loss that is inf behind a stop-gradient has finite gradients: the step still skips the
  update, keeps the optimiser state and counts the skip (the optimiser sees poisoned grads)."""
  config = _config("beta", "image")
  model, batch = _image(config)
  inner = objectives.build(config, model)

  def loss(state, terms, *, step, level):
    value, metrics = inner.loss(state, terms, step=step, level=level)
    return value + jax.lax.stop_gradient(jnp.where(step == 0, jnp.inf, 0.0)), metrics

  setup = state_lib.make_setup(model, inner._replace(loss=loss), config)
  state = state_lib.create_state(setup, 0, batch)
  before = jax.tree.map(np.asarray, (state.params, state.opt_state))
  step = jax.jit(lambda s, b: step_lib.train_step(s, b, setup=setup, phase="train"))
  state, metrics, _ = step(state, batch)
  assert not np.isfinite(float(metrics["loss"])) and np.isfinite(float(metrics["grad_norm"]))
  assert int(state.bad_step) == 0 and int(state.opt_state.total_notfinite) == 1
  chex.assert_trees_all_equal(jax.tree.map(np.asarray, state.params), before[0])
  chex.assert_trees_all_equal(
    jax.tree.map(np.asarray, state.opt_state.inner_state),
    jax.tree.map(np.asarray, before[1].inner_state),
  )
  state, metrics, _ = step(state, batch)  # step 1 is finite and applies
  assert np.isfinite(float(metrics["loss"])) and int(state.opt_state.total_notfinite) == 1


def test_ema_parameters_follow_the_parameters():
  config = _config("beta", "image")
  config.optim.ema_decay = 0.9
  model, batch = _image(config)
  setup = state_lib.make_setup(model, objectives.build(config, model), config)
  state = state_lib.create_state(setup, 0, batch)
  chex.assert_trees_all_equal(state.ema_params, state.params)
  step = jax.jit(lambda s, b: step_lib.train_step(s, b, setup=setup, phase="train"))
  ema = jax.tree.map(np.asarray, state.ema_params)
  for _ in range(3):
    state, _, _ = step(state, batch)
    ema = jax.tree.map(lambda e, p: 0.9 * e + 0.1 * np.asarray(p), ema, state.params)
  chex.assert_trees_all_close(state.ema_params, ema, rtol=1e-5, atol=1e-7)
  assert not np.allclose(jax.tree.leaves(state.ema_params)[0], jax.tree.leaves(state.params)[0])
