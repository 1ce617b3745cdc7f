"""train.validation (train/validation.py): the check against transcriptions of the two
reference codes' epoch loops, the lr scale against optax with a scaled lr, and the loop on the
text smoke task: held-out rows, the kept best checkpoint (what evaluation loads), halvings that
reload the best parameters, the early stop, and a resume (also after a kill between the two
saves of a check) bit-identical to an uninterrupted run."""

import json
import os
import shutil

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from alala_jax.data import batching
from alala_jax.train import loop, validation
from experiments.configs import text as text_config


def savae_reference(vals, min_epochs=15, lr=1.0):
  """harvardnlp/sa-vae train_text.py's epoch loop, transcribed: (lr after each epoch, best
  epoch after each epoch, the epoch it stops at or None)."""
  best_val, best_epoch, decay, lrs, bests = 1e5, 0, 0, [], []
  for epoch, val in enumerate(vals, start=1):
    if val < best_val:
      best_val, best_epoch = val, epoch
    elif epoch > min_epochs:
      decay = 1
    if decay == 1:
      lr = lr * 0.5
    lrs.append(lr)
    bests.append(best_epoch)
    if decay == 1 and lr < 0.02:
      return lrs, bests, epoch
  return lrs, bests, None


def lagging_reference(vals, decay_epoch=2, max_decay=5, lr=1.0):
  """jxhe/vae-lagging-encoder text.py's epoch loop (0-based epochs, `epoch >= 15`): (lr, best
  epoch (1-based), whether the best parameters were reloaded, per epoch; the stop epoch)."""
  ref, not_improved, decay_cnt, best = 1e4, 0, 0, 1e4
  lrs, bests, reloads, best_epoch = [], [], [], 0
  for epoch, loss in enumerate(vals):
    reload = False
    if loss < best:
      best, best_epoch = loss, epoch + 1
    if loss > ref:
      not_improved += 1
      if not_improved >= decay_epoch and epoch >= 15:
        ref, not_improved, lr = loss, 0, lr * 0.5
        reload, decay_cnt = True, decay_cnt + 1
    else:
      not_improved, ref = 0, loss
    lrs.append(lr)
    bests.append(best_epoch)
    reloads.append(reload)
    if decay_cnt == max_decay:
      return lrs, bests, reloads, epoch + 1
  return lrs, bests, reloads, None


def _run_rule(vals, rule):
  host = validation.to_host(validation.init_state())
  lrs, bests, reloads, stop = [], [], [], None
  for s, v in enumerate(vals, start=1):
    host, ev = validation.check(host, v, s, rule)
    lrs.append(host["lr_scale"])
    bests.append(host["best_step"])
    reloads.append(ev.restore)
    if ev.stop:
      stop = s
      break
  return lrs, bests, reloads, stop


def _curves(seed):
  """Validation curves that fall, then wander and rise (float32 values; seeds >= 6: rounded to
  0.5, so that equal values, ties with the best and the reference, occur)."""
  rng = np.random.default_rng(seed)
  n = 60
  t = np.arange(n)
  base = 40.0 - 10 * (1 - np.exp(-t / 6)) + 0.02 * np.maximum(t - 20, 0) ** 1.3
  vals = base + rng.normal(0, 0.4, n)
  if seed >= 6:
    vals = np.round(vals * 2) / 2
    assert len(set(vals[15:].tolist())) < n - 15  # ties after the 15-epoch floor
  return list(np.float32(vals).astype(float))


@pytest.mark.parametrize("seed", range(12))
def test_check_follows_paper_004_code(seed):
  vals = _curves(seed)
  rule = validation.Rule(
    "valid/bound", every=1, min_steps=15, patience=1, sticky=True, max_decays=6
  )
  lrs, bests, _, stop = _run_rule(vals, rule)
  ref_lrs, ref_bests, ref_stop = savae_reference(vals)
  assert stop == ref_stop and stop is not None
  np.testing.assert_array_equal(lrs, ref_lrs[: len(lrs)])
  np.testing.assert_array_equal(bests, ref_bests[: len(bests)])


