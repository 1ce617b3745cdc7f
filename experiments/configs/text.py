r"""The 'text' task: the LSTM text VAE of papers 001 / 004 trained on the ELBO (objective 'beta',
beta = 1: the model's kl_scale is 1), optionally with aggressive inference-network training.

  python -m experiments.train --config=experiments/configs/text.py --workdir=/tmp/text
      the embedded corpus (no files), a small model; ~2 min on a 2-core CPU
  python -m experiments.train --config=experiments/configs/text.py:synthetic --workdir=/tmp/s
      paper 001's synthetic experiment (App B.1): oracle_001 data (16k/2k/2k sequences of 10
      words, vocabulary 1000), LSTM encoder and decoder of 50 units, 50-d embeddings, a scalar
      latent, dropout 0.5, SGD lr 1.0, clip 5, batch 32
  ...:synthetic,aggressive    the same with aggressive training (paper 001 Alg. 1)
  ...:ptb                     PTB with paper 001 App B.2's sizes (embeddings 512, LSTMs 1024,
                              latent 32): far beyond a CPU session; scale down with
                              model.* overrides and say so

Arguments (comma-separated): synthetic, ptb, lm (the LSTM language model baseline: the
decoder alone, model.latent_dim 0), aggressive (train.strategy), anneal (KL weight
0.1 -> 1 linearly over the first 10 epochs, paper 001 App B), savae | vae_svi | vae_svi_kl |
svi (paper 004's refinement variants, K = 20 steps; k=N, fd for finite-difference HVPs,
bclip=X the reference's cap on the backward pass's adjoints, 5 in its code),
synthetic004 (paper 004's synthetic data and generator architecture), oracle_decoder (that
oracle as the fixed decoder: the table's oracle-generator row), smoke,
steps=N, epochs=N (the run's length in epochs of the training set), objective=NAME, dropout=P (the
decoder's input and output dropout; synthetic004 sets 0). Prints the test ELBO, IW-NLL
(k = eval.iw_samples; papers 001/004: 500), PPL, KL, MI (both estimators, named) and active
units, and writes samples.txt to the workdir.

halving=savae | halving=lagging: the learning-rate rule of paper 004's / paper 001's code on the
validation bound (train/validation.py: the best checkpoint is kept and evaluated; after 15
epochs the lr halves on a plateau; training stops at the 6th / 5th halving, so `epochs` is
then an upper bound). Without it a run has a fixed step budget and evaluates its last step.
"""

import ml_collections

