r"""One config per table row of papers 001 and 004 reproduced here (issue #14), addressable as

  --config=experiments/configs/rows_001_004.py:TABLE/ROW[,smoke]

e.g. ``python -m experiments.train --config=experiments/configs/rows_001_004.py:004_synthetic/
oracle_savae --workdir=/tmp/row`` trains that row alone. The runners build their rows with the
functions below (`synthetic001`, `synthetic004`, `ptb`; the record rows are
`records_lagging.py`'s), so a row here is exactly what its runner trained. Each row: the
command that produced our number, its CPU time on this 2-core machine (wall seconds of
training + evaluation, as its results file records them, often with the CPU shared), our number
and the paper's. `:smoke` shrinks any row to a check of about a minute (mostly compilation).

001_synthetic (paper 001 Sec 4 / Fig 2: the basic VAE collapses, aggressive training does not;
the paper gives no table number). `python3 -m experiments.lagging --workdir=/tmp/lagging
--epochs=30`, results/lagging_synthetic.md:
  vae          KL 0.003, MI 0.010, AU 0, IW-NLL 40.52                     670 s
  aggressive   KL 1.007, MI 0.998, AU 1, IW-NLL 39.42                     940 s

004_synthetic (paper 004 slide 43: -ELBO bounds; truth 19.63 for its oracle, ours 29.24 for
ours). Oracle rows: `python3 -m experiments.savae_synthetic --rows=oracle/vae,oracle/svi,
oracle/savae --epochs=10 --workdir=/tmp/s004` (results/savae_synthetic.md); learned rows at
paper 004's code's rule (best validation checkpoint, lr halving after 15 epochs):
`python3 -m experiments.savae_synthetic --rows=learned/vae,learned/svi,learned/savae
--extra=anneal,halving=savae --epochs=30 --workdir=/tmp/s004`
(results/savae_synthetic_learned_halving.md):
  oracle_vae      30.80                                   135 s    paper <= 21.77
  oracle_svi      30.08 (K = 20 from 0.1 N(0, 1), no training)   44 s    paper <= 22.33
  oracle_savae    29.68 (0.44 above the truth)            430 s    paper <= 20.13
  learned_vae     34.50                                   121 s    paper <= 27.06
  learned_svi     34.51                                   510 s    paper <= 25.82
  learned_savae   34.57                                  2139 s    paper <= 25.21

ptb (paper 001's comparison at a CPU budget: embeddings 64, LSTMs 128, latent 16, sentences
of at most 20 words, 1000 counted steps of batch 32; paper 001 has no PTB rows: its Yahoo
numbers, NLL per sentence, for the shape). `python3 -m experiments.ptb_table --rows=ROW
--workdir=/tmp/ptb_rows` (results/ptb_table.md; PPL / NLL per sentence):
  lm           249.5 / 81.16                             200 s    Yahoo LSTM-LM 328.0
  vae          262.4 / 81.90, KL 0.02, AU 0              253 s    Yahoo VAE 329.0, KL 0.0
  vae_anneal   260.1 / 81.77, KL 0.01, AU 0              241 s    Yahoo VAE + anneal 328.6
  aggressive   257.0 / 81.59, KL 1.05, AU 15            6875 s    Yahoo 328.0, KL 5.4, AU 8
  savae        260.8 / 81.81, KL 0.37, AU 1 (K = 10)    3487 s    Yahoo SA-VAE 329.2, KL 0.1

records (the record VAE on Vermont at paper 000's β-VAE repro budget; papers 001 / 004 have
no record rows, paper 000's Table 1 row: p mean 0.246-0.261, d_Lev 0.111-0.114).
`python3 -m experiments.records_lagging_table --rows=ROW --workdir=/tmp/rl`
(results/records_lagging.md; needs ../shared/data, `:smoke` runs on the embedded records):
  vae          p mean (aggregate) 0.150, d_Lev 0.800      385 s
  aggressive   p mean (aggregate) 0.205, d_Lev 0.354     2029 s
  savae        p mean (aggregate) 0.180, d_Lev 0.779     4706 s  (K = 5, SVI lr 1; the
               recorded run predates the backward clip: bclip=0)
  savae_lr30   p mean (aggregate) 0.070, d_Lev 0.521     6236 s  (K = 5, SVI lr 30:
               `--rows=savae --k=5 --svi_lr=30`)
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import ml_collections

PTB_ARGS = {  # row -> its text.py argument after 'ptb'
  "lm": "lm",
  "vae": "",
  "vae_anneal": "anneal",
  "aggressive": "aggressive",
  "savae": "savae",
}
PTB_ROWS = tuple(PTB_ARGS)
SYNTHETIC004_ROWS = (
  "oracle/vae",
  "oracle/svi",
  "oracle/savae",
  "learned/vae",
  "learned/svi",
  "learned/savae",
)


def _text(arg: str) -> ml_collections.ConfigDict:
  return _text_module().get_config(arg)


def _text_module():
  from experiments.configs import text as text_config

  return text_config


def synthetic001(run: str, *, epochs: int = 30, smoke: bool = False, iw_samples: int = 500):
  """(text.py argument, config) of paper 001's synthetic runs: 'vae' or 'aggressive'."""
  if run not in ("vae", "aggressive"):
    raise ValueError(f"unknown run {run!r}: expected 'vae' or 'aggressive'")
  arg = "synthetic" + (",aggressive" if run == "aggressive" else "")
  arg += ",smoke" if smoke else f",epochs={epochs}"
  c = _text(arg)
  if smoke:
    c.data.source, c.model.latent_dim = "oracle_001", 1
  c.eval.iw_samples = min(iw_samples, c.eval.iw_samples) if smoke else iw_samples
  return arg, c


