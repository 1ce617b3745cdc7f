"""Optimisers by name (`config.optim`), encoder/decoder-only updates, EMA of parameters.

Paper 000's optimiser is the default (Sec 2.4): Adam 2.5e-4 (b1 0.9, b2 0.999, eps 1e-8),
lr x 0.99 per 1000 steps (continuous), global-norm clip 0.01. `config.optim.schedule` picks the
lr schedule: 'exponential' (the paper's, in steps), 'paper_run' (the paper's decay over its 2M
steps compressed onto this run's `train.num_steps`, so the lr spends 90 % of its integral in the
first 11 % of the run as the paper's did) or 'cosine' (to `floor` x lr at the end of the run);
`floor` also bounds the two exponential ones from below. `config.optim.name` picks
`adam`, `adamax` (BIVA: 2e-3) or `sgd` (with `momentum`; paper 001's text models: SGD 1.0);
`config.optim.update` restricts updates to the 'encoder' or 'decoder' half of a model's
parameter partition (`optax.multi_transform`, the other half gets zero updates: aggressive
training, VAE+SVI). Updates whose gradients are not finite are skipped
(`optax.apply_if_finite`) and counted in the optimiser state.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from alala_jax.models import base

NAMES = ("adam", "adamax", "sgd")
SCHEDULES = ("exponential", "paper_run", "cosine")
PAPER_STEPS = 2_000_000  # paper 000's run length (Sec 2.4), for 'paper_run'
UPDATES = ("all", base.ENCODER, base.DECODER)
MAX_SKIPPED = 2**30  # apply_if_finite never gives up: a bad step stops the run (train/loop.py)


def learning_rate(cfg, num_steps: int | None = None) -> optax.Schedule:
  """The lr schedule of `config.optim` (module docstring); `num_steps`: the run's length, needed
  by the schedules that are expressed against the run ('paper_run', 'cosine')."""
  schedule, lr0 = cfg.get("schedule", "exponential"), cfg.learning_rate
  floor = float(cfg.get("floor", 0.0))
  if schedule not in SCHEDULES:
    raise ValueError(f"unknown optim.schedule {schedule!r}: expected one of {SCHEDULES}")
  if schedule != "exponential" and not num_steps:
    raise ValueError(f"optim.schedule {schedule!r} needs the run's number of steps")
  if schedule == "cosine":
    return optax.cosine_decay_schedule(lr0, num_steps, alpha=floor)
  steps = cfg.decay_steps * (num_steps / PAPER_STEPS if schedule == "paper_run" else 1)
  f = optax.exponential_decay(lr0, steps, cfg.decay_rate, staircase=False)
  return (lambda t: jnp.maximum(f(t), floor * lr0)) if floor > 0 else f


def named_optimizer(cfg, num_steps: int | None = None) -> optax.GradientTransformation:
  """The named optimiser with the lr schedule (no clip, no skipping)."""
  name = cfg.get("name", "adam")
  lr = learning_rate(cfg, num_steps)
  if name == "adam":
    opt = optax.adam(lr, b1=cfg.get("b1", 0.9), b2=cfg.get("b2", 0.999), eps=cfg.get("eps", 1e-8))
  elif name == "adamax":
    opt = optax.adamax(lr, b1=cfg.get("b1", 0.9), b2=cfg.get("b2", 0.999), eps=cfg.get("eps", 1e-8))
  elif name == "sgd":
    opt = optax.sgd(lr, momentum=cfg.get("momentum", 0.0) or None)
  else:
    raise ValueError(f"unknown optim.name {name!r}: expected one of {NAMES}")
  return opt


def _clipped(cfg, tx: optax.GradientTransformation) -> optax.GradientTransformation:
  clip = cfg.get("clip_norm", 0.0)
  return optax.chain(optax.clip_by_global_norm(clip), tx) if clip and clip > 0 else tx


def base_optimizer(cfg, num_steps: int | None = None) -> optax.GradientTransformation:
  """The named optimiser after the global-norm clip, without skipping (Sec 2.4's chain)."""
  return _clipped(cfg, named_optimizer(cfg, num_steps))


def make_optimizer(
  cfg, labels: Any = None, *, separate: bool = False, num_steps: int | None = None
) -> optax.GradientTransformation:
  """The optimiser of `config.optim`.

  Args:
    cfg: `config.optim` (name, learning_rate, decay_rate, decay_steps, clip_norm, and
      optionally b1, b2, eps, momentum, update, separate).
    labels: the model's `partition(params)` (or a function of params returning it); needed
      when `cfg.update` is 'encoder' or 'decoder', or with separate states.
    separate: one optimiser state (and lr schedule) per half of the partition
      (`optax.multi_transform`), so that a step can update one half alone (`restrict_update`;
      aggressive training). For a joint step this is the same optimiser: every named one acts
      per parameter. Also `cfg.separate`.
    num_steps: the run's length, for lr schedules expressed against it.
  """
  tx = named_optimizer(cfg, num_steps)
  update = cfg.get("update", "all")
  if update not in UPDATES:
    raise ValueError(f"unknown optim.update {update!r}: expected one of {UPDATES}")
  separate = separate or bool(cfg.get("separate", False))
  if (update != "all" or separate) and labels is None:
    raise ValueError("optim.update / separate states need the model's parameter partition")
  if update != "all":
    other = base.DECODER if update == base.ENCODER else base.ENCODER
    tx = optax.multi_transform({update: tx, other: optax.set_to_zero()}, labels)
  elif separate:
    tx = optax.multi_transform(
      {base.ENCODER: tx, base.DECODER: named_optimizer(cfg, num_steps)}, labels
    )
  # the clip sees every gradient, also when only one half steps (paper 001's reference code)
  return optax.apply_if_finite(_clipped(cfg, tx), MAX_SKIPPED)


def fresh_state(tx: optax.GradientTransformation, params: Any, old_state: Any) -> Any:
  """`tx.init(params)` (new moments and momentum traces, as a rebuilt optimiser has) that keeps
  `old_state`'s lr-schedule step counts and skipped-step counters, so that a decaying lr
  carries on where it was instead of restarting (`old_state`: a state of the same `tx`)."""
  is_kept = lambda x: isinstance(x, (optax.ScaleByScheduleState, optax.ApplyIfFiniteState))

  def keep(new, old):
    if isinstance(new, optax.ApplyIfFiniteState):
      return old._replace(inner_state=fresh_inner(new.inner_state, old.inner_state))
    return old if isinstance(new, optax.ScaleByScheduleState) else new

  def fresh_inner(new, old):
    return jax.tree.map(keep, new, old, is_leaf=is_kept)

  return fresh_inner(tx.init(params), old_state)


def ema_update(ema_params: Any, params: Any, decay: float) -> Any:
  """The new EMA: decay * ema_params + (1 - decay) * params (BIVA evaluates with 0.9995)."""
  return optax.incremental_update(new_tensors=params, old_tensors=ema_params, step_size=1.0 - decay)


def _is_multi(x) -> bool:
  return isinstance(x, optax.MultiTransformState)


def restrict_update(
  updates: Any, new_opt_state: Any, old_opt_state: Any, labels: Any, half: str
) -> tuple[Any, Any]:
  """Keeps only `half`'s step: the other half's updates become zero and its optimiser state
  (moments, step count, lr schedule) stays `old_opt_state`'s.

  Needs separate states (`make_optimizer(..., separate=True)`). The global-norm clip has
  already seen both halves' gradients (paper 001's reference code clips them jointly).

  Raises:
    ValueError: half is not 'encoder' or 'decoder', or the state is not partitioned.
  """
  if half not in (base.ENCODER, base.DECODER):
    raise ValueError(f"half must be {base.ENCODER!r} or {base.DECODER!r}, got {half!r}")
  other = base.DECODER if half == base.ENCODER else base.ENCODER
  if not any(_is_multi(x) for x in jax.tree.leaves(new_opt_state, is_leaf=_is_multi)):
    raise ValueError(
      "an encoder- or decoder-only step needs one optimiser state per half: build the "
      "optimiser with separate=True (config.optim.separate)"
    )

  def keep_other(new, old):
    if _is_multi(new):
      return new._replace(inner_states={**new.inner_states, other: old.inner_states[other]})
    return new

  opt_state = jax.tree.map(keep_other, new_opt_state, old_opt_state, is_leaf=_is_multi)
  updates = jax.tree.map(lambda u, lab: u if lab == half else jnp.zeros_like(u), updates, labels)
  return updates, opt_state
