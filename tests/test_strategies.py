"""Strategies (train/strategies.py): aggressive training's inner loop against a transcription of
paper 001's reference loop, its exit rule, encoder-/decoder-only steps on the text VAE, and a
resume in the middle of an aggressive phase (data_position != step)."""

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alala_jax.data import batching
from alala_jax.models.base import DECODER, ENCODER
from alala_jax.train import loop, strategies
from alala_jax.train.state import TrainState
from experiments.configs import text as text_config


def _reference_inner_steps(losses, window, cap):
  """vae-lagging-encoder text.py's inner loop (sub_iter from 1, `while sub_iter < 100`, window
  check after the step with per-word losses), transcribed: returns the steps it runs."""
  sub_iter, pre, cur, words, steps = 1, 1e4, 0.0, 0, 0
  it = iter(losses)
  while sub_iter < cap:
    loss, n = next(it)
    steps += 1
    words += n
    cur += loss * n
    if sub_iter % window == 0:
      cur = cur / words
      if pre - cur < 0:
        break
      pre, cur, words = cur, 0.0, 0
    sub_iter += 1
  return steps


class _FakeTrainer:
  """Steps that return scripted (loss per unit, units) pairs and record what ran."""

  def __init__(self, losses):
    self.losses, self.calls = list(losses), []

  def phase_at(self, step):
    return "train"

  def phase_step(self, phase, update="all", *, means=False):
    def run(state, batch):
      self.calls.append((update, batch))
      if update == ENCODER:
        loss, units = self.losses[len([c for c in self.calls if c[0] == ENCODER]) - 1]
        return state, {"loss": loss * units, "units": units}, None
      return state, {"loss": 0.0}, None

    return run

  def step_fn(self, step, *, means=False):
    return self.phase_step(self.phase_at(step), means=means)


def _scripted_losses(seed):
  """(200 (loss per unit, units) pairs, window, cap) of one seed: losses that fall, then
  plateau with noise, so that windows stop improving at a random point."""
  rng = np.random.default_rng(seed)
  t = np.arange(200)
  per_unit = 5 * np.exp(-t / rng.uniform(5, 60)) + 0.05 * rng.standard_normal(200) + 1
  units = rng.integers(5, 30, 200).astype(float)
  window, cap = int(rng.choice([3, 5, 15])), int(rng.choice([20, 100]))
  return list(zip(per_unit, units)), window, cap


@pytest.mark.parametrize("seed", range(6))
def test_inner_loop_matches_the_reference_loop(seed):
  losses, window, cap = _scripted_losses(seed)
  agg = strategies.Aggressive(check_every=10, window=window, max_inner=cap, inner_loop="host")
  trainer = _FakeTrainer(losses)
  host = {"aggressive": True}
  _, metrics, position = agg.advance(trainer, None, 0, 40, lambda p: p, host)
  want = _reference_inner_steps(losses, window, cap)
  kinds = [c[0] for c in trainer.calls]
  assert kinds == [ENCODER] * want + [DECODER]
  assert metrics["inner_steps"] == want and position == 40 + want
  # the first inner step and the decoder step share the batch at the starting position;
  # later inner steps read the following batches of the stream
  assert [c[1] for c in trainer.calls] == list(range(40, 40 + want)) + [40]


def _scripted_step(losses):
  """A pure encoder step for `encoder_loop`: the batch is a data position, whose scripted
  (loss per unit, units) it returns as (loss * units, units); the state (steps, in_order)
  counts steps and whether step j read position j."""
  per_unit, units = (jnp.asarray(a, jnp.float32) for a in np.asarray(losses).T)

  def step(state, batch):
    count, in_order = state
    i = batch[0, 0]  # batch [1, 1]: one row of [position]
    new = (count + 1, in_order & (i == count))
    return new, {"loss": per_unit[i] * units[i], "units": units[i]}, None

  return step


