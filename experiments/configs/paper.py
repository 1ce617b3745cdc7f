"""One config per row of paper 000's result tables (Tables 1-14, Apps F-I), addressable as

  --config=experiments/configs/paper.py:TABLE/ROW[,vermont][,smoke][,steps=N][,seed=S]

e.g. ``paper.py:t6/ss_tf_1.28_0.64,vermont``. ``python -m experiments.sweep --list`` prints every
row with its paper numbers. Each row states the paper's result (p-value mean / median / std,
d_Lev where given) and is built from the same scaled-down CPU budget (`BUDGET`), with every
schedule period expressed as a fraction of the run, so that the paper's 2M-step proportions
(warm-up over the first 1M steps = 1/2; gen_start_step 2e5 = 1/10, ...) carry over.

Expected CPU runtime (this 2-core machine, Vermont, latent 128, batch 128, `BUDGET` steps):
the single-level rows ran at ~4 steps/s (BUILD_NOTES (b)-(c): ~13 min for 3000 steps plus ~1
min compile and ~1.5 min evaluation). Augmented rows train on twice the rows per step from
gen_start on and compile a second step. Measured with the CPU shared (BUILD_NOTES (d), train +
eval wall): beta-VAE 22 min, augmented 36 min, 32-level multiscale 24 min (90 s compile, ~2.5
steps/s), multiscale + augmented 33 min, SimpleTuple 16 min; the text rows (t7) ~8x the
recurrent work of the field model per step (estimate, not run on Vermont).
`:smoke` shrinks any row to a check of a few minutes (mostly compilation; the 4-level
multiscale + augmented smoke took 265 s with the CPU shared); `steps=N` changes the budget
(all rows of one sweep must share it).

Deviations (BUILD_NOTES.md): lr 1e-3 instead of 2.5e-4 for the short CPU budget; the 32
multiscale levels split one batch (4 records per level at batch 128) instead of 32 x 256.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from alala_jax import config as base

VERMONT_CSV = "../shared/data/vermont/alala_addresses_proto.valid.csv"
BUDGET = dict(num_steps=3000, batch_size=128, latent_dim=128, learning_rate=1e-3)


@dataclasses.dataclass(frozen=True)
class Row:
  """One paper table row: its overrides and the paper's numbers (None where not given)."""

  name: str
  build: Callable  # build(config) -> None, mutates the config
  paper: tuple  # (mean, median, std, d_lev); ranges as "a - b" strings
  note: str = ""


def _scheme(c, tuple_scheme, string_scheme):
  c.objective.tuple_scheme, c.objective.string_scheme = tuple_scheme, string_scheme


def beta_vae(tuple_scheme, string_scheme, beta_start, beta_end):
  """Table 1/4: beta and SS ramp over the whole run (App C)."""

  def build(c):
    _scheme(c, tuple_scheme, string_scheme)
    c.objective.beta_schedule = "linear"
    c.objective.beta_start, c.objective.beta_end = beta_start, beta_end
    c.objective.warmup_fraction = c.objective.ss_fraction = 1.0

  return build


def augmented(tuple_scheme, string_scheme, beta_mid, beta_end, p_sampled, gen_start):
  """Table 2/5: SS and 0 -> beta_mid over the first half, cool-down to beta_end over the
  second; augmented training from gen_start (fraction of the run)."""

  def build(c):
    _scheme(c, tuple_scheme, string_scheme)
    c.objective.beta_schedule = "warmup_cooldown"
    c.objective.beta_start, c.objective.beta_mid = 0.0, beta_mid
    c.objective.beta_end = beta_end
    c.objective.warmup_fraction = c.objective.cooldown_fraction = 0.5
    c.objective.ss_fraction = 0.5
    a = c.objective.augmented
    a.enabled, a.p_sampled, a.gen_start_fraction = True, p_sampled, gen_start

  return build


def multiscale(
  tuple_scheme,
  string_scheme,
  beta_max_start,
  beta_max_end,
  n_levels=32,
  spacing="linear",
  ratio=0.9,
  mode="beta",
  c_min=10.0,
  c_inc=0.5,
):
  """Tables 3/6, 9-11: 32 levels; SS and beta_max start -> end over the first half."""

  def build(c):
    _scheme(c, tuple_scheme, string_scheme)
    c.objective.beta_schedule = "linear"
    c.objective.beta_start, c.objective.beta_end = beta_max_start, beta_max_end
    c.objective.warmup_fraction = c.objective.ss_fraction = 0.5
    m = c.objective.multiscale
    m.n_levels, m.spacing, m.ratio = n_levels, spacing, ratio
    c.objective.name = mode
    m.c_min, m.c_inc = c_min, c_inc

  return build