def synthetic004(
  row: str,
  *,
  epochs: int = 10,
  extra: tuple[str, ...] = (),
  smoke: bool = False,
  source: str = "oracle_004",
  iw_samples: int = 500,
):
  """(text.py argument, config) of a row of paper 004's synthetic table, 'GENERATOR/METHOD'
  (`SYNTHETIC004_ROWS`); `extra`: text.py arguments added (e.g. 'anneal', 'halving=savae')."""
  if row not in SYNTHETIC004_ROWS:
    raise ValueError(f"unknown row {row!r}: expected one of {SYNTHETIC004_ROWS}")
  generator, method = row.split("/")
  arg = "synthetic004"
  if generator == "oracle":
    arg += ",oracle_decoder"
  if method != "vae":
    arg += f",{method}"
  arg += "".join(f",{a}" for a in extra)
  arg += ",smoke" if smoke else f",epochs={epochs}"
  c = _text(arg)
  c.data.source = source
  if smoke:
    c.model.latent_dim = 2
  if source == "oracle_001" and not smoke:  # epochs of its training set (16k sentences)
    c.train.num_steps = epochs * _text_module().train_sentences(c) // c.train.batch_size
  if generator == "oracle" and method == "svi":
    c.train.num_steps = 0  # nothing to learn: the decoder is the oracle, SVI needs no encoder
  c.eval.iw_samples = iw_samples if not smoke else 10
  c.train.log_every = max(1, min(c.train.log_every, c.train.num_steps or 1))
  return arg, c