@pytest.mark.parametrize("seed", range(12))
def test_check_follows_paper_001_code(seed):
  vals = _curves(seed)
  rule = validation.Rule(
    "valid/bound", every=1, min_steps=15, patience=2, sticky=False, max_decays=5, restore_best=True
  )
  lrs, bests, reloads, stop = _run_rule(vals, rule)
  ref_lrs, ref_bests, ref_reloads, ref_stop = lagging_reference(vals)
  assert stop == ref_stop
  n = len(lrs)
  np.testing.assert_array_equal(lrs, ref_lrs[:n])
  np.testing.assert_array_equal(bests, ref_bests[:n])
  np.testing.assert_array_equal(reloads, ref_reloads[:n])
  assert any(reloads)


def test_rules_set_by_name_and_bad_rules_refused():
  c = text_config.get_config("smoke")
  assert validation.from_config(c, 10) is None
  validation.savae_rule(c)
  r = validation.from_config(c, 10)  # epochs of 10 steps, as the run finds its data
  assert (r.every, r.min_steps, r.patience, r.sticky, r.max_decays) == (10, 150, 1, True, 6)
  assert validation.from_config(c, 7).min_steps == 105
  c.train.validation.min_steps = 200  # the larger floor wins
  assert validation.from_config(c, 10).min_steps == 200
  c.train.validation.every = 4
  assert validation.from_config(c, 7).every == 4
  with pytest.raises(ValueError, match="patience"):
    validation.Rule("valid/bound", every=1, patience=0)
  with pytest.raises(ValueError, match="factor"):
    validation.Rule("valid/bound", every=1, factor=1.5)
  c.train.validation.bogus = 1
  with pytest.raises(ValueError, match="bogus"):
    validation.from_config(c, 10)


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_lr_scale_equals_a_scaled_sgd_lr(momentum):
  """Scaling the updates by s is SGD (with momentum) at lr x s, across a change of s."""
  g = [jnp.array([1.0, -2.0, 0.5]), jnp.array([0.3, 0.1, -1.0]), jnp.array([2.0, 0.0, 1.0])]
  scales = [1.0, 0.5, 0.25]
  tx = optax.sgd(1.0, momentum=momentum or None)
  st, p = tx.init(g[0]), jnp.zeros(3)
  for gi, s in zip(g, scales):
    u, st = tx.update(gi, st)
    vstate = {"lr_scale": jnp.asarray(s, jnp.float32)}
    p = optax.apply_updates(p, validation.scale_updates(u, vstate))
  # by hand: buf <- momentum buf + g; p <- p - lr_t buf
  buf, q = np.zeros(3), np.zeros(3)
  for gi, s in zip(g, scales):
    buf = momentum * buf + np.asarray(gi)
    q = q - s * buf
  np.testing.assert_allclose(p, q, rtol=1e-6)
  assert validation.scale_updates(g, None) is g


EVERY = 3


def _config(steps=18):
  c = text_config.get_config("smoke")
  c.train.num_steps = steps
  c.train.log_every = c.train.checkpoint_every = 6
  c.train.eval_every = 0
  v = c.train.validation
  v.metric, v.every, v.min_steps, v.patience = "valid/bound", EVERY, 0, 1
  v.sticky, v.max_decays, v.restore_best = False, 0, True
  c.optim.learning_rate = 3.0  # a bumpy held-out curve: halvings within a few checks
  return c


@pytest.fixture(scope="module")
def task():
  return loop.prepare(_config())


def test_train_step_applies_the_lr_scale(task):
  """The compiled step moves the parameters by lr_scale x the unscaled update (SGD)."""
  tr = task.trainer
  batch = batching.batch_at(task.train_arrays, 0, _config().train.batch_size, 0)
  state = tr.create_state(0, batch)
  deltas = []
  for s in (1.0, 0.25):
    v = dict(state.validation, lr_scale=jnp.asarray(s, jnp.float32))
    start = jax.tree.map(jnp.copy, state.replace(validation=v))  # the step donates its state
    new, _, _ = tr.step_fn(0)(start, batch)
    deltas.append(jax.tree.map(lambda a, b: a - b, new.params, state.params))
  chex.assert_trees_all_close(jax.tree.map(lambda d: 0.25 * d, deltas[0]), deltas[1], atol=1e-6)
  assert max(float(jnp.max(jnp.abs(d))) for d in jax.tree.leaves(deltas[1])) > 0


