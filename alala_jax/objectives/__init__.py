"""Objectives: optax-style (init, loss, update) triples chosen by name (`objectives.base`).

Importing this package registers every objective: 'beta', 'inverted', 'capacity', 'free_bits'
(objectives/beta.py), 'wae', 'aae' (baselines of paper 000 App H-I) and 'geco' (paper 003).
`build(config, model)` picks `config.objective.name` and wraps it with augmented training when
`config.objective.augmented.enabled`.
"""

from alala_jax.objectives import aae, beta, geco, wae  # noqa: F401  (registration)
from alala_jax.objectives import augmented as augmented_lib
from alala_jax.objectives.base import Objective, make, names


def build(config, model) -> Objective:
  """The objective of an experiment config for `model` (validated: clear errors for
  combinations the paper does not define)."""
  obj = config.objective
  name = obj.get("name", "beta")
  ms, aug = obj.get("multiscale"), obj.get("augmented")
  n_levels = 1 if ms is None else int(ms.n_levels)
  aug_on = aug is not None and aug.enabled
  objective = make(name, config, model)
  if objective.single_level and (n_levels > 1 or aug_on):
    raise ValueError(
      f"the {name.upper()} baseline (objective.name {name!r}, App H-I) runs "
      "alone: set multiscale.n_levels = 1 and augmented.enabled = False"
    )
  if not aug_on:
    return objective
  batch = config.train.batch_size
  n_aug = aug.n_augmented or batch
  if n_aug % n_levels:
    raise ValueError(f"n_augmented {n_aug} does not split evenly over {n_levels} levels")
  per_level_rows = batch if (n_levels == 1 or ms.shared_batch) else batch // n_levels
  if n_aug // n_levels > per_level_rows:
    raise ValueError(
      f"{n_aug // n_levels} augmented latents per level exceed the "
      f"{per_level_rows} real rows per level they are re-drawn from (without "
      "replacement)"
    )
  gen_start = max(1, int(round(aug.gen_start_fraction * config.train.num_steps)))
  return augmented_lib.augmented(objective, n_aug // n_levels, model.latent_dim, gen_start)


__all__ = ["Objective", "build", "make", "names"]
