"""Papers 001 and 004 on paper 000's record VAE (issue #14): the β-VAE row trained plainly, with
aggressive inference-network training, or with SA-VAE refinement, at one budget:

  --config=experiments/configs/records_lagging.py:[METHOD][,vermont][,smoke][,steps=N][,seed=S]
      [,k=K][,svi_lr=LR][,bclip=X][,host]

METHOD: vae (default) | aggressive | savae. Everything else is `paper.py:repro/beta_vae`
(Tuple SS + String TF, latent 128, batch 128, lr 1e-3, β 0 -> 0.384 per latent dimension over
the run) with one change for all three rows: a constant learning rate (aggressive training
refuses a decaying one: each half's optax schedule would count its own updates), so that the
rows differ only in the method.

* aggressive (paper 001 Alg. 1): encoder-only inner steps in windows of 10 (the reference's
  image setting: per-example losses), at most 99, then one decoder step; held-out MI checked
  once per epoch; the run leaves aggressive mode at the first check without a new best
  (patience 1, the text setting: at this budget 5 epochs would be most of the run), where a
  new best must beat the best by 0.01 nats (`min_rise`; a deviation: the reference counts any
  rise, and on Vermont the minibatch MI sits at its log B cap from the first check, rising
  by float noise, 3e-6 nats per epoch, so the reference rule would keep the whole run
  aggressive, ~2.4 h here). The inner loop runs on the device (`inner_loop='device'`,
  `,host` for the host loop).
* savae (paper 004): K SVI steps (k=K, default 20) of SGD with momentum 0.5, lr 1, clip 5,
  differentiated end to end with exact Hessian-vector products; SVI also at evaluation.
  svi_lr=LR replaces the SVI learning rate (default 1, the reference's). In the reference mode
  each row moves lr / B times its own gradient in the loss's units: the text VAE's loss is nats
  per sentence with B = 32, the record VAE's nats / ~100 with B = 128, so lr 1 is a ~400x
  smaller step here and changes the test loss by 0.0007 +- 0.0006 in 5 steps; lr 30 gains
  0.011 (`experiments/amortization_gap.py`, BUILD_NOTES #14). bclip=X: the cap on the backward
  pass's adjoints (`refine.SVIConfig.backward_clip`; default 5, the reference's; 0 = off, how
  the savae row of 2026-12-07 was trained).

Measured on Vermont at 3000 steps (2-core CPU, idle; results/records_lagging.md): vae 324 s
of training, aggressive 1971 s (left aggressive mode at step 470), savae with k=5 4620 s
(K = 20: ~4.4 h, measured per step by bench_text). Paper 000's row (Table 1, Tuple SS + String
TF, β 0 -> 0.384, 2M steps x 32 workers): p mean 0.246 - 0.261, median 0.045 - 0.061, d_Lev
0.114 - 0.111; papers 001 / 004 have no record rows.

A counted step of either costs many plain steps (BUILD_NOTES #14 measures how many), so
compare the rows at the same number of counted steps and read the wall times beside them.

  python -m experiments.train \
      --config=experiments/configs/records_lagging.py:aggressive,vermont,steps=1000 \
      --workdir=/tmp/rl_aggressive
"""

from __future__ import annotations

import ml_collections

from experiments.configs import paper

METHODS = ("vae", "aggressive", "savae")
OPTS = ("steps", "seed", "k", "svi_lr", "bclip")


def get_config(arg=None):
  opts = [o for o in (arg or "").split(",") if o]
  method = opts.pop(0) if opts and opts[0] in METHODS else "vae"
  unknown = [
    o for o in opts if o not in ("vermont", "smoke", "host") and o.split("=")[0] not in OPTS
  ]
  if unknown:
    raise ValueError(
      f"unknown config arguments {unknown}: records_lagging.py:[METHOD][,vermont][,smoke]"
      f"[,steps=N][,seed=S][,k=K][,svi_lr=LR][,bclip=X][,host] with METHOD one of {METHODS} "
      "(default vae)"
    )
  k = [int(o[2:]) for o in opts if o.startswith("k=")]
  svi_lr = [float(o.split("=")[1]) for o in opts if o.startswith("svi_lr=")]
  bclip = [float(o.split("=")[1]) for o in opts if o.startswith("bclip=")]
  kept = [o for o in opts if o.split("=")[0] not in ("k", "svi_lr", "bclip") and o != "host"]
  c = paper.build(**paper.parse_arg(",".join(["repro/beta_vae", *kept])))
  c.optim.decay_rate = 1.0
  c.train.strategy = "plain"
  a = ml_collections.ConfigDict()
  a.window = 10
  a.max_inner = 100
  a.patience = 1
  a.check_every = 0  # one epoch of counted steps
  a.inner_loop = "host" if "host" in opts else "device"
  # the held-out MI sits at its log B cap from the first check (not lagging), where float noise
  # rises 3e-6 nats per epoch and the reference rule never fires (module doc)
  a.min_rise = 0.01
  c.train.aggressive = a
  r = ml_collections.ConfigDict()
  r.name = "none"
  r.variant = "savae"
  r.steps = k[0] if k else 20
  r.lr, r.momentum, r.clip = (svi_lr[0] if svi_lr else 1.0), 0.5, 5.0
  r.mode = "reference"
  r.gradient = "exact"
  r.backward_clip = bclip[0] if bclip else 5.0
  r.at_eval = True
  c.refine = r
  if method == "aggressive":
    c.train.strategy = "aggressive"
  elif method == "savae":
    r.name = "svi"
  if "smoke" in opts:
    a.window, a.max_inner, a.check_every = 2, 5, 4
    r.steps = k[0] if k else 2
  return c
