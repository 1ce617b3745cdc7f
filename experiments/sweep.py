"""Runs the rows of a paper table (experiments/configs/paper.py) and writes its results table.

  python -m experiments.sweep --table=repro --seeds=0,1 --vermont --workdir=/tmp/sweep
  python -m experiments.sweep --list                      # every table, row and paper number

Each (row, seed) trains in ``workdir/ROW/seedS`` (resumable: a finished run is not repeated, an
interrupted one resumes from its checkpoint), then ``workdir/results.md`` and
``workdir/results.json`` are rewritten with our numbers next to the paper's.
"""

from __future__ import annotations

import json
import os
import time

from absl import app, flags, logging

from alala_jax import runtime
from alala_jax.train import loop
from experiments.configs import paper

FLAGS = flags.FLAGS
flags.DEFINE_string("table", "repro", "table of experiments/configs/paper.py")
flags.DEFINE_list("rows", [], "rows to run (default: all of the table)")
flags.DEFINE_list("seeds", ["0"], "seeds; every row runs once per seed")
flags.DEFINE_bool("vermont", False, "train on the Vermont CSV instead of the synthetic data")
flags.DEFINE_bool("smoke", False, "shrink every row to a smoke check")
flags.DEFINE_integer("steps", None, "training steps of every row (default: paper.BUDGET)")
flags.DEFINE_string("workdir", None, "where runs and the results table go")
flags.DEFINE_bool("list", False, "list tables and rows with the paper's numbers, then exit")

COLUMNS = [
  ("pvalue/mean", "p mean"),
  ("pvalue/median", "p median"),
  ("pvalue/std", "p std"),
  ("d_lev", "d_Lev"),
  ("test/loss", "test loss"),
  ("generated/loss", "gen. loss"),
  ("generated_street_in_train", "street in train"),
  ("exact_copy_rate", "exact copies"),
  ("malformed_rate", "malformed"),
]


def _fmt(v) -> str:
  if v is None:
    return "–"
  if isinstance(v, str):
    return v
  return f"{v:.3g}" if abs(v) < 1e-3 and v != 0 else f"{v:.4f}".rstrip("0").rstrip(".")


def results_table(table: str, results: dict[str, dict[int, dict]], budget: str) -> str:
  """Markdown: one line per (row, seed) with our metrics, then the paper's row."""
  head = ["row", "seed"] + [c[1] for c in COLUMNS] + ["wall s"]
  lines = [
    f"Table `{table}` ({budget})",
    "",
    "| " + " | ".join(head) + " |",
    "|" + "---|" * len(head),
  ]
  for row in paper.TABLES[table]:
    for seed, res in sorted(results.get(row.name, {}).items()):
      cells = [row.name, str(seed)] + [_fmt(res.get(k)) for k, _ in COLUMNS]
      cells.append(f"{res['wall_seconds']:.0f}" if "wall_seconds" in res else "–")
      lines.append("| " + " | ".join(cells) + " |")
    if row.name in results:
      p = list(row.paper) + [None] * (len(COLUMNS) - len(row.paper))
      lines.append(
        "| "
        + " | ".join([f"*paper: {row.note or row.name}*", ""] + [_fmt(v) for v in p] + [""])
        + " |"
      )
  return "\n".join(lines) + "\n"


def list_tables() -> str:
  out = []
  for t, rows in paper.TABLES.items():
    out.append(t)
    for r in rows:
      out.append(f"  {t}/{r.name:28s} paper mean/median/std/d_Lev {r.paper}  {r.note}")
  return "\n".join(out)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  if FLAGS.list:
    print(list_tables())
    return
  if not FLAGS.workdir:
    raise app.UsageError("--workdir is required")
  rows = FLAGS.rows or [r.name for r in paper.TABLES[FLAGS.table]]
  for r in rows:
    paper.find(FLAGS.table, r)  # fail on a typo before training
  out_json = os.path.join(FLAGS.workdir, "results.json")
  results: dict[str, dict[int, dict]] = {}
  if os.path.exists(out_json):
    with open(out_json) as f:
      results = {r: {int(s): v for s, v in d.items()} for r, d in json.load(f).items()}
  budget = None
  for r in rows:
    for seed in map(int, FLAGS.seeds):
      config = paper.build(FLAGS.table, r, FLAGS.vermont, FLAGS.smoke, FLAGS.steps, seed)
      budget = (
        f"{'Vermont' if FLAGS.vermont else 'synthetic'}, {config.train.num_steps} "
        f"steps x batch {config.train.batch_size}, latent {config.model.latent_dim}, "
        f"lr {config.optim.learning_rate}"
      )
      wd = os.path.join(FLAGS.workdir, r, f"seed{seed}")
      final = os.path.join(wd, "final_metrics.json")
      if os.path.exists(final):
        with open(final) as f:
          res = json.load(f)
        print(f"{r} seed {seed}: done before, p-value mean {res.get('pvalue/mean')}")
      else:
        print(f"=== {FLAGS.table}/{r} seed {seed} -> {wd}", flush=True)
        t0 = time.time()
        res = loop.train_and_evaluate(config, wd)
        res["wall_seconds"] = time.time() - t0
        with open(final, "w") as f:
          json.dump(res, f, indent=1, sort_keys=True)
      results.setdefault(r, {})[seed] = res
      os.makedirs(FLAGS.workdir, exist_ok=True)
      with open(out_json, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
      with open(os.path.join(FLAGS.workdir, "results.md"), "w") as f:
        f.write(results_table(FLAGS.table, results, budget))
  print(results_table(FLAGS.table, results, budget or ""))


if __name__ == "__main__":
  runtime.setup()
  app.run(main)
