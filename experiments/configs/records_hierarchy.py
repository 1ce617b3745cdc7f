"""Paper 002's latent hierarchy on paper 000's record VAE (issue #15), against the single-layer
β-VAE at the same budget:

  --config=experiments/configs/records_hierarchy.py:[VARIANT][,vermont][,smoke][,steps=N][,seed=S]

VARIANT: lvae | lvae+ (default) | biva (`models.hierarchical_record`). Everything else is
`paper.py:repro/beta_vae` (Tuple SS + String TF, latent 128, batch 128, lr 1e-3, beta 0 -> 0.384
per latent dimension over the run): the record encoder's 128-dim embedding feeds the
hierarchy's inference network and its generative path feeds the record decoder. The hierarchy
is small for records (L = 3, latents 32 / 16 / 8 per layer, M = 2 dense layers of 128 per
block; no dropout: the records' models have none; free bits off, as the β-VAE's β schedule is
the budget-matched objective) and generates from its own prior (`eval.generation_prior =
'tracked'`, nothing fitted). The baseline is `paper.py:repro/beta_vae` with the same options.

  python -m experiments.train \
      --config=experiments/configs/records_hierarchy.py:lvae+,vermont,steps=3000 --workdir=/tmp/rh
"""

from __future__ import annotations

import ml_collections

from alala_jax.nn.hierarchical import VARIANTS
from experiments.configs import paper

OPTS = ("steps", "seed")


def get_config(arg=None):
  opts = [o for o in (arg or "").split(",") if o]
  variant = opts.pop(0) if opts and opts[0] in VARIANTS else "lvae+"
  unknown = [o for o in opts if o not in ("vermont", "smoke") and o.split("=")[0] not in OPTS]
  if unknown:
    raise ValueError(
      f"unknown config arguments {unknown}: records_hierarchy.py:[VARIANT][,vermont][,smoke]"
      f"[,steps=N][,seed=S] with VARIANT one of {VARIANTS} (default lvae+)"
    )
  c = paper.build(**paper.parse_arg(",".join(["repro/beta_vae", *opts])))
  h = ml_collections.ConfigDict()
  h.variant = variant
  h.latent_dims = (32, 16, 8)
  h.hidden = 128
  h.block_layers = 2
  h.q_dropout = h.p_dropout = 0.0
  h.kl_estimator = "sample"
  h.softplus_logvar = True
  c.model.hierarchy = h
  c.eval.generation_prior = "tracked"  # the hierarchy's own prior p(z)
  if "smoke" in opts:
    h.latent_dims, h.hidden, h.block_layers = (6, 4), 16, 1
  return c