@pytest.mark.parametrize("seed", range(6))
def test_device_inner_loop_matches_the_reference_loop(seed):
  """`encoder_loop` (one lax.while_loop) runs the reference's steps on scripted losses, and
  reads the batches of the positions after the first in order."""
  losses, window, cap = _scripted_losses(seed)
  data = jnp.arange(200)[:, None]  # row i holds data position i
  idx = np.arange(cap - 1)[:, None]  # the batch of inner step j is row j
  loop_fn = jax.jit(
    functools.partial(strategies.encoder_loop, _scripted_step(losses), window=window, max_inner=cap)
  )
  (count, in_order), steps = loop_fn((jnp.int32(0), jnp.bool_(True)), data, idx)
  want = _reference_inner_steps(losses, window, cap)
  assert int(steps) == want and int(count) == want and bool(in_order)


def test_device_inner_loop_equals_the_host_loop(text_setup):
  """The same aggressive outer step with the inner loop on the host and on the device: the
  same number of inner steps, counters and (to float tolerance) parameters."""
  config, task = text_setup
  trainer = task.trainer
  stream = batching.Stream(task.train_arrays, config.train.batch_size, config.seed)
  out = {}
  for inner in strategies.INNER_LOOPS:
    agg = dataclasses.replace(trainer.setup.strategy, inner_loop=inner)
    state = trainer.create_state(0, stream(0))
    host = agg.host_state(state)
    state, metrics, position = agg.advance(trainer, state, 0, 0, stream, host)
    out[inner] = (state, int(metrics["inner_steps"]), position)
  (s_host, n_host, p_host), (s_dev, n_dev, p_dev) = out["host"], out["device"]
  assert n_host == n_dev >= 2 and p_host == p_dev == n_host
  assert int(s_dev.data_position) == int(s_host.data_position) == n_host
  chex.assert_trees_all_close(s_dev.params, s_host.params, rtol=1e-4, atol=1e-5)
  chex.assert_trees_all_close(s_dev.opt_state, s_host.opt_state, rtol=1e-4, atol=1e-5)


def test_device_inner_loop_needs_the_device_stream():
  agg = strategies.Aggressive(check_every=10)  # inner_loop 'device' by default
  with pytest.raises(TypeError, match="Stream"):
    agg.advance(_FakeTrainer([]), None, 0, 0, lambda p: p, {"aggressive": True})


def test_not_aggressive_is_one_joint_step():
  trainer = _FakeTrainer([])
  agg = strategies.Aggressive(check_every=10, inner_loop="host")
  _, _, position = agg.advance(trainer, None, 5, 7, lambda p: p, {"aggressive": False})
  assert trainer.calls == [("all", 7)] and position == 8


class _FakeTask:
  def __init__(self, mis):
    self.mis = iter(mis)

  def heldout_mi(self, state, config):
    return next(self.mis)


SATURATED = [4.8129706, 4.8129735, 4.8129759, 4.812977, 4.812978]  # Vermont's record VAE


