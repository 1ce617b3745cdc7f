r"""Time to quality: trains a config and prints the training wall time at which the p-value
mean of generated records first reaches each target (issues #5, #13; default targets 0.30,
0.35, 0.45, scored on 10,000 records).

  python -m experiments.bench_time_to_quality \
      --config=experiments/configs/paper.py:t6/sstf_1.28_0.64,vermont,steps=20000 \
      --workdir=/tmp/ttq --every=1000

Every `--every` steps training pauses (a checkpoint is written, the compiled programs are
kept), `--num` records are generated and scored, and one table row is printed: step, training
wall seconds so far (compilation included, evaluation excluded), records/s, p-value mean /
median. Records are generated as the run's evaluation generates them: from the first prior of
`eval.generation_prior`, fitted on the model of that step (`alala_jax.latent_priors`; its
fitting seconds go to ttq.json, not to the training time). Runs stop at the last target or at
the config's `train.num_steps` (the budget; the schedules of the paper's rows are fractions of
it, so the budget is part of the result). A resumed workdir continues its clock from
`ttq.json`.
"""

import json
import os
import time

from absl import app, flags, logging
from ml_collections import config_flags

from alala_jax import runtime

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory.", required=True)
_EVERY = flags.DEFINE_integer("every", 1000, "Steps between quality checks.")
_NUM = flags.DEFINE_integer("num", 10000, "Generated records per quality check.")
_TARGETS = flags.DEFINE_list("targets", ["0.30", "0.35", "0.45"], "p-value mean targets.")
config_flags.DEFINE_config_file("config", None, "Training configuration.", lock_config=True)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  import jax

  from alala_jax import evaluate
  from alala_jax.generate import generate_records
  from alala_jax.train import loop

  config, workdir = flags.FLAGS.config, _WORKDIR.value
  targets = sorted(float(t) for t in _TARGETS.value)
  os.makedirs(workdir, exist_ok=True)
  log_path = os.path.join(workdir, "ttq.json")
  rows = json.load(open(log_path)) if os.path.exists(log_path) else []
  wall = rows[-1]["train_seconds"] if rows else 0.0
  prep = loop.prepare(config, workdir)
  done = rows[-1]["step"] if rows else 0
  print(f"{'step':>7} {'train s':>9} {'records/s':>10} {'p mean':>8} {'p median':>9}")
  for r in rows:
    print(
      f"{r['step']:>7d} {r['train_seconds']:>9.0f} {r['records_per_s']:>10.0f} "
      f"{r['pvalue/mean']:>8.4f} {r['pvalue/median']:>9.4f}"
    )
  reached = {t: next((r for r in rows if r["pvalue/mean"] >= t), None) for t in targets}
  step = done
  while step < config.train.num_steps and reached[targets[-1]] is None:
    stop = min(step + _EVERY.value, config.train.num_steps)
    t0 = time.time()
    state, prep = loop.train(config, workdir, prep, log=lambda s: None, stop_at=stop)
    train_s = time.time() - t0
    wall += train_s
    t_fit = time.time()
    prior = prep.fit_generation_prior(state, config)
    fit = prep.generation_priors[1]
    fit_s = time.time() - t_fit
    gen = generate_records(
      prep,
      state,
      _NUM.value,
      jax.random.key(stop),
      config.eval.chunk,
      prior=prior,
      temperature=config.eval.prior_temperature,
    )
    p = evaluate.pvalue_report(prep.data.train, gen, config)
    row = {
      "step": stop,
      "train_seconds": wall,
      "pvalue/mean": p["pvalue/mean"],
      "pvalue/median": p["pvalue/median"],
      "records_per_s": (stop - step) * config.train.batch_size / train_s,
      "prior": fit.kind if fit is not None else "tracked",
      "prior_fit_seconds": fit_s,
    }
    rows.append(row)
    json.dump(rows, open(log_path, "w"), indent=1)
    print(
      f"{stop:>7d} {wall:>9.0f} {row['records_per_s']:>10.0f} {row['pvalue/mean']:>8.4f} "
      f"{row['pvalue/median']:>9.4f}",
      flush=True,
    )
    for t in targets:
      if reached[t] is None and row["pvalue/mean"] >= t:
        reached[t] = row
    step = stop
  best = max(rows, key=lambda r: r["pvalue/mean"]) if rows else None
  for t in targets:
    r = reached[t]
    print(
      f"p-value mean >= {t:.2f}: "
      + (
        f"step {r['step']}, {r['train_seconds']:.0f} s of training"
        if r
        else "not reached within the budget"
      )
    )
  if best:
    print(
      f"best: p-value mean {best['pvalue/mean']:.4f} at step {best['step']} "
      f"({best['train_seconds']:.0f} s); budget {config.train.num_steps} steps x "
      f"{config.train.batch_size}; devices {jax.devices()}"
    )


if __name__ == "__main__":
  runtime.setup()
  flags.mark_flags_as_required(["config"])
  app.run(main)
