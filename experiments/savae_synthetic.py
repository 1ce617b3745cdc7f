r"""Paper 004's synthetic table (Kim et al. 2018, Sec 5.1): VAE / SVI / SA-VAE test NLL bounds
with the oracle generator (only inference is learned) and with a learned generator, on the
oracle_004 data, next to the oracle's true NLL.

  python -m experiments.savae_synthetic --epochs=10 --results=results/savae_synthetic

Rows run `experiments/configs/text.py:synthetic004[,oracle_decoder][,svi|savae],epochs=E`
(the SVI rows with the oracle decoder train nothing: 20 SVI steps from lambda_0 = 0.1 N(0, 1)
at evaluation). Every bound is the test IW-NLL (k = --iw_samples, paper 004: 500) with the
refined posterior as the proposal where the row refines (K = 20 steps at evaluation too). The
true NLL is -log of the integral of p(x | z) N(z; 0, I) on a 2-d grid
(`models/oracle.grid_nll`). Writes JSON and a Markdown table with the wall time of each row.
`--extra=halving=savae` selects each row's best checkpoint by the validation bound, halving
the lr on a plateau after 15 epochs as paper 004's code does (`--epochs` is then an upper
bound: the run stops at the 6th halving). `--workdir` keeps each row's training (WORKDIR/<config argument>[_<source>]) for re-evaluation
or a look at a model that went wrong; `--extra=anneal` adds config arguments to every row.
"""

from __future__ import annotations

import time

from absl import app, flags, logging

from alala_jax import runtime
from experiments import results_io
from experiments.configs import rows_001_004

_EPOCHS = flags.DEFINE_integer("epochs", 10, "Training epochs of each row.")
_SVAE_EPOCHS = flags.DEFINE_integer(
  "savae_epochs", 0, "Epochs of the SA-VAE rows (0 = --epochs): they cost ~K times more."
)
_IW = flags.DEFINE_integer("iw_samples", 500, "Importance samples (paper 004: 500).")
_ROWS = flags.DEFINE_list(
  "rows",
  ["oracle/vae", "oracle/svi", "oracle/savae", "learned/vae", "learned/svi", "learned/savae"],
  "Which rows.",
)
_RESULTS = flags.DEFINE_string("results", "results/savae_synthetic", "Results file stem.")
_SMOKE = flags.DEFINE_bool("smoke", False, "A tiny version (tests).")
_WORKDIR = flags.DEFINE_string(
  "workdir",
  None,
  "Keep each row's training in WORKDIR/<its config argument> (a rerun resumes or "
  "re-evaluates it; another config is another directory). Default: temporary directories.",
)
_EXTRA = flags.DEFINE_list(
  "extra",
  [],
  "Config arguments of text.py added to every row, e.g. 'anneal' (paper 001's KL weight "
  "0.1 -> 1 over the first 10 epochs, inside SVI too).",
)
_SOURCE = flags.DEFINE_enum(
  "source",
  "oracle_004",
  ["oracle_004", "oracle_001"],
  "The data and oracle: paper 004's (default) or paper 001's (z of 2 dims with a strong effect "
  "on the words; the encoder keeps the 004 sizes).",
)

PAPER = {  # paper 004, Table (synthetic): oracle generator / learned generator
  "oracle/vae": 21.77,
  "oracle/svi": 22.33,
  "oracle/savae": 20.13,
  "learned/vae": 27.06,
  "learned/svi": 25.82,
  "learned/savae": 25.21,
}


def row_config(row: str):
  """(config argument, config) of one row (`rows_001_004.synthetic004` with this run's flags)."""
  method = row.split("/")[-1]
  epochs = (_SVAE_EPOCHS.value or _EPOCHS.value) if method == "savae" else _EPOCHS.value
  return rows_001_004.synthetic004(
    row,
    epochs=epochs,
    extra=tuple(_EXTRA.value),
    smoke=_SMOKE.value,
    source=_SOURCE.value,
    iw_samples=_IW.value,
  )


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  import jax
  import numpy as np

  from alala_jax.models import oracle as oracle_lib
  from alala_jax.train import loop

  results = {}
  true_nll = None
  for row in _ROWS.value:
    arg, config = row_config(row)
    t0 = time.time()
    task = loop.prepare(config)  # data and compiled steps, shared by training and the truth
    name = arg.replace(",", "_").replace("=", "")
    if _SOURCE.value != "oracle_004":  # another oracle's row is another directory
      name += f"_{_SOURCE.value}"
    with results_io.row_dir(_WORKDIR.value, name) as wd:
      res = loop.train_and_evaluate(config, wd, log=lambda *a: None, task=task)
    if true_nll is None and row.startswith("oracle/"):
      data = task.test_arrays
      if config.eval.num_test:
        data = jax.tree.map(lambda a: a[: config.eval.num_test], data)
      nll = jax.jit(oracle_lib.grid_nll, static_argnums=(2, 3, 4))(
        {"oracle": oracle_lib.oracle_variables(task.model.oracle)},
        data,
        task.model.num_words,
        5.0,
        41,
      )
      true_nll = float(np.mean(np.asarray(nll, np.float64)))
    results[row] = {
      "config": arg,
      "steps": config.train.num_steps,
      "trained_steps": res.get("trained_steps", res["step"]),  # < steps: stopped by halving
      "evaluated_step": res["step"],  # the best checkpoint's with halving=...
      "seconds": time.time() - t0,
      "iw_nll": res["test/iw_nll"],
      "iw_samples": int(res["test/iw_samples"]),
      "elbo": res["test/elbo"],
      "kl": res["test/kl"],
      "mi_dataset": res["test/mi_dataset"],
      "au": res["test/au"],
      "paper": PAPER.get(row),
    }
    print(row, results[row], flush=True)
  results["true_nll"] = true_nll
  write(results, _RESULTS.value)


def write(results: dict, stem: str) -> None:
  """JSON and a Markdown table of the rows (the paper's numbers are ELBO bounds)."""
  results_io.write_json(stem, results)
  true_nll = results.get("true_nll")
  ks = {r.get("iw_samples", 500) for k, r in results.items() if k != "true_nll"}
  k_label = "/".join(str(k) for k in sorted(ks))  # rows written before the field: 500
  lines = [
    f"Oracle's true test NLL (2-d grid quadrature): {true_nll:.2f} nats (paper 004: 19.63 for "
    "its own oracle)"
    if true_nll is not None
    else "",
    "",
    f"| generator | method | -ELBO (the paper's <= bound) | IW-NLL (k = {k_label}) | KL | MI | AU | "
    "steps (trained / evaluated) | seconds | paper |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ]
  for row, r in results.items():
    if row == "true_nll":
      continue
    g, m = row.split("/")
    lines.append(
      f"| {g} | {m} | {-r['elbo']:.2f} | {r['iw_nll']:.2f} | {r['kl']:.2f} | "
      f"{r['mi_dataset']:.2f} | {int(r['au'])} | {_steps(r)} | {r['seconds']:.0f} | "
      f"<= {r['paper']} |"
    )
  results_io.write_markdown(stem, lines)


def _steps(r: dict) -> str:
  """'trained / evaluated' (rows written before the fields: the configured steps, both)."""
  trained = r.get("trained_steps", r["steps"])
  return f"{trained} / {r.get('evaluated_step', trained)}"


if __name__ == "__main__":
  runtime.setup()
  app.run(main)
