"""The default run: "Tuple SS + String TF" (paper 000 Table 1's best scheme), beta 0 -> 0.384,
on the embedded synthetic addresses, sized to finish in under 5 minutes on a 2-core CPU.

Command:
  python experiments/train.py --config=experiments/configs/default.py --workdir=/tmp/alala
Prints the p-value mean/median/std of 10,000 generated records, d_Lev, train/test/generated loss.
Smoke check: --config=experiments/configs/default.py:smoke
"""

from experiments.configs._table1 import table1


def get_config(arg=None):
  c = table1(tuple_scheme="SS", string_scheme="TF", arg=None, num_steps=1200, batch_size=128)
  c.model.latent_dim = 64
  c.train.log_every = 50
  c.train.eval_every = 400
  c.train.checkpoint_every = 400
  if arg == "smoke":
    from alala_jax import config as base
    base.smoke(c)
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}: use 'smoke'")
  return c
