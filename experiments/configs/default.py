"""The default run: "Tuple SS + String TF" (paper 000 Table 1's best scheme) trained with GECO
(paper 003) on the embedded synthetic addresses, with the low-cardinality fields (city,
postcode and the constant ones) as categories, generating from the aggregate posterior at
temperature 0.5, sized to finish in about 4 minutes on a 2-core CPU (3000 steps x batch 128,
latent 64, lr 1e-3: ~30 s compile + ~2.5 min training + ~40 s evaluation).

GECO minimises the KL subject to per-field reconstruction constraints instead of weighing it
with a β schedule: the field-weighted reconstruction loss <= 0.1 (what the β-VAE reaches at
this budget), the whitened squared coordinate error <= 0.02 and the postcode's cross-entropy
<= 0.02 nats (per value: the postcode is a category field here; per character where it is
character-level, as in `:smoke`, whose 600 records are too few for 'auto' to pick it) (BUILD_NOTES "Generation priors": p-value mean 0.05 -> 0.39 on this job,
the paper's β-VAE + tracked Gaussian -> GECO + aggregate posterior; "Categorical fields":
-> 0.47 with categories). Arguments, comma-separated:
  beta   the paper's β-VAE (β 0 -> 0.384 over the run, every field character-level; the
         default before issue #13)
  smoke  a CPU check in well under a minute after compiling

Command:
  python -m experiments.train --config=experiments/configs/default.py --workdir=/tmp/alala
Prints the p-value mean/median/std of 10,000 generated records, the realism and privacy checks,
d_Lev, train/test/generated loss.
"""

from experiments.configs._table1 import table1


def get_config(arg=None):
  args = [a for a in (arg or "").split(",") if a]
  c = table1(tuple_scheme="SS", string_scheme="TF", arg=None, num_steps=3000, batch_size=128)
  c.model.latent_dim = 64
  # Deviation for a 4-minute CPU budget (BUILD_NOTES.md): lr 1e-3 instead of the paper's 2.5e-4,
  # which after 1200 steps left 85% of generated zip codes unseen in training.
  c.optim.learning_rate = 1e-3
  c.train.log_every = 100
  c.train.eval_every = 1000
  c.train.checkpoint_every = 1000
  c.eval.generation_prior = "aggregate,tracked"  # the library's default (table1 sets the paper's)
  if "beta" not in args:
    c.objective.name = "geco"
    c.objective.geco.constraints = "loss<=0.1,(lat,long)<=0.02,postcode<=0.02"
    c.objective.geco.lambda_init = 100.0
    c.objective.geco.nu = 0.05
    c.data.categorical = "auto"
  if "smoke" in args:
    from alala_jax import config as base

    base.smoke(c)
  unknown = set(args) - {"beta", "smoke"}
  if unknown:
    raise ValueError(f"unknown config arguments {sorted(unknown)}: use 'beta' and/or 'smoke'")
  return c
