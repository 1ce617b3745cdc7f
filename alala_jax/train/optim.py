"""Optimisers by name (`config.optim`), encoder/decoder-only updates, EMA of parameters.

Paper 000's optimiser is the default (Sec 2.4): Adam 2.5e-4 (b1 0.9, b2 0.999, eps 1e-8),
lr x 0.99 per 1000 steps (continuous), global-norm clip 0.01. `config.optim.name` picks
`adam`, `adamax` (BIVA: 2e-3) or `sgd` (with `momentum`; paper 001's text models: SGD 1.0);
`config.optim.update` restricts updates to the 'encoder' or 'decoder' half of a model's
parameter partition (`optax.multi_transform`, the other half gets zero updates: aggressive
training, VAE+SVI). Updates whose gradients are not finite are skipped
(`optax.apply_if_finite`) and counted in the optimiser state.
"""

from __future__ import annotations

from typing import Any

import optax

from alala_jax.models import base

NAMES = ("adam", "adamax", "sgd")
UPDATES = ("all", base.ENCODER, base.DECODER)
MAX_SKIPPED = 2**30  # apply_if_finite never gives up: a bad step stops the run (train/loop.py)


def learning_rate(cfg) -> optax.Schedule:
  """lr x decay_rate per decay_steps, continuously (Sec 2.4)."""
  return optax.exponential_decay(
    cfg.learning_rate, cfg.decay_steps, cfg.decay_rate, staircase=False
  )


def named_optimizer(cfg) -> optax.GradientTransformation:
  """The named optimiser with the lr schedule (no clip, no skipping)."""
  name = cfg.get("name", "adam")
  lr = learning_rate(cfg)
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


def base_optimizer(cfg) -> optax.GradientTransformation:
  """The named optimiser after the global-norm clip, without skipping (Sec 2.4's chain)."""
  return _clipped(cfg, named_optimizer(cfg))


def make_optimizer(cfg, labels: Any = None) -> optax.GradientTransformation:
  """The optimiser of `config.optim`.

  Args:
    cfg: `config.optim` (name, learning_rate, decay_rate, decay_steps, clip_norm, and
      optionally b1, b2, eps, momentum, update).
    labels: the model's `partition(params)` (or a function of params returning it); needed
      when `cfg.update` is 'encoder' or 'decoder'.
  """
  tx = named_optimizer(cfg)
  update = cfg.get("update", "all")
  if update not in UPDATES:
    raise ValueError(f"unknown optim.update {update!r}: expected one of {UPDATES}")
  if update != "all":
    if labels is None:
      raise ValueError(f"optim.update {update!r} needs the model's parameter partition")
    other = base.DECODER if update == base.ENCODER else base.ENCODER
    tx = optax.multi_transform({update: tx, other: optax.set_to_zero()}, labels)
  # the clip sees every gradient, also when only one half steps (paper 001's reference code)
  return optax.apply_if_finite(_clipped(cfg, tx), MAX_SKIPPED)


def ema_update(ema_params: Any, params: Any, decay: float) -> Any:
  """The new EMA: decay * ema_params + (1 - decay) * params (BIVA evaluates with 0.9995)."""
  return optax.incremental_update(new_tensors=params, old_tensors=ema_params, step_size=1.0 - decay)
