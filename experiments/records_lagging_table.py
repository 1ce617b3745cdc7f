r"""Papers 001 and 004 on paper 000's record VAE (issue #14, item 4): the β-VAE row of
`experiments/configs/records_lagging.py` trained plainly, with aggressive inference-network
training and with SA-VAE refinement, at one budget, in one table.

  python -m experiments.records_lagging_table --rows=vae,aggressive --workdir=/tmp/rl

Each row trains in WORKDIR/KEY (KEY = the row, for SA-VAE `savae_k{K}[_lr{LR}][_bclip{X}]`:
another K, SVI lr or backward clip is another row) and the directory is kept: a rerun resumes the row's training
from its last checkpoint, or only evaluates it when training had finished, and rows already in
the results file with the same config are skipped. The columns: the zip-coordinate p-value
mean and median from the paper's tracked Gaussian and from the aggregate posterior, d_Lev of
the street reconstructions, the test and generated losses (the paper's Table 1 columns), the
test KL, counted steps, batches consumed (aggressive mode's inner steps included), the held-out
MI checks of aggressive training and the step it left aggressive mode, and the training and
evaluation seconds. Writes JSON and a Markdown table (--results).
"""

from __future__ import annotations

import math
import os
import time

from absl import app, flags, logging

from alala_jax import runtime
from experiments import results_io

ROWS = ("vae", "aggressive", "savae")

_ROWS = flags.DEFINE_list("rows", ["vae", "aggressive"], f"Rows, of {ROWS}.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Rows train in WORKDIR/KEY (kept).", required=True)
_STEPS = flags.DEFINE_integer("steps", 0, "Counted steps of every row (0: the config's, 3000).")
_K = flags.DEFINE_integer("k", 20, "SVI steps of the SA-VAE row (paper 004: 20).")
_SVI_LR = flags.DEFINE_float(
  "svi_lr", 1.0, "SVI learning rate of the SA-VAE row (the reference's 1; records_lagging.py)."
)
_BCLIP = flags.DEFINE_float(
  "svi_backward_clip",
  5.0,
  "Cap on the SA-VAE row's backward adjoints (the reference's 5; 0 = off: the savae_k5_bclip0 "
  "row).",
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of every row.")
_VERMONT = flags.DEFINE_bool("vermont", True, "Train on the paper's Vermont CSV (../shared).")
_SMOKE = flags.DEFINE_bool("smoke", False, "A tiny version (a check of the script).")
_RESULTS = flags.DEFINE_string("results", "results/records_lagging", "Results file stem.")


def row_arg(row: str) -> str:
  """The `records_lagging.py` config argument of one row."""
  if row not in ROWS:
    raise app.UsageError(f"unknown row {row!r}: expected some of {ROWS}")
  parts = [row, *(["vermont"] if _VERMONT.value else []), *(["smoke"] if _SMOKE.value else [])]
  parts += [f"steps={_STEPS.value}"] if _STEPS.value else []
  parts += [f"seed={_SEED.value}"]
  if row == "savae":
    parts += [f"k={_K.value}"] + [arg for arg, _ in _savae_options()]
  return ",".join(parts)


def row_key(row: str) -> str:
  """The row's name in the results and its workdir WORKDIR/KEY: SA-VAE rows with another K, SVI
  lr or backward clip are other rows (a kept workdir of another K must not be resumed as this
  one)."""
  if row != "savae":
    return row
  return f"savae_k{_K.value}" + "".join(suffix for _, suffix in _savae_options())


def _savae_options() -> list[tuple[str, str]]:
  """(config argument, key suffix) of each SA-VAE option off its default."""
  opts = []
  if _SVI_LR.value != 1.0:
    opts.append((f"svi_lr={_SVI_LR.value:g}", f"_lr{_SVI_LR.value:g}"))
  if _BCLIP.value != 5.0:
    opts.append((f"bclip={_BCLIP.value:g}", f"_bclip{_BCLIP.value:g}"))
  return opts


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  from alala_jax.train import loop
  from experiments.configs import records_lagging

  results = results_io.read_json(_RESULTS.value) or {}
  for row in _ROWS.value:
    arg, key = row_arg(row), row_key(row)
    if results.get(key, {}).get("config") == arg:
      print(f"{key}: in {_RESULTS.value}.json already (same config): skipped", flush=True)
      continue
    config = records_lagging.get_config(arg)
    wd = os.path.join(_WORKDIR.value, key)
    t0 = time.time()
    res = loop.train_and_evaluate(config, wd, log=print)
    seconds = time.time() - t0
    results[key] = {
      "config": arg,
      "steps": int(res["step"]),
      "batches": int(res["data_position"]),
      "train_seconds": seconds - res["eval_seconds"],
      "eval_seconds": res["eval_seconds"],
      **{k: float(res.get(k, math.nan)) for k in KEYS},
      **aggressive_checks(wd),
    }
    print(key, results[key], flush=True)
    write(results, _RESULTS.value)  # after every row: a stopped table keeps the rows it ran


def aggressive_checks(workdir: str) -> dict:
  """The held-out MI checks in `workdir`'s metrics.jsonl and the step of the check that ended
  aggressive mode (None: it never ended; no checks: not an aggressive row)."""
  from alala_jax import viz
  from alala_jax.train import strategies

  checks, left = strategies.mi_checks(viz.read_metrics(os.path.join(workdir, "metrics.jsonl")))
  return {"heldout_mi": checks, "left_aggressive_at": left}


def _left_cell(r: dict) -> str:
  if not r.get("heldout_mi"):
    return "–"
  return str(r["left_aggressive_at"]) if r["left_aggressive_at"] is not None else "never"


# the headline prior is the config's first ('tracked', the paper's); the aggregate posterior's
KEYS = (
  "pvalue/mean",
  "pvalue/median",
  "prior/aggregate/pvalue/mean",
  "prior/aggregate/pvalue/median",
  "d_lev",
  "test/loss",
  "generated/loss",
  "generated/bpc",
  "test/kl",
  "exact_copy_rate",
)


def write(results: dict, stem: str) -> None:
  results_io.write_json(stem, results)
  lines = [
    "Record VAE (paper 000's Table 1 β-VAE row at the reproduction budget, constant lr) trained "
    "plainly, with aggressive training (paper 001) and with SA-VAE (paper 004); "
    "`python3 -m experiments.records_lagging_table`, configs in the first column.",
    "",
    "| row (records_lagging.py:…) | p mean (tracked) | p median (tracked) | p mean (aggregate) | "
    "p median (aggregate) | d_Lev | test loss | generated loss | generated BPC | test KL | "
    "exact copies | counted steps | batches | left aggressive at | train s | eval s |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for r in results.values():
    cells = [f"{r[k]:.4f}" for k in KEYS]
    lines.append(
      f"| {r['config']} | {' | '.join(cells)} | {r['steps']} | {r['batches']} | "
      f"{_left_cell(r)} | {r['train_seconds']:.0f} | {r['eval_seconds']:.0f} |"
    )
  results_io.write_markdown(stem, lines)


if __name__ == "__main__":
  runtime.setup()
  app.run(main)