@pytest.mark.parametrize(
  "mis, patience, min_rise, left_after",
  [
    ([0.1, 0.3, 0.5, 0.4, 0.9], 1, 0.0, 4),  # text: the first drop
    ([0.1, 0.3, 0.3, 0.2], 1, 0.0, 4),  # equal is not a drop (reference: cur - pre < 0)
    ([0.5, 0.4, 0.6, 0.5, 0.5, 0.55, 0.58], 3, 0.0, 6),  # images-style patience: 3 without a best
    (SATURATED, 1, 0.0, None),  # at the estimator's cap float noise keeps the reference rising
    (SATURATED, 1, 0.01, 2),  # ... and a tolerance ends it at the second check
    ([0.1, 0.3, 0.305, 0.5], 1, 0.01, 3),  # a rise below the tolerance is no new best
  ],
)
def test_leaves_aggressive_mode_when_heldout_mi_stops_rising(mis, patience, min_rise, left_after):
  agg = strategies.Aggressive(check_every=2, patience=patience, min_rise=min_rise)
  state = TrainState(
    *([jax.numpy.zeros((), "int32")] * 2), None, None, None, None, None, None, None
  )
  state = state.replace(strategy_state=agg.init_state())
  host, task = agg.host_state(state), _FakeTask(mis)
  checks, rows = 0, [{"step": 1, "split": "train", "loss": 1.0}]
  for step in range(1, 2 * len(mis) + 1):
    state, host, logged = agg.after_step(task, state, step, host, None)
    if step % 2:
      assert logged == {}
      continue
    if not logged:  # left aggressive mode: no more checks
      break
    checks += 1
    rows.append({"step": step, "split": "strategy", **logged})  # as metrics.jsonl has them
    assert host == agg.host_state(state)  # the checkpointed state follows the host mirror
  if left_after is None:
    assert checks == len(mis) and host["aggressive"]
  else:
    assert checks == left_after and not host["aggressive"]
  # the record table's reading of metrics.jsonl (float32 MI, as the strategy logs it)
  seen, left = strategies.mi_checks(rows)
  assert [s for s, _ in seen] == list(range(2, 2 * checks + 1, 2))
  np.testing.assert_allclose([m for _, m in seen], mis[:checks], rtol=1e-6)
  assert left == (None if left_after is None else 2 * left_after)


@pytest.fixture(scope="module")
def text_setup():
  config = text_config.get_config("smoke,aggressive")
  config.train.num_steps = 10
  config.train.aggressive.check_every = 100  # stays aggressive through the whole run
  task = loop.prepare(config)
  return config, task


def _changed(a, b):
  return jax.tree.map(lambda x, y: bool(np.any(np.asarray(x) != np.asarray(y))), a, b)


def test_encoder_and_decoder_only_steps(text_setup):
  config, task = text_setup
  trainer = task.trainer
  batch = batching.batch_at(task.train_arrays, 0, config.train.batch_size, 0)
  s0 = trainer.create_state(0, batch)
  snap = lambda s: jax.tree.map(np.array, (s.params, s.opt_state))
  p0, o0 = snap(s0)
  s1, _, aux1 = trainer.phase_step("train", ENCODER, means=True)(s0, batch)
  p1, o1 = snap(s1)
  assert (int(s1.step), int(s1.data_position)) == (0, 1)
  changed = _changed(p0, p1)
  assert all(jax.tree.leaves(changed["encoder"])) and not any(jax.tree.leaves(changed["decoder"]))
  inner = lambda o: o.inner_state[1].inner_states  # apply_if_finite(chain(clip, partition))
  assert not any(jax.tree.leaves(_changed(inner(o0)[DECODER], inner(o1)[DECODER])))
  assert any(jax.tree.leaves(_changed(inner(o0)[ENCODER], inner(o1)[ENCODER])))
  # a second inner step at the same `step` draws other latents (the key folds the position)
  s2, _, aux2 = trainer.phase_step("train", ENCODER, means=True)(s1, batch)
  assert not np.allclose(
    np.asarray(aux1["z"]) - np.asarray(aux1["mu"]), np.asarray(aux2["z"]) - np.asarray(aux2["mu"])
  )
  p2, o2 = snap(s2)
  s3, _, _ = trainer.phase_step("train", DECODER)(s2, batch)
  p3, o3 = snap(s3)
  assert (int(s3.step), int(s3.data_position)) == (1, 2)
  changed = _changed(p2, p3)
  assert all(jax.tree.leaves(changed["decoder"])) and not any(jax.tree.leaves(changed["encoder"]))
  assert not any(jax.tree.leaves(_changed(inner(o2)[ENCODER], inner(o3)[ENCODER])))


