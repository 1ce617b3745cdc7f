"""Decisions on held-out data, for every task and model: keep the checkpoint of the best held-out
bound, halve the learning rate when it stops improving, stop training after the last halving.

`config.train.validation` (off while `metric` is ''):

  metric       the held-out number to minimise, a key of `Task.validation_metrics`:
               'valid/bound' (-ELBO at KL weight 1 in the model's loss units, the refined
               posterior's when SVI runs at evaluation), 'valid/loss' (the objective's),
               'valid/nll', 'valid/kl'; 'test/...' on a task without a validation split
  every        counted steps between checks (0: one epoch of the training set)
  min_steps    no halving at a check before or at this step
  min_epochs   the same floor in epochs of the training set, resolved when the run starts
               (the larger of the two counts; the references: 15 epochs)
  patience     checks without improving on the reference value before a halving
  sticky       once a halving has happened, halve at every later check (paper 004's code)
  factor       the lr multiplier of a halving (0.5)
  max_decays   stop training at the check that makes this many halvings (0: never stop)
  restore_best a halving reloads the best checkpoint's parameters and starts fresh optimiser
               states (paper 001's code); the lr schedules' step counts and the skipped-step
               counters carry on (a decaying lr does not restart)

At each check with held-out value v at step s (pure host logic, `check`):

  if v < best:                     best, best_step <- v, s     (the kept best checkpoint)
  if v < ref (not sticky: v <= ref): ref, stale <- v, 0        (ref: best since the last
  else:                            stale <- stale + 1           halving, if not sticky)
  if s > min_steps and stale >= patience:   decaying <- True (sticky) / halve now
  (min_steps: the larger of min_steps and min_epochs x the steps of an epoch)
  if halving:   lr_scale <- lr_scale x factor; decays += 1;
                not sticky: ref, stale <- v, 0;  restore_best: reload the best parameters
  stop <- max_decays > 0 and decays >= max_decays

The two references, as configs (`savae_rule`, `lagging_rule`; E = steps per epoch):
* paper 004's code (harvardnlp/sa-vae train_text.py): best checkpoint by the validation
  bound; after `min_epochs` 15 the first check that does not improve on the best starts the
  decay and from then on every epoch halves the lr; training stops once the lr is below 0.02
  (from lr 1: at the 6th halving) -> patience 1, sticky, min_epochs 15, max_decays 6.
* paper 001's code (jxhe/vae-lagging-encoder text.py): halve when the validation loss has not
  improved for `decay_epoch` 2 epochs (against the best since the last halving, which a
  halving resets to the current value), from epoch 15 on (0-based, i.e. after 16 epochs:
  the same checks as `s > 15 E`), reloading the best parameters with new optimisers; stop at
  the 5th halving -> patience 2, not sticky, min_epochs 15, max_decays 5, restore_best.
  (Paper 001 App B states the rule without the 15-epoch floor.)

The lr scale multiplies every parameter update of the model's optimiser in the train step
(`step.train_step`), so it scales the lr of SGD (with or without momentum: the momentum trace
accumulates gradients) and Adam exactly; an objective's own optimiser (the AAE's
discriminator) is not scaled. The state lives in `TrainState.validation` (checkpointed: a
resumed run decides exactly as an uninterrupted one; values are compared as the float32 they
are stored as).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

BEST_DIR = "best_checkpoint"  # in the workdir: the kept best checkpoint (orbax, one step)


@dataclasses.dataclass(frozen=True)
class Rule:
  """`config.train.validation` as data (module doc)."""

  metric: str
  every: int
  min_steps: int = 0
  min_epochs: float = 0.0
  patience: int = 1
  sticky: bool = False
  factor: float = 0.5
  max_decays: int = 0
  restore_best: bool = False

  def __post_init__(self):
    if not self.metric:
      raise ValueError("a validation rule needs a metric")
    if (
      self.every < 1
      or self.patience < 1
      or self.min_steps < 0
      or self.min_epochs < 0
      or self.max_decays < 0
    ):
      raise ValueError(
        "train.validation needs every >= 1, patience >= 1, min_steps >= 0, min_epochs >= 0, "
        f"max_decays >= 0; got {self.every}, {self.patience}, {self.min_steps}, "
        f"{self.min_epochs}, {self.max_decays}"
      )
    if not 0.0 < self.factor <= 1.0:
      raise ValueError(f"train.validation.factor must be in (0, 1], got {self.factor}")


def default_config() -> ml_collections.ConfigDict:
  """`config.train.validation`, off (metric '')."""
  c = ml_collections.ConfigDict()
  c.metric = ""  # '' = off; e.g. 'valid/bound'
  c.every = 0  # counted steps between checks; 0 = one epoch
  c.min_steps = 0
  c.min_epochs = 0.0
  c.patience = 1
  c.sticky = False
  c.factor = 0.5
  c.max_decays = 0
  c.restore_best = False
  return c


def enabled(config) -> bool:
  v = config.train.get("validation")
  return bool(v is not None and v.get("metric", ""))


def from_config(config, steps_per_epoch: int) -> Rule | None:
  """The rule of `config.train.validation` (None when off); `every` 0 -> one epoch;
  `min_epochs` -> counted steps (`min_steps` becomes the larger floor, `min_epochs` 0)."""
  if not enabled(config):
    return None
  v = config.train.validation
  fields = {f.name for f in dataclasses.fields(Rule)}
  unknown = set(v.keys()) - fields
  if unknown:
    raise ValueError(f"unknown train.validation keys {sorted(unknown)}: expected {sorted(fields)}")
  kw = {k: v[k] for k in v.keys()}
  epoch = max(int(steps_per_epoch), 1)
  kw["every"] = int(kw.get("every", 0)) or epoch
  floor = int(round(float(kw.pop("min_epochs", 0.0)) * epoch))
  kw["min_steps"] = max(int(kw.get("min_steps", 0)), floor)
  return Rule(**kw)


def savae_rule(config) -> None:
  """Sets `config.train.validation` to paper 004's code's rule (module doc): checks once per
  epoch of the training set as the run finds it, on the validation bound."""
  _set(config, patience=1, sticky=True, max_decays=6, restore_best=False)


def lagging_rule(config) -> None:
  """Sets `config.train.validation` to paper 001's code's rule (module doc)."""
  _set(config, patience=2, sticky=False, max_decays=5, restore_best=True)


def _set(config, **kw) -> None:
  v = config.train.validation
  v.metric, v.every, v.min_steps, v.min_epochs, v.factor = "valid/bound", 0, 0, 15.0, 0.5
  for k, val in kw.items():
    v[k] = val


def init_state() -> dict:
  """The checkpointed state (0-d arrays)."""
  return {
    "lr_scale": jnp.asarray(1.0, jnp.float32),
    "best": jnp.asarray(jnp.inf, jnp.float32),
    "best_step": jnp.asarray(-1, jnp.int32),
    "ref": jnp.asarray(jnp.inf, jnp.float32),
    "stale": jnp.asarray(0, jnp.int32),
    "decays": jnp.asarray(0, jnp.int32),
    "decaying": jnp.asarray(False),
    "stopped": jnp.asarray(False),
  }


def to_host(state: dict) -> dict:
  """The state as Python values (float32-exact floats)."""
  s = jax.device_get(state)
  return {k: (bool(v) if v.dtype == np.bool_ else v.item()) for k, v in s.items()}


def to_device(host: dict, like: dict) -> dict:
  """`host` as arrays with the dtypes and placement of `like` (a state from `init_state`)."""
  return {k: jax.device_put(jnp.asarray(host[k], like[k].dtype), like[k].sharding) for k in like}


@dataclasses.dataclass(frozen=True)
class Events:
  improved: bool  # a new best: keep this step's checkpoint
  halved: bool
  restore: bool  # reload the best parameters (restore_best and halved)
  stop: bool


def check(host: dict, value: float, step: int, rule: Rule) -> tuple[dict, Events]:
  """One check (module doc): the new host state and what the loop must do."""
  v = float(np.float32(value))  # as stored: a resumed run compares the same numbers
  h = dict(host)
  improved = v < h["best"]
  if improved:
    h["best"], h["best_step"] = v, int(step)
  # a tie improves on the reference in the non-sticky rule (paper 001's code counts only a
  # rise as "not improved"); paper 004's sticky rule needs a strict improvement
  if v < h["ref"] or (v == h["ref"] and not rule.sticky):
    h["ref"], h["stale"] = v, 0
  else:
    h["stale"] += 1
  plateau = step > rule.min_steps and h["stale"] >= rule.patience
  if rule.sticky:
    h["decaying"] = h["decaying"] or plateau
    halved = h["decaying"]
  else:
    halved = plateau
  if halved:
    h["lr_scale"] = float(np.float32(h["lr_scale"] * rule.factor))
    h["decays"] += 1
    if not rule.sticky:
      h["ref"], h["stale"] = v, 0
  h["stopped"] = rule.max_decays > 0 and h["decays"] >= rule.max_decays
  return h, Events(improved, halved, halved and rule.restore_best, h["stopped"])


def scale_updates(updates: Any, state: dict | None) -> Any:
  """The updates times the state's lr scale (unchanged without a validation state)."""
  if state is None:
    return updates
  return jax.tree.map(lambda u: u * state["lr_scale"].astype(u.dtype), updates)
