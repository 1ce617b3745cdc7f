"""The TrainState pytree and what a run holds fixed (`Setup`): model, objective, optimiser,
level axis.

Every leaf that varies over the multiscale level axis has it first: the entries the model
declares per level (`VAEModel.level_collections`) in `params` and `model_state`, and every leaf
of `objective_state`. The PRNG key is stored as raw key data (orbax-friendly).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import chex
import jax
import jax.numpy as jnp
import optax
from flax import struct

from alala_jax.models.base import LEVEL_INIT_SALT, VAEModel
from alala_jax.objectives import multiscale
from alala_jax.objectives.base import Objective
from alala_jax.train import optim
from alala_jax.train import validation as validation_lib


class Salt(enum.IntEnum):
  """The PRNG salts of a run, in one place: a step's key for purpose s is
  fold_in(fold_in(key, s), step) (`step_key`)."""

  LOSS = 0  # latents and decoder sampling of the training loss
  OBJECTIVE_UPDATE = 3  # an objective's update (augmented re-draw, discriminator step)
  PREPARE = 4  # decoding augmented variants
  INIT_OBJECTIVE = 5  # an objective's initial state (from the run's key, not a step's)
  INIT_LEVELS = LEVEL_INIT_SALT  # per-level initial values (VAEModel.init_levels)
  EVAL_LOSS = 1000  # + batch index: train / test loss
  GENERATED_LOSS = 2000  # + 2 x batch index: generated loss (and + 1 for its eval loss)
  HELDOUT_MI = 3000  # held-out mutual information (aggressive training's checks)
  VALIDATION = 4000  # + batch index: the held-out metrics of train.validation's checks


@struct.dataclass
class TrainState:
  step: jax.Array  # [] int32 optimiser steps taken
  data_position: jax.Array  # [] int32 training batches consumed (a step may consume several)
  params: Any  # model parameters; declared per-level entries [n_levels, ...]
  opt_state: Any
  model_state: Any  # the model's non-gradient collections ({'batch_stats': ...});
  # declared per-level entries [n_levels, ...]
  objective_state: Any  # {objective name: NamedTuple}, every leaf [n_levels, ...]
  ema_params: Any  # EMA of params for evaluation (None when off)
  key: jax.Array  # [2] uint32 raw key data; wrap with wrap_key_data
  bad_step: jax.Array  # [] int32 first step with a non-finite loss/gradient, -1 if none
  strategy_state: Any = None  # the strategy's host-loop state (train/strategies.py), e.g.
  # aggressive training's {'aggressive': [] bool, 'best_mi': [], 'stale': [] int32}
  validation: Any = None  # the held-out checks' state (train/validation.py; None when off):
  # {'lr_scale': [] float32 (multiplies every update), 'best': [], 'best_step': [] int32, ...}

  def variables(self, params: Any = None) -> dict:
    """{'params': params (default: self.params), **model_state} (levels still stacked)."""
    return {"params": self.params if params is None else params, **self.model_state}


@dataclasses.dataclass(frozen=True, eq=False)
class Setup:
  """What one run holds fixed. Closed over by the jitted steps (never traced)."""

  model: VAEModel
  objective: Objective
  tx: optax.GradientTransformation
  levels: multiscale.Levels = multiscale.Levels()
  ema_decay: float = 0.0  # 0: no EMA parameters
  strategy: Any = None  # which compiled step runs next (train/strategies.py; None: plain)
  refinement: Any = None  # alala_jax.refine.Refinement between encode and recon (None: off)
  validation: bool = False  # TrainState.validation is kept (train/validation.py): its lr
  # scale multiplies every update


def step_key(state: TrainState, salt) -> jax.Array:
  """fold_in(fold_in(run key, salt), step); salt a `Salt` (or a traced int)."""
  salt = int(salt) if isinstance(salt, Salt) else salt
  return jax.random.fold_in(
    jax.random.fold_in(jax.random.wrap_key_data(state.key), salt), state.step
  )


def level_variables(setup: Setup, variables: dict, level: int) -> dict:
  """The single-level model variables of `level` (what the model's methods take)."""
  shared, per_level = multiscale.split_collections(variables, setup.model.level_collections)
  return multiscale.merge_collections(shared, multiscale.level_slice(per_level, level))


def _stack(tree_: Any, n: int) -> Any:
  return jax.tree.map(lambda a: jnp.broadcast_to(a, (n,) + a.shape), tree_)


def init_state(setup: Setup, key: jax.Array, example_batch: Any) -> TrainState:
  """A fresh TrainState (traceable: `create_state` jits it)."""
  model, n = setup.model, setup.levels.n
  variables = model.init(key, example_batch)
  shared, per_level = multiscale.split_collections(variables, model.level_collections)
  stacked = model.init_levels(key, example_batch, n)
  chex.assert_trees_all_equal_structs(multiscale.level_slice(stacked, 0), per_level)
  variables = multiscale.merge_collections(shared, stacked)
  params = variables.pop("params")
  obj_state = _stack(setup.objective.init(jax.random.fold_in(key, Salt.INIT_OBJECTIVE)), n)
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    data_position=jnp.zeros((), jnp.int32),
    params=params,
    opt_state=setup.tx.init(params),
    model_state=variables,
    objective_state=obj_state,
    ema_params=params if setup.ema_decay > 0 else None,
    key=jax.random.key_data(key),
    bad_step=jnp.full((), -1, jnp.int32),
    strategy_state=None if setup.strategy is None else setup.strategy.init_state(),
    validation=validation_lib.init_state() if setup.validation else None,
  )


_init_state_jit = jax.jit(init_state, static_argnums=0)


def create_state(setup: Setup, seed: int, example_batch: Any) -> TrainState:
  """A fresh TrainState, committed to the default device: orbax restores committed arrays,
  and jit caches committed and uncommitted arguments separately, so a state that was not
  committed would make every step compile again after a resume. (Compiled once per Setup.)"""
  state = _init_state_jit(setup, jax.random.key(seed), example_batch)
  return jax.device_put(state, jax.sharding.SingleDeviceSharding(jax.devices()[0]))


def make_setup(model: VAEModel, objective: Objective, config, steps_per_epoch: int = 0) -> Setup:
  """The Setup of an experiment config for a model and objective (optimiser, levels, EMA,
  strategy; `steps_per_epoch`: the training set's batches, the default interval of aggressive
  training's checks)."""
  levels = multiscale.Levels.from_config(
    config.objective.get("multiscale"), config.objective.get("augmented")
  )
  levels.per_level_batch(config.train.batch_size)  # raises on an uneven split over levels
  from alala_jax.train import strategies  # strategies import this module

  strategy = strategies.from_config(config, steps_per_epoch)
  decays = float(config.optim.get("decay_rate", 1.0)) != 1.0
  if strategy.separate_states and (
    decays or config.optim.get("schedule", "exponential") == "cosine"
  ):
    raise ValueError(
      "a decaying lr schedule with train.strategy 'aggressive': each half's lr schedule counts "
      "its own updates, so the encoder's would decay up to ~100x faster; set "
      "optim.decay_rate = 1 and optim.schedule = 'exponential'"
    )
  tx = optim.make_optimizer(
    config.optim,
    model.partition,
    separate=strategy.separate_states,
    num_steps=config.train.num_steps,
  )
  from alala_jax import refine

  return Setup(
    model=model,
    objective=objective,
    tx=tx,
    levels=levels,
    ema_decay=float(config.optim.get("ema_decay", 0.0)),
    strategy=strategy,
    refinement=refine.from_config(config),
    validation=validation_lib.enabled(config),
  )