def test_resume_inside_an_aggressive_phase_is_bit_identical(text_setup, tmp_path):
  config, task = text_setup
  straight, _ = loop.train(config, str(tmp_path / "a"), task)
  loop.train(config, str(tmp_path / "b"), task, stop_at=4)
  logs = []
  resumed, _ = loop.train(config, str(tmp_path / "b"), task, log=logs.append)
  assert any("resumed from checkpoint at step 4" in s for s in logs)
  assert int(resumed.step) == config.train.num_steps
  # inner steps consumed batches without counting steps
  assert int(resumed.data_position) > int(resumed.step)
  assert int(straight.data_position) == int(resumed.data_position)
  assert bool(resumed.strategy_state["aggressive"])
  chex.assert_trees_all_equal(straight.params, resumed.params)
  chex.assert_trees_all_equal(straight.opt_state, resumed.opt_state)
  chex.assert_trees_all_equal(straight.strategy_state, resumed.strategy_state)
  # the plain step never ran: every counted step was an aggressive one
  # (the shared task: earlier tests compiled the host loop's encoder step too)
  compiled = set(task.trainer.compiled_phases())
  assert {"train/encoder_loop/3/8", "train/decoder"} <= compiled  # the device inner loop
  assert not compiled & {"train", "train+means"}


def _other_model_config(name):
  import ml_collections

  from experiments.configs import images as image_config
  from experiments.configs import test as test_config

  c = image_config.get_config("smoke") if name == "images" else test_config.get_config()
  c.train.strategy = "aggressive"
  c.optim.decay_rate = 1.0  # per-half schedules would count inner steps (make_setup refuses)
  c.train.aggressive = ml_collections.ConfigDict(
    dict(window=2, max_inner=5, patience=1, check_every=100)
  )
  if name == "images":  # SA-VAE through the record VAE compiles for minutes: checked by hand
    c.refine = ml_collections.ConfigDict(dict(name="svi", variant="savae", steps=2))
  return c


@pytest.mark.parametrize("name", ["images", "records"])
def test_aggressive_and_savae_run_on_every_model(name):
  """Both are written against the model interface: the image VAE and the record VAE take an
  aggressive outer step (encoder-only inner steps, then a decoder step), the image VAE with
  SA-VAE refinement (on the record VAE it ran once by hand, BUILD_NOTES: its second-order
  compile takes minutes)."""
  config = _other_model_config(name)
  task = loop.prepare(config)
  trainer = task.trainer
  bs = config.train.batch_size
  state = trainer.create_state(0, task.example_batch(bs))
  before = jax.tree.map(np.array, state.params)
  batch_at = batching.Stream(task.train_arrays, bs, 0)
  host = trainer.setup.strategy.host_state(state)
  state, metrics, position = trainer.setup.strategy.advance(trainer, state, 0, 0, batch_at, host)
  assert metrics["inner_steps"] >= 2 and position == metrics["inner_steps"]
  assert (int(state.step), int(state.data_position)) == (1, position)
  assert np.isfinite(float(metrics["loss"]))
  assert ("svi/loss_last" in metrics) == (name == "images")
  labels = trainer.model.partition(state.params)
  changed = jax.tree.leaves(_changed(before, jax.tree.map(np.array, state.params)))
  assert any(c for c, lab in zip(changed, jax.tree.leaves(labels)) if lab == ENCODER)
  assert any(c for c, lab in zip(changed, jax.tree.leaves(labels)) if lab == DECODER)


def test_aggressive_refuses_a_decaying_lr_and_fd_refuses_aux():
  config = _other_model_config("images")
  config.optim.decay_rate = 0.99
  with pytest.raises(ValueError, match="decay_rate"):
    loop.prepare(config)
  config.optim.decay_rate, config.optim.schedule = 1.0, "cosine"
  with pytest.raises(ValueError, match="optim.schedule = 'exponential'"):
    loop.prepare(config)
  from alala_jax import refine

  r = refine.Refinement(refine.SVIConfig(steps=1, gradient="fd"))
  lam = (jax.numpy.zeros((2, 3)),) * 2
  with pytest.raises(ValueError, match="aux"):
    r.svi(None, {"params": {}}, None, {"enc": 1}, lam, jax.random.key(0), kl_weight=1.0, train=True)
