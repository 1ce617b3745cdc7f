"""The base experiment configuration (an `ml_collections.ConfigDict`, a comment per field).

`experiments/configs/*.py` derive one config per paper table row from `base_config()`; every
config accepts a smoke argument (`--config=path.py:smoke`) that shrinks it for a CPU check.
"""

from __future__ import annotations

import importlib.util
import os
import types

import ml_collections

from alala_jax.train import validation


def config_file_module(path: str) -> types.ModuleType:
  """The module of a config file (e.g. experiments/configs/text.py), loaded from its path as
  ml_collections' `--config=path.py:arg` does; its `get_config(arg)` builds the config."""
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0  # PRNG seed for parameters, latents and sampling
  c.data = ml_collections.ConfigDict()
  c.data.schema = "alala_jax.schema:Address"  # 'module:DataclassName' of the record type
  c.data.csv = ""  # OpenAddresses-style CSV; '' = embedded synthetic data
  c.data.columns = ""  # field=COLUMN where CSV names differ, e.g. "long=LON"
  c.data.format = "fields"  # fields (the schema's tree) | text (App F: one line,
  # data.text_fields comma-separated)
  c.data.text_fields = "number,street,city,postcode,lat,long"  # App F's 6 values
  c.data.text_decimals = 5  # coordinates rounded to 5 decimals (App F)
  c.data.categorical = ""  # str fields modelled as categories of their training values (not in
  # the paper): '' (none), 'city,postcode' (path names), or 'auto' (the thresholds below)
  c.data.categorical_max_values = 1000  # 'auto': at most this many distinct training values
  c.data.categorical_max_share = 0.02  # 'auto': and at most this share of the field's training
  # values (its present values; list items counted one by one)
  c.data.on_bad_row = "error"  # 'error' or 'skip' (skipped rows are counted, reported)
  c.data.limit = 0  # read at most this many CSV rows (0 = all)
  c.data.num_synthetic = 20000  # synthetic records (when csv is '')
  c.data.num_zips = 40  # synthetic zip codes
  c.data.test_fraction = 0.1  # deterministic held-out share (paper: 8:1:1 split)
  c.data.split_seed = 0  # seed of the train/test permutation

  c.model = ml_collections.ConfigDict()
  c.model.latent_dim = 128  # embedding and latent size (Sec 2.3)
  c.model.char_dim = 16  # character embedding size (App B.1)
  c.model.tuple_type = "tuple"  # 'tuple' (App B.3) or 'simple' (pass-through, App G)
  c.model.string_scan = "field"  # 'field': a scan per string field; 'grouped': a
  # Tuple's string fields share padded scans (compiles
  # faster; 0.85x the step speed at B256, BUILD_NOTES);
  # 'packed': they share scans without padding
  c.model.gru_remat = "full"  # string GRU cells under nn.remat: none | dots (save
  # matmul outputs) | full (recompute the cell: 1.2x
  # faster step at B256 on CPU, 3x fewer temporaries;
  # BUILD_NOTES "Performance work"); same numbers

  c.objective = ml_collections.ConfigDict()
  c.objective.name = "beta"  # a registered objective (alala_jax.objectives):
  # beta (Eq 2/5) | inverted (App J Eq 8) | capacity
  # (Eq 9) | free_bits (BIVA) | geco (paper 003) | wae
  # (App I: deterministic encoder, beta weighs the
  # batch's W2^2 to N(0, I) per dim) | aae (App H)
  c.objective.free_bits = 2.0  # free_bits: lambda, nats per example and layer
  c.objective.free_bits_until = 1.0  # ... until this fraction of the run, then lambda = 0
  # (paper 002 fine-tunes with lambda = 0 after the main run)
  c.objective.geco = ml_collections.ConfigDict()  # GECO (paper 003, objectives/geco.py)
  c.objective.geco.constraints = "(lat,long)<=0.05,postcode<=0.05"  # 'field<=tolerance,...'
  # on the model's per-field recon terms (records: the
  # whitened squared error of the floats, the per-char
  # cross-entropy of a string), batch means
  c.objective.geco.alpha = 0.99  # C_ma moving-average decay (Algorithm 1)
  c.objective.geco.nu = 1e-2  # lambda <- lambda exp(nu C_ma) (not in the paper)
  c.objective.geco.lambda_init = 1.0
  c.objective.geco.log_lambda_min = -10.0  # clamp of log lambda
  c.objective.geco.log_lambda_max = 10.0
  c.objective.beta_schedule = "linear"  # constant | linear | warmup_cooldown
  c.objective.beta_start = 0.0  # beta at step 0 (linear, warmup_cooldown)
  c.objective.beta_mid = 0.64  # peak beta (warmup_cooldown)
  c.objective.beta_end = 0.384  # final beta; Table 1 best: 0 -> 0.384
  c.objective.warmup_fraction = 1.0  # share of the run for the warm-up (Table 1: whole run)
  c.objective.cooldown_fraction = 0.0  # share of the run for the cool-down (warmup_cooldown)
  c.objective.tuple_scheme = "SS"  # Tuple level: TF | AS | SS (ground truth 1 -> 0)
  c.objective.string_scheme = "TF"  # String level: TF | AS | SS
  c.objective.ss_fraction = 1.0  # share of the run over which SS goes 1 -> 0
  c.objective.augmented = ml_collections.ConfigDict()  # augmented training (Sec 5, Eq 4)
  c.objective.augmented.enabled = False
  c.objective.augmented.n_augmented = 0  # augmented latent vectors; 0 = the batch size
  c.objective.augmented.p_sampled = 0.2  # re-initialisation probability (paper: 1/5)
  c.objective.augmented.gen_start_fraction = 0.1  # start: 10% of the run (Tuple SS + String
  # TF), 1% for SS (App C)
  c.objective.augmented.p_spacing = "constant"  # per-level p_sampled under multiscale (App
  # K): constant | linear | geometric, from p_min
  # (lowest beta) to p_sampled (highest)
  c.objective.augmented.p_min = 0.2  # lowest level's end of that spacing
  c.objective.multiscale = ml_collections.ConfigDict()  # multiscale VAE (Sec 6, Eq 5; App J)
  c.objective.multiscale.n_levels = 1  # 1 = plain beta-VAE; paper: 32. The beta schedule
  # above is then beta_max's (Sec 6: 1.28 -> 0.64)
  c.objective.multiscale.spacing = "linear"  # beta_i = (i+1)/n beta_max | geometric r^(n-1-i)
  c.objective.multiscale.ratio = 0.9  # geometric common ratio r (App J: 0.9, 0.8)
  c.objective.multiscale.gamma = 128.0  # objective 'capacity': penalty per latent dim
  # (Eq 9)
  c.objective.multiscale.c_min = 10.0  # C_i = c_min + i c_inc nats (Eq 9)
  c.objective.multiscale.c_inc = 0.5
  c.objective.multiscale.shared_batch = False  # True: every level sees the whole batch (App
  # L4); False: the batch is split over levels
  c.objective.multiscale.gen_level = 0  # level whose latents generate and whose loss is
  # logged as test/generated loss (paper Figs 4, 22)

  c.optim = ml_collections.ConfigDict()
  c.optim.learning_rate = 2.5e-4  # Adam (Sec 2.4)
  c.optim.decay_rate = 0.99  # lr x 0.99 ...
  c.optim.decay_steps = 1000  # ... per 1000 steps, continuously
  c.optim.schedule = "exponential"  # exponential (Sec 2.4, in steps) | paper_run (the paper's
  # 2M-step decay compressed onto train.num_steps) | cosine (to floor x lr over the run)
  c.optim.floor = 0.0  # lower bound of the lr as a fraction of learning_rate (0 = none)
  c.optim.clip_norm = 0.01  # global-norm gradient clipping (Sec 2.4; 0 = off)
  c.optim.name = "adam"  # adam | adamax | sgd (train/optim.py)
  c.optim.momentum = 0.0  # sgd only
  c.optim.update = "all"  # all | encoder | decoder (the model's partition)
  c.optim.ema_decay = 0.0  # EMA of the parameters for evaluation (0 = off;
  # BIVA: 0.9995)

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 256  # paper: 256 per worker, 32 workers
  c.train.num_steps = 2_000_000  # paper: 2M steps
  c.train.log_every = 50  # progress line + JSON-lines metrics
  c.train.eval_every = 500  # test loss and generated loss (0 = never during training)
  c.train.eval_batches = 2  # batches for the periodic test / generated loss
  c.train.checkpoint_every = 1000  # orbax checkpoint interval (steps)
  c.train.max_to_keep = 3  # checkpoints kept
  c.train.allow_config_change = False  # resume a workdir whose config.json differs in a key
  # that changes the run (train/config_diff.py; changes of length / logging / eval are allowed)
  c.train.mesh = ""  # '' = one device; 'DATA,BETA' (e.g. '2,4'): shard the
  # batch and the multiscale level axis (train/sharding.py)
  c.train.validation = validation.default_config()  # best checkpoint, lr halving on a
  # held-out plateau, early stop (train/validation.py; off while its metric is '')

  c.eval = ml_collections.ConfigDict()
  c.eval.num_generated = 10000  # generated records scored by the p-value (Sec 2.4)
  c.eval.num_reconstructed = 10000  # training records for d_Lev (Sec 2.4)
  c.eval.chunk = 1000  # records per jit'd generation call
  c.eval.loss_batches = 8  # batches for the final train / test / generated loss
  c.eval.greedy = False  # argmax decoding instead of sampling (option)
  c.eval.zip_field = "postcode"  # field holding the zip code ('' = no p-value)
  c.eval.coord_fields = "lat,long"  # the two coordinate fields
  c.eval.lev_field = "street"  # field for the Levenshtein metric ('' = none)
  c.eval.pair_fields = "city,postcode"  # fields whose generated combination is checked against
  # the training records ('' = none)
  # Generation priors (alala_jax/latent_priors.py), a comma list: the first generates the
  # headline numbers, each other one is scored too ('prior/<name>/...'). 'tracked' = the
  # paper's moving N(mean, cov) of the sampled training latents; 'gaussian' / 'gmm' /
  # 'aggregate' are fitted on the final model's q(z|x) of training records after training.
  # Default: the aggregate posterior at temperature 0.5 (measured best among the distributions
  # that keep a spread: BUILD_NOTES "Generation priors"), with the paper's reported beside it.
  c.eval.generation_prior = "aggregate,tracked"
  c.eval.prior_records = 20000  # training records encoded for the fitted priors (0 = all)
  c.eval.prior_heldout = 0.1  # share of them held out to score the priors / choose K
  c.eval.gmm_components = "1,2,4,8,16,32,64"  # candidate mixture sizes
  c.eval.gmm_iters = 100  # EM iterations per candidate
  c.eval.prior_fit_on = "samples"  # Gaussian / GMM fitted to z ~ q(z|x) or to the means
  c.eval.prior_refined = False  # fit them to the refined posteriors q_K of SVI at evaluation
  # (refine.at_eval; in batches of train.batch_size, as in training) instead of the encoder's
  c.eval.privacy_records = 2000  # records of the privacy audit: distance to the closest
  # record against the test set as held-out baseline, membership-inference AUC (0 = off)
  # Repeated encode/decode extraction rate (paper 000 App E; metrics/privacy.extraction_rates),
  # part of the privacy audit (off with privacy_records = 0): up to privacy_records generated
  # records go through this many rounds of x -> g(mu(x)) (0 = off), and the share of rare
  # training values of one string field they reproduce is compared with that of rare held-out
  # values. 'auto' = lev_field when it is a string field, else the string field with the most
  # distinct training values; a comma list ('number,street') compares the fields' value tuples;
  # '' = off.
  c.eval.extraction_rounds = 3
  c.eval.extraction_field = "auto"
  c.eval.extraction_max_count = 1  # "rare" = at most this many occurrences
  c.eval.prior_temperature = 0.5  # scales the fitted priors' spread when sampling (0 decodes
  # posterior means of training records: higher p-values, but near-reconstructions)
  return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Shrinks any config to a CPU check that runs in well under a minute after compiling."""
  c.data.num_synthetic = 600
  c.data.limit = 600 if c.data.csv else 0
  c.model.latent_dim = 32
  c.model.string_scan = "grouped"  # compiles ~1.8x faster than per-field scans (test.py)
  c.train.batch_size = 32
  c.train.num_steps = 20
  c.train.log_every = 5
  c.train.eval_every = 10
  c.train.eval_batches = 1
  c.train.checkpoint_every = 10
  c.eval.num_generated = 200
  c.eval.num_reconstructed = 100
  c.eval.chunk = 100
  c.eval.loss_batches = 1
  c.eval.prior_records = 200
  c.eval.gmm_components = "1,2"
  c.eval.gmm_iters = 10
  c.eval.privacy_records = 100
  return c