def ms_augmented(
  tuple_scheme, string_scheme, gen_start, p_sampled, p_min=None, p_spacing="constant", n_augmented=0
):
  """Tables 12-14: multiscale 1.28 -> 0.64 plus augmented training (App K)."""
  ms = multiscale(tuple_scheme, string_scheme, 1.28, 0.64)

  def build(c):
    ms(c)
    a = c.objective.augmented
    a.enabled, a.p_sampled, a.gen_start_fraction = True, p_sampled, gen_start
    a.p_spacing, a.p_min = p_spacing, p_sampled if p_min is None else p_min
    a.n_augmented = n_augmented

  return build


def wae(tuple_scheme, string_scheme, weight):
  """App I: deterministic encoder, constant weight on the batch's W2^2 to N(0, I); SS over
  the whole run as in the beta-VAE baseline."""

  def build(c):
    _scheme(c, tuple_scheme, string_scheme)
    c.objective.name = "wae"
    c.objective.beta_schedule, c.objective.beta_end = "constant", weight
    c.objective.ss_fraction = 1.0

  return build


def aae(tuple_scheme, string_scheme, weight):
  """App H: deterministic encoder and a discriminator (the sigma-network with a 2-way softmax),
  one autoencoder and one discriminator step per training step, adversarial cross-entropy
  weighted like the reconstruction loss (weight 1); SS over the whole run."""

  def build(c):
    wae(tuple_scheme, string_scheme, weight)(c)
    c.objective.name = "aae"

  return build


def text(inner, latent_dim=256):
  """Table 7 (App F): one comma-separated line per record, "number,street,city,postcode,lat,
  long" (coordinates to 5 decimals), modelled by one StringLiteral and the sigma-network with a
  256-dim latent; teacher forcing; a malformed generated line scores p = 0."""

  def build(c):
    inner(c)
    c.data.format = "text"
    c.model.latent_dim = latent_dim
    c.eval.lev_field = "text"

  return build


def simple(inner):
  """Table 8 (App G): the pass-through SimpleTuple model with another row's objective."""

  def build(c):
    inner(c)
    c.model.tuple_type = "simple"

  return build


SSTF = ("SS", "TF")  # "Tuple SS + String TF"
SS = ("SS", "SS")
TF = ("TF", "TF")
AS = ("AS", "AS")
ASTF = ("AS", "TF")

