"""The default run: "Tuple SS + String TF" (paper 000 Table 1's best scheme), beta 0 -> 0.384,
on the embedded synthetic addresses, sized to finish in under 5 minutes on a 2-core CPU
(3000 steps x batch 128, latent 64, lr 1e-3: ~1 min compile + ~4 min training + 16 s eval).

Command:
  python -m experiments.train --config=experiments/configs/default.py --workdir=/tmp/alala
Prints the p-value mean/median/std of 10,000 generated records, d_Lev, train/test/generated loss.
Smoke check: --config=experiments/configs/default.py:smoke
"""

from experiments.configs._table1 import table1


def get_config(arg=None):
  c = table1(tuple_scheme="SS", string_scheme="TF", arg=None, num_steps=3000, batch_size=128)
  c.model.latent_dim = 64
  # Deviation for a 4-minute CPU budget (BUILD_NOTES.md): lr 1e-3 instead of the paper's 2.5e-4,
  # which after 1200 steps left 85% of generated zip codes unseen in training.
  c.optim.learning_rate = 1e-3
  c.train.log_every = 100
  c.train.eval_every = 1000
  c.train.checkpoint_every = 1000
  if arg == "smoke":
    from alala_jax import config as base

    base.smoke(c)
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}: use 'smoke'")
  return c