from alala_jax import config as base
from alala_jax.data import text as text_data
from alala_jax.train import validation


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = [a for a in (arg or "").split(",") if a]
  c = base.base_config()
  c.task = "text"  # alala_jax.tasks: records | images | text
  c.data = text_data.default_config()
  c.model = ml_collections.ConfigDict()  # TextVAEConfig fields (models/text.py)
  c.model.latent_dim = 8
  c.model.embed_dim = 64
  c.model.enc_hidden = 128
  c.model.dec_hidden = 128
  c.model.dec_dropout_in = 0.5  # paper 001 App B: 0.5 on the decoder's input embeddings
  c.model.dec_dropout_out = 0.5  # ... and on its outputs
  c.model.decoder = "lstm"  # lstm | oracle (the data's oracle as a fixed decoder, paper 004)
  c.objective.name = "beta"
  c.objective.beta_schedule = "constant"
  c.objective.beta_start = 1.0
  c.objective.beta_end = 1.0  # beta = 1: the ELBO
  c.optim.name = "sgd"  # paper 001 App B: SGD, lr 1.0
  c.optim.learning_rate = 1.0
  c.optim.momentum = 0.0
  c.optim.decay_rate = 1.0
  c.optim.clip_norm = 5.0  # the reference's clip_grad 5 (joint over encoder and decoder)
  c.train.batch_size = 32  # the reference's text batch size
  c.train.num_steps = 2000
  c.train.log_every = 100
  c.train.eval_every = 500
  c.train.checkpoint_every = 1000
  c.train.strategy = "plain"  # plain | aggressive (train/strategies.py)
  c.train.aggressive = ml_collections.ConfigDict()
  c.train.aggressive.window = 15  # inner steps per plateau window (text: 15)
  c.train.aggressive.max_inner = 100  # `while sub_iter < 100`
  c.train.aggressive.patience = 1  # text: leave on the first epoch the held-out MI drops
  c.train.aggressive.check_every = 0  # counted steps between MI checks (0 = one epoch)
  c.train.aggressive.inner_loop = "device"  # device (lax.while_loop) | host (BUILD_NOTES #14)
  c.refine = ml_collections.ConfigDict()  # semi-amortized refinement (alala_jax/refine.py)
  c.refine.name = "none"  # none | svi
  c.refine.variant = "savae"  # savae | vae_svi | vae_svi_kl | svi
  c.refine.steps = 20  # K (paper 004: 20; paper 001's SA-VAE runs: 10)
  c.refine.lr = 1.0
  c.refine.momentum = 0.5
  c.refine.clip = 5.0
  c.refine.mode = "reference"  # reference (batch mean, tensor clip) | per_example
  c.refine.gradient = "exact"  # exact (autodiff through the loop) | fd (reference HVPs)
  c.refine.backward_clip = 5.0  # the reference's cap on the backward pass's adjoints; 0 = off
  c.refine.at_eval = True  # the K steps also run at evaluation
  c.eval = ml_collections.ConfigDict()
  c.eval.iw_samples = 500  # papers 001 / 004: 500 importance samples
  c.eval.iw_chunk = 50  # samples per chunk (memory O(chunk x batch x T x V))
  c.eval.batch_size = 100
  c.eval.num_test = 0  # 0 = the whole test set
  c.eval.num_samples_txt = 20  # sampled sentences in samples.txt
  epochs = None
  anneal = False
  halving = ""
  for a in args:
    if a == "synthetic":
      c.data.source = "oracle_001"
      c.model.latent_dim = 1  # a scalar latent: the posterior mean space (App A)
      c.model.embed_dim = c.model.enc_hidden = c.model.dec_hidden = 50
      epochs = epochs or 50
    elif a == "synthetic004":  # paper 004 Sec 5.1: an LSTM generator conditioned on z1, z2
      c.data.source = "oracle_004"
      c.model.latent_dim, c.model.embed_dim = 2, 100
      c.model.enc_hidden = c.model.dec_hidden = 100
      c.model.z_to_h0, c.model.z_in_input = False, True  # the oracle's wiring
      c.model.dec_dropout_in = c.model.dec_dropout_out = 0.0
      epochs = epochs or 30
    elif a == "oracle_decoder":  # the generator is the oracle itself; only the encoder trains
      c.model.decoder = "oracle"
    elif a == "ptb":
      c.data.source = "ptb"
      c.model.latent_dim, c.model.embed_dim = 32, 512
      c.model.enc_hidden = c.model.dec_hidden = 1024
    elif a == "lm":  # the LSTM language model baseline: the decoder alone (latent_dim 0)
      c.model.latent_dim = 0
    elif a == "aggressive":
      c.train.strategy = "aggressive"
    elif a == "anneal":
      anneal = True
    elif a == "smoke":
      c.data.num_sequences = 200
      c.model.latent_dim, c.model.embed_dim = 2, 8
      c.model.enc_hidden = c.model.dec_hidden = 16
      c.train.batch_size, c.train.num_steps = 16, 12
      c.train.log_every = c.train.eval_every = c.train.checkpoint_every = 6
      c.train.eval_batches = 1
      c.train.aggressive.window, c.train.aggressive.max_inner = 3, 8
      c.train.aggressive.check_every = 4
      c.refine.steps = 3
      c.eval.iw_samples, c.eval.iw_chunk, c.eval.batch_size = 10, 5, 10
      c.eval.num_test, c.eval.num_samples_txt = 20, 3
      if c.data.source == "ptb":
        c.data.limit, c.data.test_limit, c.data.max_length = 200, 40, 20
      epochs = None
    elif a.startswith("steps="):
      c.train.num_steps = int(a.split("=", 1)[1])
      epochs = None
    elif a.startswith("epochs="):
      epochs = int(a.split("=", 1)[1])
    elif a in ("savae", "vae_svi", "vae_svi_kl", "svi"):
      c.refine.name, c.refine.variant = "svi", a
    elif a.startswith("k="):
      c.refine.steps = int(a.split("=", 1)[1])
    elif a == "fd":
      c.refine.gradient = "fd"
    elif a.startswith("bclip="):  # the reference's backward clip (alala_jax/refine.py)
      c.refine.backward_clip = float(a.split("=", 1)[1])
    elif a in ("halving=savae", "halving=lagging"):
      halving = a.split("=", 1)[1]
    elif a.startswith("dropout="):  # the decoder's input and output dropout (App B: 0.5)
      c.model.dec_dropout_in = c.model.dec_dropout_out = float(a.split("=", 1)[1])
    elif a.startswith("objective="):
      c.objective.name = a.split("=", 1)[1]
    else:
      raise ValueError(
        f"unknown config argument {a!r}: synthetic, synthetic004, oracle_decoder, ptb, lm, "
        "aggressive, anneal, savae, vae_svi, vae_svi_kl, svi, k=N, fd, bclip=X, smoke, steps=N, "
        "epochs=N, objective=NAME, halving=savae|lagging, dropout=P"
      )
  if epochs:
    c.train.num_steps = epochs * train_sentences(c) // c.train.batch_size
  if halving:  # checks once per epoch of the training set, as loaded (resolved at the start)
    (validation.savae_rule if halving == "savae" else validation.lagging_rule)(c)
  if anneal:  # paper 001 App B: 0.1 -> 1 over the first 10 epochs (or the whole short run)
    c.objective.beta_schedule = "linear"
    c.objective.beta_start = 0.1
    per_epoch = max(train_sentences(c) // c.train.batch_size, 1)
    c.objective.warmup_fraction = min(1.0, 10 * per_epoch / c.train.num_steps)
  return c


def train_sentences(c) -> int:
  """Training sentences of the configured source (its documented default sizes)."""
  if c.data.source == "oracle_001":
    return (c.data.num_sequences or 20000) * 16 // 20
  if c.data.source == "ptb":
    return c.data.limit or 42068
  if c.data.source == "oracle_004":
    return 5000 if not c.data.num_sequences else c.data.num_sequences * 5 // 7
  return (c.data.num_sequences or 2000) * 8 // 10