TABLES: dict[str, list[Row]] = {
  "t1": [  # Table 1 / 4: beta-VAE baseline
    Row(
      "sstf_0.384",
      beta_vae(*SSTF, 0.0, 0.384),
      ("0.246 - 0.261", "0.0450 - 0.0606", "0.321 - 0.329", "0.114 - 0.111"),
    ),
    Row("sstf_0.128", beta_vae(*SSTF, 0.0, 0.128), (0.137, "<0.01", 0.267, 0.600)),
    Row(
      "astf_0.384",
      beta_vae(*ASTF, 0.0, 0.384),
      ("0.240 - 0.249", "0.0448 - 0.0505", "0.317 - 0.322", "0.184 - 0.149"),
    ),
    Row("as_0.384", beta_vae(*AS, 0.0, 0.384), (0.173, "<0.01", 0.294, 0.0306)),
    Row("ss_0.64", beta_vae(*SS, 0.0, 0.64), (0.225, "<0.01", 0.326, 0.144)),
    Row(
      "ss_0.384",
      beta_vae(*SS, 0.0, 0.384),
      ("0.215 - 0.247", "<0.01 - 0.0237", "0.317 - 0.331", "0.0865 - 0.0974"),
    ),
    Row("tf_0.384", beta_vae(*TF, 0.0, 0.384), (0.0178, 0, 0.0970, 0.0961)),
  ],
  "t5": [  # Table 2 / 5: augmented training
    Row(
      "sstf_0.64_0.128_p0.2",
      augmented(*SSTF, 0.64, 0.128, 0.2, 0.1),
      ("0.401 - 0.401", "0.321 - 0.324", "0.373 - 0.376", "0.239 - 0.195"),
    ),
    Row(
      "sstf_0.128_0.128_p0.2",
      augmented(*SSTF, 0.128, 0.128, 0.2, 0.1),
      (0.316, 0.123, 0.356, 0.0402),
    ),
    Row(
      "ss_0.64_0.128_p0.2",
      augmented(*SS, 0.64, 0.128, 0.2, 0.01),
      ("0.317 - 0.335", "0.137 - 0.180", "0.354 - 0.358", "0.116 - 0.115"),
    ),
    Row(
      "ss_0.64_0.128_p0.125",
      augmented(*SS, 0.64, 0.128, 0.125, 0.01),
      ("0.311 - 0.333", "0.105 - 0.159", "0.360 - 0.362", "0.113 - 0.112"),
    ),
    Row("ss_0.64_0.128_p0.5", augmented(*SS, 0.64, 0.128, 0.5, 0.01), (0.312, 0.110, 0.359, 0.114)),
    Row("ss_0.64_0.128_p1", augmented(*SS, 0.64, 0.128, 1.0, 0.01), (0.311, 0.110, 0.358, 0.108)),
  ],
  "t6": [  # Table 3 / 6: multiscale VAE only
    Row(
      "sstf_1.28_0.64",
      multiscale(*SSTF, 1.28, 0.64),
      ("0.476 - 0.509", "0.494 - 0.580", "0.382 - 0.384", "0.916 - 0.921"),
    ),
    Row("sstf_1.28_1.28", multiscale(*SSTF, 1.28, 1.28), (0.460, 0.474, 0.373, 0.921)),
    Row(
      "ss_1.28_0.64",
      multiscale(*SS, 1.28, 0.64),
      ("0.402 - 0.411", "0.349 - 0.361", "0.367 - 0.371", "0.497 - 0.525"),
    ),
    Row("ss_5.12_0.64", multiscale(*SS, 5.12, 0.64), (0.386, 0.297, 0.368, 0.605)),
    Row("ss_2.56_0.64", multiscale(*SS, 2.56, 0.64), (0.376, 0.275, 0.367, 0.619)),
    Row(
      "ss_0_0.64",
      multiscale(*SS, 0.0, 0.64),
      (0.218, 0.00738, 0.315, 0.0441),
      "warm-up from 0 (Sec 6: does not help)",
    ),
    Row("ss_1.28_1.28", multiscale(*SS, 1.28, 1.28), (0.395, 0.326, 0.367, 0.581)),
    Row("ss_0.64_0.64", multiscale(*SS, 0.64, 0.64), (0.313, 0.152, 0.344, 0.268)),
    Row("ss_2.56_2.56", multiscale(*SS, 2.56, 2.56), (0.396, 0.306, 0.379, 0.685)),
  ],
  "t7": [  # Table 7 (App F): comma-separated text model; paper: malformed of 10,000
    Row(
      "kl_warmup",
      text(beta_vae(*TF, 0.0, 0.768)),
      (0.424, 0.411, 0.344, None),
      "KL warm-up 0 -> 0.768; 23 of 10,000 malformed",
    ),
    Row(
      "ms_2.56_1.28",
      text(multiscale(*TF, 2.56, 1.28)),
      (0.436, 0.428, 0.340, None),
      "multiscale beta_max 2.56 -> 1.28: posterior collapse; 17 malformed",
    ),
    Row(
      "ms_0.768",
      text(multiscale(*TF, 0.768, 0.768)),
      (0.394, 0.356, 0.344, None),
      "multiscale, beta_max fixed at 0.768; 43 malformed",
    ),
  ],
  "t8": [  # Table 8 (App G): pass-through SimpleTuple
    Row("tf_0.384", simple(beta_vae(*TF, 0.0, 0.384)), (0.0835, 1.33e-4, 0.192, None)),
    Row("ss_0.384", simple(beta_vae(*SS, 0.0, 0.384)), (0.0652, 2.68e-7, 0.175, None)),
    Row("aug_tf", simple(augmented(*TF, 0.64, 0.128, 0.2, 0.04)), (0.118, 0.00110, 0.229, None)),
    Row("ms_tf", simple(multiscale(*TF, 1.28, 0.64)), (0.0766, 6.81e-5, 0.186, None)),
  ],
  "t9": [  # Table 9 (App J): geometric spacing, inverted weights (Eq 8)
    Row(
      "r0.9_1.28_0.64",
      multiscale(*SSTF, 1.28, 0.64, spacing="geometric", ratio=0.9, mode="inverted"),
      ("0.425 - 0.445", "0.403 - 0.448", "0.362 - 0.368", "0.601 - 0.732"),
    ),
    Row(
      "r0.9_2.56_1.28",
      multiscale(*SSTF, 2.56, 1.28, spacing="geometric", ratio=0.9, mode="inverted"),
      ("0.441 - 0.488", "0.433 - 0.538", "0.376 - 0.379", "0.904 - 0.918"),
    ),
    Row(
      "r0.8_5.12_2.56",
      multiscale(*SSTF, 5.12, 2.56, spacing="geometric", ratio=0.8, mode="inverted"),
      ("0.400 - 0.403", "0.354 - 0.360", "0.362 - 0.358", "0.594 - 0.710"),
    ),
  ],
  "t10": [  # Table 10 (App J): geometric spacing, plain weights
    Row(
      "r0.9_2.56_1.28",
      multiscale(*SSTF, 2.56, 1.28, spacing="geometric", ratio=0.9),
      ("0.493 - 0.494", "0.548 - 0.549", "0.385 - 0.380", "0.910 - 0.921"),
    ),
    Row(
      "r0.8_1.28_0.64",
      multiscale(*SSTF, 1.28, 0.64, spacing="geometric", ratio=0.8),
      ("0.247 - 0.269", "0.0563 - 0.0998", "0.316 - 0.320", "0.0620 - 0.0714"),
    ),
  ],
  "t11": [  # Table 11 (App J): target capacities (Eq 9), beta unused
    Row(
      "c10_0.2",
      multiscale(*SSTF, 1.0, 1.0, mode="capacity", c_min=10, c_inc=0.2),
      ("0.434 - 0.449", "0.402 - 0.434", "0.382 - 0.375", "0.913 - 0.914"),
    ),
    Row(
      "c10_0.5",
      multiscale(*SSTF, 1.0, 1.0, mode="capacity", c_min=10, c_inc=0.5),
      ("0.276 - 0.301", "0.0874 - 0.125", "0.332 - 0.341", "0.483 - 0.517"),
    ),
    Row(
      "c15_0.2",
      multiscale(*SSTF, 1.0, 1.0, mode="capacity", c_min=15, c_inc=0.2),
      ("0.319 - 0.343", "0.153 - 0.223", "0.350 - 0.347", "0.642 - 0.628"),
    ),
  ],
  "t12": [  # Table 12 (App K): multiscale + augmented, constant p_sampled
    Row(
      "sstf_gen0.5_p0.2",
      ms_augmented(*SSTF, 0.5, 0.2),
      ("0.465 - 0.471", "0.471 - 0.491", "0.377 - 0.383", "0.770 - 0.780"),
    ),
    Row(
      "sstf_gen0.1_p0.2",
      ms_augmented(*SSTF, 0.1, 0.2),
      ("0.444 - 0.457", "0.425 - 0.466", "0.385 - 0.383", "0.719 - 0.662"),
    ),
    Row(
      "ss_gen0.4_p0.2",
      ms_augmented(*SS, 0.4, 0.2),
      ("0.358 - 0.385", "0.196 - 0.267", "0.376 - 0.381", "0.427 - 0.441"),
    ),
  ],
  "t13": [  # Table 13 (App K): per-level p_sampled, linear spacing
    Row(
      "sstf_gen0.5_lin0.2_1",
      ms_augmented(*SSTF, 0.5, 1.0, 0.2, "linear"),
      ("0.428 - 0.484", "0.420 - 0.528", "0.357 - 0.376", "0.621 - 0.715"),
    ),
    Row(
      "ss_gen0.4_lin0.2_1",
      ms_augmented(*SS, 0.4, 1.0, 0.2, "linear"),
      ("0.382 - 0.417", "0.279 - 0.357", "0.375 - 0.386", "0.392 - 0.536"),
    ),
  ],
  "t14": [  # Table 14 (App K): per-level p_sampled, geometric spacing; fewer augmented
    Row(
      "ss_n32_geo0.2_1",
      ms_augmented(*SS, 0.4, 1.0, 0.2, "geometric", n_augmented=32),
      ("0.373 - 0.383", "0.257 - 0.303", "0.371 - 0.366", "0.529 - 0.410"),
      "n_augmented 32 (split over the levels: 1 per level)",
    ),
    Row(
      "ss_geo0.2_1",
      ms_augmented(*SS, 0.4, 1.0, 0.2, "geometric"),
      ("0.371 - 0.389", "0.268 - 0.276", "0.367 - 0.381", "0.397 - 0.537"),
    ),
  ],
  "baselines": [  # Apps H-I (Apps F, G: tables t7, t8)
    Row(
      "aae",
      aae(*SSTF, 1.0),
      (0.0576, 0, 0.183, None),
      "App H: AAE, Tuple SS + String TF, adversarial CE weight 1",
    ),
    Row(
      "wae",
      wae(*SSTF, 0.128),
      (0.0240, 0, 0.112, None),
      "App I: WAE, Tuple SS + String TF, W2^2 weight 0.128 per latent dim",
    ),
  ],
  # The scaled-down reproduction of issue #4: the paper's headline rows, one budget.
  "repro": [
    Row(
      "beta_vae",
      beta_vae(*SSTF, 0.0, 0.384),
      ("0.246 - 0.261", "0.0450 - 0.0606", "0.321 - 0.329", "0.114 - 0.111"),
      "Table 1, Tuple SS + String TF, beta 0 -> 0.384",
    ),
    Row(
      "augmented",
      augmented(*SSTF, 0.64, 0.128, 0.2, 0.1),
      ("0.401 - 0.401", "0.321 - 0.324", "0.373 - 0.376", "0.239 - 0.195"),
      "Table 5, beta 0 -> 0.64 -> 0.128, p_sampled 1/5, gen_start 1/10",
    ),
    Row(
      "multiscale",
      multiscale(*SSTF, 1.28, 0.64),
      ("0.476 - 0.509", "0.494 - 0.580", "0.382 - 0.384", "0.916 - 0.921"),
      "Table 6, 32 levels, beta_max 1.28 -> 0.64",
    ),
    Row(
      "multiscale_augmented",
      ms_augmented(*SSTF, 0.5, 0.2),
      ("0.465 - 0.471", "0.471 - 0.491", "0.377 - 0.383", "0.770 - 0.780"),
      "Table 12, gen_start 1/2, p_sampled 1/5",
    ),
    Row(
      "simple_tuple",
      simple(beta_vae(*TF, 0.0, 0.384)),
      (0.0835, 1.33e-4, 0.192, None),
      "Table 8, pass-through, teacher forcing, beta 0 -> 0.384",
    ),
  ],
}