def _valid_rows(wd):
  rows = [json.loads(line) for line in open(os.path.join(wd, "metrics.jsonl"))]
  return [{k: v for k, v in r.items() if k != "time"} for r in rows if r["split"] == "valid"]


@pytest.fixture(scope="module")
def straight(task, tmp_path_factory):
  wd = str(tmp_path_factory.mktemp("straight"))
  logs = []
  state, _ = loop.train(_config(), wd, task, log=logs.append)
  return wd, state, logs


def test_loop_checks_keep_the_best_and_halve(task, straight):
  wd, state, logs = straight
  rows = _valid_rows(wd)
  assert [r["step"] for r in rows] == list(range(EVERY, 19, EVERY))
  # the rule replayed on the logged held-out values gives the run's state
  rule = validation.from_config(_config(), 10)
  host = validation.to_host(validation.init_state())
  for r in rows:
    host, _ = validation.check(host, r["valid/bound"], r["step"], rule)
    assert r["lr_scale"] == host["lr_scale"] and r["best_step"] == host["best_step"]
  assert validation.to_host(state.validation) == host
  assert host["decays"] >= 1, "the test needs a halving: raise the lr"
  assert any("reloaded the parameters of step" in line for line in logs)
  # the bound is nll + kl, row-weighted over the whole validation split
  n_valid = batching.num_rows(task.valid_arrays)
  assert n_valid % _config().train.batch_size != 0  # the partial last batch counts
  np.testing.assert_allclose(
    rows[0]["valid/bound"], rows[0]["valid/nll"] + rows[0]["valid/kl"], rtol=1e-6
  )
  # the best checkpoint is what the model of the workdir is
  best = loop.restore_state(wd, _config(), state)
  assert int(best.step) == host["best_step"]
  m = task.validation_metrics(best, _config())
  assert np.float32(m["valid/bound"]) == np.float32(host["best"])


def test_loop_restores_best_params_with_fresh_optimiser(task, straight, tmp_path):
  """A halving with restore_best: the next step starts from the best parameters."""
  wd, state, _ = straight
  rows = _valid_rows(wd)
  reload = next(r for r in rows if r["decays"] >= 1)
  s, best_step = reload["step"], reload["best_step"]
  # rerun to the check with the halving, then compare with the best checkpoint's params
  wd2 = str(tmp_path / "to_check")
  at, _ = loop.train(_config(), wd2, task, log=lambda _: None, stop_at=s)
  best = loop.restore_best(wd2, _config(), at)
  assert int(best.step) == best_step
  chex.assert_trees_all_equal(at.params, best.params)
  # a new optimiser's momentum, but the lr schedule's count carries on (s updates so far)
  is_sched = lambda x: isinstance(x, optax.ScaleByScheduleState)
  expected = jax.tree.map(
    lambda x: x._replace(count=jnp.full_like(x.count, s)) if is_sched(x) else x,
    task.trainer.setup.tx.init(at.params),
    is_leaf=is_sched,
  )
  assert any(is_sched(x) for x in jax.tree.leaves(expected, is_leaf=is_sched))
  chex.assert_trees_all_equal(at.opt_state, expected)


