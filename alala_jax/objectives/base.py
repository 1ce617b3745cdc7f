"""Objectives as optax-style pure triples, picked by name from a registry (DESIGN §0).

An `Objective` weighs the raw terms a model returns (`alala_jax.models.base`). It is a
NamedTuple of pure functions over a NamedTuple state, like an `optax.GradientTransformation`:

  init(key)                                    -> state
  loss(state, terms, *, step, level)           -> (scalar loss, {name: scalar metric})
  update(state, terms, *, step, key, phase, level) -> (state, {name: scalar metric})
                                                  after the optimiser step, on stop-gradient
                                                  terms (GECO's multiplier, the AAE's
                                                  discriminator step, augmented latents)
  prepare(state, x, *, decode, key, phase)     -> (x', row_mask)  before encoding: augmented
                                                  training appends decoded variants
  phase_at(step)                               -> the name of the compiled step to run
                                                  ('train', or 'augmented' from gen_start)

`loss` gets the `Level` it is evaluated at: under multiscale (paper 000 Sec 6) level i has
beta_i = beta_scale_i * beta(step) and capacity C_i; a single-level run has `Level()`.
States are dicts {objective name: NamedTuple}, so several objectives' states coexist in one
TrainState (an augmented GECO run holds {'augmented': ..., 'geco': ...}). Under multiscale
every leaf of the state gets a leading level axis (objectives/multiscale.py).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from alala_jax.models.base import Recon

TRAIN, AUGMENTED = "train", "augmented"  # step phases (the compiled steps a run may use)


@struct.dataclass
class Terms:
  """A model's raw terms for one batch, as objectives see them."""

  recon: Recon  # per-example reconstruction terms [B]
  kl: jax.Array  # [B] or [L, B] KL(q || p), nats
  z: jax.Array  # [B, D] the latents decoded (sampled, or the mean for a
  # deterministic encoder)
  posterior: Any  # q(z | x) (e.g. DiagGaussian)
  row_mask: jax.Array | None  # [B] 1 for real rows, 0 for generated variants (None: all real)
  kl_scale: float = struct.field(pytree_node=False, default=1.0)  # the model's beta units
  encoder_loss: jax.Array | None = None  # [B] what trains the encoder when a refinement
  # decouples it from the refined posterior (alala_jax/refine.py: VAE+SVI, VAE+SVI+KL);
  # the train step adds its batch mean to the objective's loss

  def kl_total(self) -> jax.Array:
    """[B]: the KL summed over stochastic layers."""
    return self.kl if self.kl.ndim == 1 else jnp.sum(self.kl, 0)


class Level(NamedTuple):
  """What varies over the multiscale level axis (defaults: one plain level)."""

  beta_scale: Any = 1.0  # [] beta_i / beta_max (Sec 6)
  capacity: Any = 0.0  # [] C_i in nats ('capacity', App J Eq 9)
  p_sampled: Any = 0.2  # [] augmented training's re-initialisation probability (App K)


def no_state(key: jax.Array) -> dict:
  """`init` of an objective without state."""
  del key
  return {}


def _identity_prepare(state, x, *, decode, key, phase):
  del state, decode, key, phase
  return x, None


def _no_update(state, terms, *, step, key, phase, level):
  del terms, step, key, phase, level
  return state, {}


def _always_train(step: int) -> str:
  del step
  return TRAIN


class Objective(NamedTuple):
  """A named objective (module doc). `deterministic`: z = posterior mean (WAE, AAE)."""

  name: str
  init: Callable[[jax.Array], dict]
  loss: Callable[..., tuple[jax.Array, dict]]
  update: Callable[..., tuple[dict, dict]] = _no_update
  prepare: Callable[..., tuple[Any, Any]] = _identity_prepare
  phase_at: Callable[[int], str] = _always_train
  deterministic: bool = False
  latent_label: str = "kl"  # the metric the progress line shows as the latent term
  single_level: bool = False  # runs alone: no multiscale levels, no augmented training


# name -> factory(config, model) -> Objective
_REGISTRY: dict[str, Callable[..., Objective]] = {}


def register(name: str):
  """Decorator: registers an objective factory under `name`."""

  def wrap(factory):
    old = _REGISTRY.get(name)
    if old is not None and (old.__module__, old.__qualname__) != (
      factory.__module__,
      factory.__qualname__,
    ):
      raise ValueError(
        f"objective {name!r} registered twice: {old.__module__}."
        f"{old.__qualname__} and {factory.__module__}.{factory.__qualname__}"
      )
    _REGISTRY[name] = factory  # the same factory again (a module reload) replaces it
    return factory

  return wrap


def names() -> list[str]:
  return sorted(_REGISTRY)


def make(name: str, config, model) -> Objective:
  """The objective registered as `name`, built from the experiment config.

  Args:
    name: a registered name (`names()`).
    config: the experiment ConfigDict: its `objective` section, `train.num_steps` (schedules),
      `optim` (an objective with its own optimiser, the AAE's discriminator).
    model: the `VAEModel` it will weigh (latent size, beta units).
  """
  if name not in _REGISTRY:
    raise ValueError(f"unknown objective {name!r}: registered objectives are {names()}")
  return _REGISTRY[name](config, model)
