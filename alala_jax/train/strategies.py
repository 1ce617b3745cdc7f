"""Strategies: which compiled train step runs next (DESIGN §0), for every model and objective.

The loop (`train/loop.py`) calls `advance` once per counted step and `after_step` after it.
A strategy's persistent state lives in `TrainState.strategy_state` (checkpointed, so a resume
continues exactly); the loop keeps a host mirror of it (`host_state`) so that deciding the next
step never waits for the device.

  plain       one joint step per batch (`train_step(update='all')`); the objective's phase
              (augmented from gen_start, ...) picks the compiled program.
  aggressive  paper 001's aggressive inference-network training (He et al. 2019, Alg. 1, as in
              their reference code `text.py` / `image.py`): while aggressive, each counted step
              is an inner loop of encoder-only steps followed by one decoder-only step:

      batch0 <- the batch at the data position        (the decoder step's batch)
      sub <- 1; pre <- 1e4; batch <- batch0
      while sub < max_inner:                          (reference: `while sub_iter < 100`)
          encoder-only step on batch                  (consumes a batch: data_position + 1)
          batch <- the next batch of the data stream
          if sub % window == 0:                       (windows of 15 for text, 10 for images)
              cur <- sum of the window's losses / sum of its units (tokens for text: per word)
              if pre - cur < 0: break                 (the window did not improve)
              pre <- cur
          sub <- sub + 1
      decoder-only step on batch0                     (counts the step)

  Separate encoder and decoder optimiser states (`optim.make_optimizer(separate=True)`); the
  global-norm clip sees both halves' gradients even when one half steps. Every
  `check_every` counted steps (an epoch), while aggressive, the mutual information I_q(x; z)
  on held-out data (the reference's minibatch estimator, `Task.heldout_mi`) is compared with
  the best so far; after `patience` checks without a new best (text: 1, the first drop;
  images: 5) the run leaves aggressive mode for good and continues with joint steps, both
  optimisers stepping. A new best must exceed the best by `min_rise` nats (default 0: the
  reference's rule, where any rise, even float noise, counts). The minibatch estimator is
  capped at log B; a posterior that is not lagging sits at the cap from the first check, and
  then only a tolerance lets the rule fire (the record VAE on Vermont: 4.812971, 4.812973,
  4.812976 nats at epochs 1-3; BUILD_NOTES #14).

  The inner loop runs on the device (`inner_loop='device'`, the default: `encoder_loop`, the
  whole loop as one `lax.while_loop` that gathers its batches from the training set on the
  device, one sync per counted step; 0.89x the host loop's time per inner step on paper 004's
  synthetic text model, `experiments/bench_text.py`) or on the host (`'host'`: one compiled
  encoder step per inner step, one device sync per window). The device loop sums a window's
  losses in float32 where the host loop sums the same float32 values in float64, so a
  near-tie can end a window differently; each is deterministic, so a resume is bit-identical
  under either.

Deviation: the reference draws each later inner batch uniformly with replacement; here the
inner loop reads the next batches of the same deterministic data stream (`data_position`),
which is what makes a resume bit-identical without saving a host RNG.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from alala_jax.data import batching
from alala_jax.models.base import DECODER, ENCODER
from alala_jax.train import step as step_lib

STRATEGIES = ("plain", "aggressive")
INNER_LOOPS = ("host", "device")


def encoder_loop(
  encoder_step: Callable, state: Any, data: Any, idx: jax.Array, *, window: int, max_inner: int
) -> tuple[Any, jax.Array]:
  """Aggressive training's inner loop (module doc) as one `lax.while_loop`.

  Args:
    encoder_step: (state, batch) -> (state, metrics with scalar 'loss' and 'units', ...), pure.
    state: the state it steps.
    data: the training arrays (a pytree of [N, ...]).
    idx: [max_inner - 1, B] rows of `data` of the inner steps' batches, in order.
    window, max_inner: as in `Aggressive`.

  Returns:
    (state, the number of encoder steps run).
  """
  f32 = jnp.float32

  def cond(c):
    return (c[1] < max_inner) & ~c[5]

  def body(c):
    state, sub, pre, loss_sum, unit_sum, _ = c
    batch = jax.tree.map(lambda a: a[idx[sub - 1]], data)
    state, m = encoder_step(state, batch)[:2]
    loss_sum = loss_sum + m["loss"].astype(f32)
    unit_sum = unit_sum + m["units"].astype(f32)
    at_window = sub % window == 0
    cur = loss_sum / unit_sum
    stop = at_window & (pre - cur < 0)
    pre = jnp.where(at_window, cur, pre)
    loss_sum, unit_sum = (jnp.where(at_window, f32(0), a) for a in (loss_sum, unit_sum))
    return state, jnp.where(stop, sub, sub + 1), pre, loss_sum, unit_sum, stop

  init = (state, jnp.int32(1), f32(1e4), f32(0), f32(0), jnp.bool_(False))
  state, sub, *_, stopped = jax.lax.while_loop(cond, body, init)
  return state, jnp.where(stopped, sub, sub - 1)


@dataclasses.dataclass(frozen=True)
class Plain:
  """One joint step per batch."""

  name = "plain"
  separate_states = False

  def init_state(self) -> Any:
    return None

  def host_state(self, state) -> dict:
    del state
    return {}

  def advance(self, trainer, state, step: int, position: int, batch_at: Callable, host: dict):
    """One counted step: (state, metrics (device), new data position)."""
    del host
    state, metrics, _ = trainer.step_fn(step)(state, batch_at(position))
    return state, metrics, position + 1

  def after_step(self, task, state, step: int, host: dict, config):
    """Checks after counted step `step` (1-based count): (state, host, metrics to log)."""
    del task, step, config
    return state, host, {}


@dataclasses.dataclass(frozen=True)
class Aggressive:
  """Aggressive inference-network training (module doc)."""

  check_every: int  # counted steps between held-out MI checks (the reference: one epoch)
  window: int = 15  # inner steps per plateau window (text 15, images 10)
  max_inner: int = 100  # `while sub < max_inner`, sub from 1: at most max_inner - 1 steps
  patience: int = 1  # MI checks without a new best before leaving (text 1, images 5)
  inner_loop: str = "device"  # 'device' | 'host' (module doc; the device loop measured faster)
  min_rise: float = 0.0  # nats a check must beat the best by to count as a new best

  name = "aggressive"
  separate_states = True

  def __post_init__(self):
    if (
      self.check_every < 1
      or self.window < 1
      or self.max_inner < 2
      or self.patience < 1
      or not self.min_rise >= 0
    ):
      raise ValueError(
        f"aggressive training needs check_every >= 1, window >= 1, max_inner >= 2, patience "
        f">= 1, min_rise >= 0; got {self.check_every}, {self.window}, {self.max_inner}, "
        f"{self.patience}, {self.min_rise}"
      )
    if self.inner_loop not in INNER_LOOPS:
      raise ValueError(f"unknown inner_loop {self.inner_loop!r}: expected one of {INNER_LOOPS}")

  def init_state(self) -> dict:
    return {
      "aggressive": jnp.asarray(True),
      "best_mi": jnp.asarray(-jnp.inf, jnp.float32),  # the first check is always a new best
      "stale": jnp.asarray(0, jnp.int32),  # checks since the last new best
    }

  def host_state(self, state) -> dict:
    s = jax.device_get(state.strategy_state)
    return {
      "aggressive": bool(s["aggressive"]),
      "best_mi": float(s["best_mi"]),
      "stale": int(s["stale"]),
    }

  def advance(self, trainer, state, step: int, position: int, batch_at: Callable, host: dict):
    if not host["aggressive"]:
      state, metrics, _ = trainer.step_fn(step)(state, batch_at(position))
      return state, metrics, position + 1
    phase = trainer.phase_at(step)
    batch0 = batch_at(position)
    if self.inner_loop == "device":
      if not isinstance(batch_at, batching.Stream):
        raise TypeError(
          "the device inner loop gathers its batches on the device: pass a "
          "data.batching.Stream as batch_at (the training loop does)"
        )
      state, steps = self._device_loop(trainer, phase)(
        state, batch_at.device_data(), batch_at.indices(position, self.max_inner - 1)
      )
      steps = int(steps)
      state, metrics, _ = trainer.phase_step(phase, DECODER)(state, batch0)
      return state, {**metrics, "inner_steps": steps}, position + steps
    encoder_step = trainer.phase_step(phase, ENCODER)
    batch, sub, pre, window = batch0, 1, 1e4, []
    while sub < self.max_inner:
      state, m, _ = encoder_step(state, batch)
      position += 1
      window.append((m["loss"], m["units"]))
      batch = batch_at(position)
      if sub % self.window == 0:
        losses, units = np.asarray(jax.device_get(window), np.float64).T
        cur = float(np.sum(losses) / np.sum(units))
        if pre - cur < 0:
          break
        pre, window = cur, []
      sub += 1
    state, metrics, _ = trainer.phase_step(phase, DECODER)(state, batch0)
    metrics = {**metrics, "inner_steps": sub if sub < self.max_inner else sub - 1}
    return state, metrics, position

  def _device_loop(self, trainer, phase: str):
    """The compiled `encoder_loop` of `phase` (state donated)."""
    step = functools.partial(
      step_lib.train_step, setup=trainer.setup, phase=phase, update=ENCODER, means=False
    )
    loop = functools.partial(encoder_loop, step, window=self.window, max_inner=self.max_inner)
    name = f"{phase}/encoder_loop/{self.window}/{self.max_inner}"
    return trainer.compiled(name, lambda: jax.jit(loop, donate_argnums=0))

  def after_step(self, task, state, step: int, host: dict, config):
    if not host["aggressive"] or step % self.check_every:
      return state, host, {}
    # float32, as stored in the checkpoint: a resumed run decides exactly as this one
    mi = float(np.float32(task.heldout_mi(state, config)))
    host = dict(host)
    if mi - host["best_mi"] >= self.min_rise:
      host["best_mi"], host["stale"] = mi, 0
    else:
      host["stale"] += 1
    host["aggressive"] = host["stale"] < self.patience
    new = {
      "aggressive": jnp.asarray(host["aggressive"]),
      "best_mi": jnp.asarray(host["best_mi"], jnp.float32),
      "stale": jnp.asarray(host["stale"], jnp.int32),
    }
    state = state.replace(strategy_state=jax.device_put(new, state.step.sharding))
    logged = {"heldout_mi": mi, "aggressive": float(host["aggressive"])}
    return state, host, logged


def mi_checks(rows) -> tuple[list[tuple[int, float]], int | None]:
  """Aggressive training's held-out MI checks, (step, MI), in metrics rows (metrics.jsonl's
  'strategy' split), and the step of the check that ended aggressive mode (None: it did not)."""
  rows = [r for r in rows if r.get("split") == "strategy"]
  checks = [(int(r["step"]), float(r["heldout_mi"])) for r in rows if "heldout_mi" in r]
  left = [int(r["step"]) for r in rows if r.get("aggressive") == 0.0]
  return checks, (left[0] if left else None)


def from_config(config, steps_per_epoch: int = 0):
  """The strategy of `config.train.strategy` ('plain' by default; 'aggressive' reads
  `config.train.aggressive`: window, max_inner, patience, min_rise, inner_loop ('device' | 'host'),
  check_every (0 = `steps_per_epoch`, one pass of counted steps over the training set, as in
  the reference))."""
  tc = config.train
  name = tc.get("strategy", "plain")
  if name == "plain":
    return Plain()
  if name == "aggressive":
    ac = tc.get("aggressive", None) or {}
    every = int(ac.get("check_every", 0)) or int(steps_per_epoch)
    if every < 1:
      raise ValueError(
        "train.strategy 'aggressive' needs train.aggressive.check_every (counted steps "
        "between held-out MI checks) or the task's steps per epoch"
      )
    return Aggressive(
      check_every=every,
      window=int(ac.get("window", 15)),
      max_inner=int(ac.get("max_inner", 100)),
      patience=int(ac.get("patience", 1)),
      inner_loop=str(ac.get("inner_loop", "device")),
      min_rise=float(ac.get("min_rise", 0.0)),
    )
  raise ValueError(f"unknown train.strategy {name!r}: expected one of {STRATEGIES}")