def test_fresh_optimiser_state_keeps_the_schedule_and_skip_counts():
  """Adam with a decaying lr rebuilt after 3 updates (one skipped): its moments restart, the
  lr continues at schedule(2) and the skipped update stays counted."""
  from alala_jax.train import optim

  sched = optax.exponential_decay(0.1, 1, 0.5)
  tx = optax.apply_if_finite(optax.adam(sched), 100)
  p = jnp.array([1.0, -1.0])
  st = tx.init(p)
  for g in ([1.0, 2.0], [np.nan, 0.0], [0.5, -1.0]):
    _, st = tx.update(jnp.array(g), st, p)
  fresh = optim.fresh_state(tx, p, st)
  assert int(fresh.total_notfinite) == 1 and int(fresh.notfinite_count) == 0
  adam, count = fresh.inner_state[0], fresh.inner_state[-1].count
  assert int(count) == 2 and int(adam.count) == 0  # schedule steps vs Adam's bias correction
  chex.assert_trees_all_equal(adam.mu, jnp.zeros(2))
  u, _ = tx.update(jnp.array([1.0, 1.0]), fresh, p)
  # a fresh Adam's first step is lr * g / (|g| + eps) = lr at schedule(2) = 0.1 / 4
  np.testing.assert_allclose(u, [-0.025, -0.025], rtol=1e-5)


def test_resume_is_bit_identical_also_after_a_kill_between_saves(task, straight, tmp_path):
  wd, state, _ = straight
  rows = _valid_rows(wd)
  n = _config().train.num_steps  # a new best with steps left to resume after it:
  improved = [r["step"] for r in rows if r["best_step"] == r["step"] and r["step"] < n][-1]
  for stop, drop_best in ((7, False), (improved, True)):
    wd2 = str(tmp_path / f"resume{stop}")
    loop.train(_config(), wd2, task, log=lambda _: None, stop_at=stop)
    if drop_best:  # killed after the regular checkpoint of the check, before the best one
      shutil.rmtree(os.path.join(wd2, validation.BEST_DIR, str(stop)))
    resumed, _ = loop.train(_config(), wd2, task, log=lambda _: None)
    chex.assert_trees_all_equal(resumed.params, state.params)
    chex.assert_trees_all_equal(resumed.validation, state.validation)
    assert _valid_rows(wd2) == rows
    chex.assert_trees_all_equal(
      loop.restore_state(wd2, _config(), state).params,
      loop.restore_state(wd, _config(), state).params,
    )


def test_a_best_checkpoint_left_by_another_run_is_removed(task, straight, tmp_path):
  """Regular checkpoints deleted to start again, the old best left behind: the new run must
  neither evaluate nor reload it."""
  wd, _, _ = straight
  wd2 = str(tmp_path / "again")
  shutil.copytree(os.path.join(wd, validation.BEST_DIR), os.path.join(wd2, validation.BEST_DIR))
  logs = []
  state, _ = loop.train(_config(), wd2, task, log=logs.append, stop_at=EVERY)
  assert any("removing best checkpoint(s)" in x for x in logs)
  assert validation.to_host(state.validation)["best_step"] == EVERY
  assert int(loop.restore_state(wd2, _config(), state).step) == EVERY


def test_sticky_rule_with_restore_best_halves_on_a_new_best(task, tmp_path):
  """Once a sticky rule decays, a check that sets a new best halves too: the reload is then of
  this very step (not yet in the best checkpoint), so it keeps the parameters and only starts
  fresh optimiser states."""
  c = _config()
  c.train.validation.sticky = True
  logs = []
  state, _ = loop.train(c, str(tmp_path), task, log=logs.append)
  assert any("(new best)" in x and "fresh optimiser states" in x for x in logs), logs
  assert int(state.step) == c.train.num_steps


def test_early_stop_ends_training_and_stays_stopped(task, tmp_path):
  c = _config()
  c.train.validation.sticky, c.train.validation.max_decays = True, 1
  wd = str(tmp_path / "stop")
  logs = []
  state, _ = loop.train(c, wd, task, log=logs.append)
  host = validation.to_host(state.validation)
  assert host["stopped"] and host["decays"] == 1
  assert int(state.step) < c.train.num_steps and int(state.step) % EVERY == 0
  again, _ = loop.train(c, wd, task, log=logs.append)  # a rerun does not train on
  assert int(again.step) == int(state.step)
  assert any("stopped at step" in line for line in logs)


def test_metric_not_in_task_is_named(task, tmp_path):
  c = _config()
  c.train.validation.metric = "valid/nonsense"
  with pytest.raises(KeyError, match="valid/nonsense"):
    loop.train(c, str(tmp_path), task, log=lambda _: None)