def ptb(
  row: str,
  *,
  steps: int = 1000,
  embed: int = 64,
  hidden: int = 128,
  latent: int = 16,
  max_length: int = 20,
  num_test: int = 500,
  iw_samples: int = 100,
  savae_k: int = 10,
  bclip: float = 5.0,
  smoke: bool = False,
):
  """(text.py argument, config) of a row of the PTB table (`PTB_ROWS`) at a CPU budget (the
  defaults: the recorded table's; paper 001 App B.2: embeddings 512, LSTMs 1024, latent 32)."""
  if row not in PTB_ARGS:
    raise ValueError(f"unknown row {row!r}: expected some of {PTB_ROWS}")
  arg = ",".join(a for a in ("ptb", PTB_ARGS[row]) if a)
  if row == "savae" and bclip != 5.0:
    arg += f",bclip={bclip:g}"
  arg += ",smoke" if smoke else f",steps={steps}"
  c = _text(arg)
  if not smoke:
    c.model.embed_dim = embed
    c.model.enc_hidden = c.model.dec_hidden = hidden
    c.model.latent_dim = latent
    c.data.max_length = max_length
    c.eval.num_test = num_test
    c.eval.iw_samples = iw_samples
    c.eval.iw_chunk = min(c.eval.iw_chunk, iw_samples)
    c.refine.steps = savae_k
  if row == "lm":  # after the sizes: `smoke` sets a latent too
    c.model.latent_dim = 0
  c.train.checkpoint_every = max(c.train.num_steps, 1)
  return arg, c


def _records(method: str, opts: str = ""):
  def build(smoke: bool):
    from experiments.configs import records_lagging

    arg = method + ("" if smoke else ",vermont,seed=0") + opts + (",smoke" if smoke else "")
    return arg, records_lagging.get_config(arg)

  return build


@dataclasses.dataclass(frozen=True)
class Row:
  build: Callable[[bool], tuple]  # build(smoke) -> (argument of its config file, config)
  paper: str  # the paper's number (or what the paper shows)


ROWS: dict[str, Row] = {
  "001_synthetic/vae": Row(
    lambda smoke: synthetic001("vae", smoke=smoke), "Fig 2: collapse (AU 0, MI ~0)"
  ),
  "001_synthetic/aggressive": Row(
    lambda smoke: synthetic001("aggressive", smoke=smoke), "Fig 2: no collapse"
  ),
  **{
    f"004_synthetic/{g}_{m}": Row(
      (
        lambda smoke, g=g, m=m: (
          synthetic004(f"{g}/{m}", epochs=10, smoke=smoke)
          if g == "oracle"
          else synthetic004(f"{g}/{m}", epochs=30, extra=("anneal", "halving=savae"), smoke=smoke)
        )
      ),
      paper,
    )
    for (g, m), paper in {
      ("oracle", "vae"): "<= 21.77",
      ("oracle", "svi"): "<= 22.33",
      ("oracle", "savae"): "<= 20.13",
      ("learned", "vae"): "<= 27.06",
      ("learned", "svi"): "<= 25.82",
      ("learned", "savae"): "<= 25.21",
    }.items()
  },
  **{
    f"ptb/{r}": Row(lambda smoke, r=r: ptb(r, smoke=smoke), paper)
    for r, paper in {
      "lm": "Yahoo LSTM-LM 328.0",
      "vae": "Yahoo VAE 329.0, KL 0.0",
      "vae_anneal": "Yahoo VAE + anneal 328.6",
      "aggressive": "Yahoo 328.0, KL 5.4, AU 8 (Table 9)",
      "savae": "Yahoo SA-VAE 329.2, KL 0.1",
    }.items()
  },
  "records/vae": Row(_records("vae"), "none (paper 000 Table 1: p mean 0.246-0.261)"),
  "records/aggressive": Row(_records("aggressive"), "none"),
  "records/savae": Row(_records("savae", ",k=5,bclip=0"), "none"),
  "records/savae_lr30": Row(_records("savae", ",k=5,svi_lr=30"), "none"),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  parts = [a for a in (arg or "").split(",") if a]
  if not parts or parts[0] not in ROWS:
    raise ValueError(f"name a row first, one of {sorted(ROWS)}; got {arg!r}")
  unknown = set(parts[1:]) - {"smoke"}
  if unknown:
    raise ValueError(f"unknown arguments {sorted(unknown)}: only 'smoke' follows the row")
  return ROWS[parts[0]].build("smoke" in parts[1:])[1]
