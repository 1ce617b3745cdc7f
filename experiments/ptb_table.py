r"""Paper 001's text comparison on PTB at a stated CPU budget (issue #14): the LSTM language
model, the VAE, the VAE with KL annealing, aggressive training and SA-VAE, each trained for the
same number of counted steps of the same small model, with PPL, NLL, KL, MI and AU.

  python -m experiments.ptb_table --steps=2000 --results=results/ptb_table

Rows run `experiments/configs/text.py:ptb[,lm|anneal|aggressive|savae],steps=N` with the model
scaled down by flags (paper 001 App B.2: embeddings 512, LSTMs 1024, latent 32: far beyond a
CPU session) and sentences capped at --max_length words (longer ones dropped, counted in the
data line the run prints). The LM row is the text VAE with latent_dim 0 (the decoder alone):
its NLL is exact. Every other row's NLL is the IW bound (k = --iw_samples) on the first
--num_test test sentences; PPL = exp(NLL summed / tokens incl. </s>). Aggressive training's
counted steps each take up to 99 encoder steps first (the 'batches' column counts what it
consumed); SA-VAE takes K = --savae_k SVI steps per training step and at evaluation. The
seconds are wall times of training plus evaluation. Writes JSON and a Markdown table.

With --workdir each row trains in WORKDIR/ROW (SA-VAE at a --svi_backward_clip X other than 5:
the row savae_bclipX, in the results and as the directory) and the directory is kept: a rerun
resumes its training from the last checkpoint (or only evaluates, when training had
finished), so a crash in the final evaluation does not lose hours of training (a resumed
row's seconds are those of the rerun alone). Without it rows train in temporary directories.
"""

from __future__ import annotations

import time

from absl import app, flags, logging

from alala_jax import runtime
from experiments import results_io
from experiments.configs import rows_001_004

ROWS = rows_001_004.PTB_ROWS

_ROWS = flags.DEFINE_list("rows", list(ROWS), f"Rows, of {ROWS}.")
_STEPS = flags.DEFINE_integer("steps", 1000, "Counted training steps of every row (batch 32).")
_EMBED = flags.DEFINE_integer("embed", 64, "Word embedding size (paper: 512).")
_HIDDEN = flags.DEFINE_integer("hidden", 128, "Encoder and decoder LSTM units (paper: 1024).")
_LATENT = flags.DEFINE_integer("latent", 16, "Latent dimensions (paper: 32).")
_MAX_LENGTH = flags.DEFINE_integer("max_length", 20, "Most words per sentence (longer: dropped).")
_SAVAE_K = flags.DEFINE_integer("savae_k", 10, "SVI steps of SA-VAE (paper 001's runs: 10).")
_BCLIP = flags.DEFINE_float(
  "svi_backward_clip",
  5.0,
  "SA-VAE's cap on the backward adjoints (the reference's 5; 0 = off, how the savae row of "
  "2026-12-02 ran: its config argument says bclip=0).",
)
_NUM_TEST = flags.DEFINE_integer("num_test", 500, "Test sentences evaluated (0 = all 3761).")
_IW = flags.DEFINE_integer("iw_samples", 100, "Importance samples of the NLL bound.")
_RESULTS = flags.DEFINE_string("results", "results/ptb_table", "Results file stem.")
_WORKDIR = flags.DEFINE_string(
  "workdir", None, "Keep each row's training in WORKDIR/ROW (resumed or re-evaluated on rerun)."
)
_SMOKE = flags.DEFINE_bool("smoke", False, "A tiny version (a check of the script).")
_CKPT = flags.DEFINE_integer(
  "checkpoint_every",
  0,
  "Checkpoint interval of a row (0: at its end only, as the table's rows ran); a long row "
  "with --workdir resumes from its last one.",
)


def row_name(row: str) -> str:
  """The row's key in the results and its directory: SA-VAE at another backward clip is
  another row (a kept directory must not be resumed as this one)."""
  return f"{row}_bclip{_BCLIP.value:g}" if row == "savae" and _BCLIP.value != 5.0 else row


def row_config(row: str):
  """(config argument, config) of one row (`rows_001_004.ptb` with this run's flags)."""
  arg, c = rows_001_004.ptb(
    row,
    steps=_STEPS.value,
    embed=_EMBED.value,
    hidden=_HIDDEN.value,
    latent=_LATENT.value,
    max_length=_MAX_LENGTH.value,
    num_test=_NUM_TEST.value,
    iw_samples=_IW.value,
    savae_k=_SAVAE_K.value,
    bclip=_BCLIP.value,
    smoke=_SMOKE.value,
  )
  if _CKPT.value > 0:  # not part of the row: where it checkpoints changes no number
    c.train.checkpoint_every = min(_CKPT.value, c.train.checkpoint_every)
  return arg, c


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  from alala_jax.train import loop

  results = results_io.read_json(_RESULTS.value) or {}
  for row in _ROWS.value:
    arg, config = row_config(row)
    name = row_name(row)
    old = results.get(name)
    if old and old["config"] == arg and old["model"] == _model(config):
      print(f"{name}: in {_RESULTS.value}.json already (same config): skipped", flush=True)
      continue
    t0 = time.time()
    lines = []
    with results_io.row_dir(_WORKDIR.value, name) as wd:
      res = loop.train_and_evaluate(config, wd, log=lines.append)
    r = {
      "config": arg,
      "model": _model(config),
      "steps": config.train.num_steps,
      "batches": int(res["data_position"]),  # batches consumed (aggressive: inner steps too)
      "seconds": time.time() - t0,
      **{k: res[f"test/{k}"] for k in ("iw_nll", "elbo", "kl", "mi_dataset", "mi_minibatch", "au")},
      "ppl": res["test/ppl_iw"],
      "iw_samples": int(res["test/iw_samples"]),
      "data": next((s for s in lines if s.startswith("data:")), ""),
    }
    results[name] = r
    print(name, {k: v for k, v in r.items() if k != "data"}, flush=True)
    write(results, _RESULTS.value)  # after every row: a stopped table keeps the rows it ran


def _model(config) -> str:
  """The sizes shared by the rows (the LM's latent is 0 whatever --latent says)."""
  m = config.model
  latent = m.latent_dim or _LATENT.value  # the LM row's 0 is not the table's latent size
  return (
    f"embed {m.embed_dim}, LSTM {m.dec_hidden}, latent {latent}, SVI K "
    f"{config.refine.steps}, max_length {config.data.max_length}, test {config.eval.num_test} "
    f"sentences, k = {config.eval.iw_samples}"
  )


def write(results: dict, stem: str) -> None:
  results_io.write_json(stem, results)
  any_row = next(iter(results.values()))
  lines = [
    f"PTB, {any_row['model']}; {any_row['data']}",
    "",
    "| row | PPL | NLL (IW) | -ELBO | KL | MI (test set) | MI (minibatch) | AU | counted steps | "
    "batches | seconds | config (text.py:…) |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for row, r in results.items():
    lines.append(
      f"| {row} | {r['ppl']:.1f} | {r['iw_nll']:.2f} | {-r['elbo']:.2f} | {r['kl']:.2f} | "
      f"{r['mi_dataset']:.2f} | {r['mi_minibatch']:.2f} | {int(r['au'])} | {r['steps']} | "
      f"{r['batches']} | {r['seconds']:.0f} | {r['config']} |"
    )
  results_io.write_markdown(stem, lines)


if __name__ == "__main__":
  runtime.setup()
  app.run(main)