def find(table: str, row: str) -> Row:
  if table not in TABLES:
    raise ValueError(f"unknown table {table!r}: one of {sorted(TABLES)}")
  rows = {r.name: r for r in TABLES[table]}
  if row not in rows:
    raise ValueError(f"unknown row {row!r} of {table}: one of {sorted(rows)}")
  return rows[row]


def build(
  table: str,
  row: str,
  vermont: bool = False,
  smoke: bool = False,
  steps: int | None = None,
  seed: int = 0,
):
  c = base.base_config()
  c.seed = seed
  c.train.num_steps = steps or BUDGET["num_steps"]
  c.train.batch_size = BUDGET["batch_size"]
  c.model.latent_dim = BUDGET["latent_dim"]
  c.optim.learning_rate = BUDGET["learning_rate"]
  c.train.log_every = 100
  c.train.eval_every = max(100, c.train.num_steps // 10)
  c.train.checkpoint_every = 500
  c.eval.generation_prior = "tracked,aggregate"  # the paper's generation is the headline
  find(table, row).build(c)
  if vermont:
    c.data.csv = VERMONT_CSV
    c.data.columns = "long=LON"  # the Vermont file's LON column is the field long
  if smoke:
    base.smoke(c)
    if c.objective.multiscale.n_levels > 1:  # keep the level axis, shrink it
      c.objective.multiscale.n_levels = 4
  return c


def parse_arg(arg: str | None) -> dict:
  """'t6/sstf_1.28_0.64,vermont,steps=500,seed=1' -> build() keyword arguments."""
  if not arg:
    raise ValueError(
      "name a row: --config=experiments/configs/paper.py:TABLE/ROW[,vermont]"
      "[,smoke][,steps=N][,seed=S]; `python -m experiments.sweep --list` lists "
      "them"
    )
  head, *opts = arg.split(",")
  if "/" not in head:
    raise ValueError(f"expected TABLE/ROW, got {head!r}")
  table, row = head.split("/", 1)
  kw = dict(table=table, row=row)
  for o in opts:
    if o in ("vermont", "smoke"):
      kw[o] = True
    elif o.startswith("steps="):
      kw["steps"] = int(o[6:])
    elif o.startswith("seed="):
      kw["seed"] = int(o[5:])
    else:
      raise ValueError(f"unknown option {o!r}: vermont, smoke, steps=N, seed=S")
  return kw


def get_config(arg=None):
  return build(**parse_arg(arg))
