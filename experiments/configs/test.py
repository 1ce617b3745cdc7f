"""Tiny CPU config for the end-to-end tests (seconds after compilation).

A 2-level multiscale VAE (batch 16 split 8 + 8) with augmented training from step 3 of 6 (8
augmented latents, 4 per level, per-level p_sampled 0.15 / 0.2), so the end-to-end, resume and
no-recompile tests cover the level axis, the augmented step and their state too. Its string
fields share grouped scans (`model.string_scan='grouped'`), which compile ~1.8x faster; the
per-field default is covered by tests/test_model.py.
"""

from alala_jax import config as base


def get_config(arg=None):
  del arg
  c = base.smoke(base.base_config())
  c.data.num_synthetic = 300
  c.model.latent_dim = 16
  c.model.char_dim = 8
  c.train.batch_size = 16
  c.train.num_steps = 6
  c.train.log_every = 3
  c.train.eval_every = 6
  c.train.checkpoint_every = 3
  c.eval.num_generated = 64
  c.eval.num_reconstructed = 32
  c.eval.chunk = 32
  c.objective.augmented.enabled = True
  c.objective.augmented.n_augmented = 8
  c.objective.augmented.gen_start_fraction = 0.5
  c.objective.augmented.p_spacing = "linear"
  c.objective.augmented.p_min = 0.1
  c.objective.multiscale.n_levels = 2
  c.model.string_scan = "grouped"
  c.model.gru_remat = "none"  # compile time as measured; tests/test_model.py checks the remat
  return c
