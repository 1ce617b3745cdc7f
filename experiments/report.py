r"""Writes the quality report of a trained workdir: PNG figures and an index.html.

  python -m experiments.report --workdir=/tmp/alala [--out=/tmp/alala/report] [--num=2000] \
      [--seed=0]

Generates --num records like experiments.generate (latents from the generation prior the run's
evaluation saved, workdir/generation_prior.npz, at its temperature; the model's tracked
Gaussian when there is none or it belongs to another checkpoint) and compares them with the
training and held-out records (`alala_jax.report.quality_report`: zip-coordinate p-value
histogram, map, per-field marginals). The privacy audit's numbers come from
workdir/eval_metrics.json (experiments.evaluate) when present, else from the 'final' row of
workdir/metrics.jsonl. Prints the path of index.html.
"""

import json
import os
import sys

from absl import app, flags, logging

from alala_jax import runtime

_WORKDIR = flags.DEFINE_string("workdir", None, "Trained workdir.", required=True)
_OUT = flags.DEFINE_string("out", None, "Output folder (default: <workdir>/report).")
_NUM = flags.DEFINE_integer("num", 2000, "Generated records.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")


def run_privacy(workdir: str) -> dict | None:
  """The run's evaluation dict: eval_metrics.json, else the last 'final' row of metrics.jsonl,
  else None."""
  path = os.path.join(workdir, "eval_metrics.json")
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)
  path = os.path.join(workdir, "metrics.jsonl")
  final = None
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        if line.strip():
          row = json.loads(line)
          if row.get("split") == "final":
            final = row
  return final


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  import jax

  from alala_jax import cli, generate, report
  from alala_jax.tasks import records
  from alala_jax.train import loop

  workdir = _WORKDIR.value
  config = cli.load_workdir_config(workdir)
  state, task = loop.load_trained(workdir, config)
  if not isinstance(task, records.RecordTask):
    raise app.UsageError(f"{workdir} trained a {type(task).__name__}: the report is for records")
  step = int(state.step)
  prior, temperature, source = records.load_run_prior(workdir, step, config.eval.prior_temperature)
  print(f"generating {_NUM.value} records, latents from {source}", file=sys.stderr)
  gen = generate.generate_records(
    task,
    state,
    _NUM.value,
    jax.random.key(_SEED.value),
    config.eval.chunk,
    config.eval.greedy,
    prior=prior,
    temperature=temperature,
  )
  out = _OUT.value or os.path.join(workdir, "report")
  res = report.quality_report(
    task.data.train,
    task.data.test,
    gen,
    config,
    out,
    privacy=run_privacy(workdir),
    title=f"{os.path.basename(os.path.normpath(workdir))} (step {step}; latents from {source})",
  )
  for name, reason in res["skipped"].items():
    print(f"skipped {name}: {reason}", file=sys.stderr)
  print(res["html"])


if __name__ == "__main__":
  runtime.setup()
  app.run(main)
