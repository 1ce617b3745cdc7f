r"""The 'images' task: a dense Bernoulli VAE (two tanh layers of 200, latent 50: the
one-stochastic-layer model of Burda et al.'s IWAE paper) trained on the ELBO (objective 'beta',
beta = 1 constant: the model's kl_scale is 1).

  python -m experiments.train --config=experiments/configs/images.py --workdir=/tmp/img
      embedded 8x8 synthetic images (no files), ~1 min on a 2-core CPU
  python -m experiments.train --config=experiments/configs/images.py:mnist --workdir=/tmp/mnist
      static binarized MNIST from ../shared/data/binarized_mnist (50k train, 10k test)

Arguments (comma-separated): mnist, smoke, steps=N, objective=NAME (any registered objective,
e.g. geco with objective.geco.constraints='pixels<=90'), ema (evaluate with EMA parameters,
decay 0.999), lvae / lvae+ / biva (paper 002's hierarchical VAEs with its training setting:
`hierarchical` below). Prints the test ELBO and the importance-weighted NLL (k = eval.iw_samples) and
writes samples.png to the workdir. Burda et al. report NLL 86.76 nats (k = 5000) for this model
trained 3^8 passes over the data (~3.3M steps of batch 20): our CPU budgets are far smaller and
say so in BUILD_NOTES.md.
"""

import ml_collections

from alala_jax import config as base
from alala_jax.data import images as image_data


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = [a for a in (arg or "").split(",") if a]
  c = base.base_config()
  c.task = "images"  # alala_jax.tasks: records | images
  c.data = image_data.default_config()
  c.model = ml_collections.ConfigDict()
  c.model.latent_dim = 50  # IWAE's one-stochastic-layer MNIST model
  c.model.hidden = (200, 200)  # deterministic hidden layers (encoder; reversed in
  # the decoder)
  c.model.activation = "tanh"
  c.objective.name = "beta"
  c.objective.beta_schedule = "constant"
  c.objective.beta_end = 1.0  # beta = 1: the ELBO (kl_scale 1 for images)
  c.objective.geco = ml_collections.ConfigDict()
  c.objective.geco.constraints = "pixels<=20"  # GECO: -log p(x|z) per image <= tolerance
  c.objective.geco.alpha = 0.99
  c.objective.geco.nu = 1e-3
  c.objective.geco.lambda_init = 1.0
  c.objective.geco.log_lambda_min = -10.0
  c.objective.geco.log_lambda_max = 10.0
  c.optim.learning_rate = 1e-3  # Adam 1e-3 (IWAE: 1e-3 with decay over passes)
  c.optim.decay_rate = 1.0
  c.optim.clip_norm = 0.0
  c.train.batch_size = 100
  c.train.num_steps = 3000
  c.train.log_every = 250
  c.train.eval_every = 1000
  c.train.checkpoint_every = 1000
  c.eval = ml_collections.ConfigDict()
  c.eval.iw_samples = 1000  # importance samples of the IW-NLL (BIVA: 1000)
  c.eval.iw_chunk = 100  # samples per chunk (memory O(chunk x batch))
  c.eval.batch_size = 100  # test images per evaluation batch
  c.eval.num_test = 0  # 0 = the whole test set
  c.eval.num_samples_png = 100  # samples in samples.png
  c.eval.l_above_samples = 1  # hierarchical VAEs: samples per image of L^{>k} (0: skip)
  for a in args:
    if a == "mnist":
      c.data.source = "binarized_mnist"
      c.train.num_steps = 20000
      c.train.eval_every = 5000
      c.train.checkpoint_every = 5000
    elif a == "smoke":
      c.data.num_synthetic = 300
      if c.model.get("kind") != "hierarchical":
        c.model.latent_dim, c.model.hidden = 4, (16,)
      c.train.batch_size, c.train.num_steps = 20, 20
      c.train.log_every = c.train.eval_every = c.train.checkpoint_every = 10
      c.train.eval_batches = 1
      c.eval.iw_samples, c.eval.iw_chunk, c.eval.batch_size = 20, 10, 20
      c.eval.num_test, c.eval.num_samples_png = 40, 16
      if c.data.source == "binarized_mnist":
        c.data.limit, c.data.test_limit = 400, 100
    elif a.startswith("steps="):
      c.train.num_steps = int(a.split("=", 1)[1])
    elif a.startswith("objective="):
      c.objective.name = a.split("=", 1)[1]
    elif a == "ema":
      c.optim.ema_decay = 0.999
    elif a in ("lvae", "lvae+", "biva"):
      hierarchical(c, a)
    else:
      raise ValueError(
        f"unknown config argument {a!r}: mnist, smoke, steps=N, objective=NAME, ema, lvae, "
        "lvae+, biva"
      )
  if c.model.get("kind") == "hierarchical" and "smoke" in args:  # whatever the order
    c.model.latent_dims, c.model.hidden, c.model.block_layers = (6, 4, 2), 16, 1
  return c


def hierarchical(c: ml_collections.ConfigDict, variant: str) -> None:
  """Paper 002's binary-image setting (App C; DESIGN §2): the dense hierarchy (L = 6, M = 3),
  free bits of 2 nats per layer and example (BIVA's BU and TD halves each a layer), Adamax 2e-3,
  batch 48, EMA 0.9995 of the parameters for evaluation, dropout 0.5. The paper then fine-tunes
  with free bits 0: `--config.objective.free_bits_until=0.9` switches lambda to 0 for the last
  10 % of the steps (or resume a finished workdir with `free_bits=0` and more steps)."""
  c.model = ml_collections.ConfigDict()
  c.model.kind = "hierarchical"
  c.model.variant = variant
  c.model.latent_dims = (48, 40, 32, 24, 16, 8)
  c.model.hidden = 64
  c.model.block_layers = 3
  c.model.q_dropout = c.model.p_dropout = 0.5
  c.model.kl_estimator = "sample"
  c.model.softplus_logvar = True
  c.objective.name = "free_bits"
  c.objective.free_bits = 2.0
  c.optim.name = "adamax"
  c.optim.learning_rate = 2e-3
  c.optim.ema_decay = 0.9995
  c.train.batch_size = 48
