r"""Evaluates a trained workdir (all metrics of the end of training) without training.

  python -m experiments.evaluate --workdir=/tmp/alala [--num_generated=10000] [--greedy] \
      [--gen_level=L] [--extraction_rounds=3]

Writes workdir/eval_metrics.json (and the refitted generation prior, generation_prior.npz)
and prints the summary. `--gen_level` evaluates a multiscale model with another level's
sigma-network and tracked moments generating (and its losses); it writes
eval_metrics_level{L}.json and leaves the run's generation prior alone, as `--prior_refined`
does (generation priors fitted to SVI's refined posteriors q_K of a records workdir trained
with SVI at evaluation; eval_metrics_prior_refined.json). The summary ends with the privacy
audit (`eval.privacy_records` > 0), including the repeated encode/decode extraction
rate of paper 000 App E over `--extraction_rounds` rounds (default: the config's).

`--eval_batch_size=B` evaluates in batches of B rows (text and image tasks; eval_metrics_batchB
.json). It matters where the batch enters a metric: the reference minibatch MI (capped at
log B) and SVI at evaluation in the refinement's 'reference' mode, whose step averages over the
batch (each row moves lr / B times its own gradient): B = the training batch refines exactly as
training did.
"""

import json
import os

from absl import app, flags, logging

from alala_jax import runtime

_WORKDIR = flags.DEFINE_string("workdir", None, "Trained workdir.", required=True)
_NUM = flags.DEFINE_integer("num_generated", None, "Generated records (default: the config's).")
_GREEDY = flags.DEFINE_bool("greedy", None, "Argmax decoding (default: the config's).")
_EXTRACTION = flags.DEFINE_integer(
  "extraction_rounds", None, "Rounds of the extraction audit (default: the config's; 0 = off)."
)
_EVAL_BATCH = flags.DEFINE_integer(
  "eval_batch_size", None, "Rows per evaluation batch (text / images; default: the config's)."
)
_LEVEL = flags.DEFINE_integer(
  "gen_level", None, "Multiscale level that generates (default: the config's)."
)
_REFINED = flags.DEFINE_bool(
  "prior_refined",
  False,
  "Fit the generation priors to the refined posteriors q_K of SVI at evaluation (a records "
  "workdir trained with refine.at_eval); writes eval_metrics_prior_refined.json.",
)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  from alala_jax import cli
  from alala_jax.train import loop

  config = cli.load_workdir_config(_WORKDIR.value)
  if _NUM.value is not None:
    config.eval.num_generated = _NUM.value
  if _GREEDY.value is not None:
    config.eval.greedy = _GREEDY.value
  if _EXTRACTION.value is not None:
    config.eval.extraction_rounds = _EXTRACTION.value
  name = "eval_metrics.json"
  if _EVAL_BATCH.value is not None:
    if _EVAL_BATCH.value < 2 or config.task == "records":
      raise app.UsageError("--eval_batch_size: a text or image workdir and at least 2 rows")
    config.eval.batch_size = _EVAL_BATCH.value
    name = f"eval_metrics_batch{_EVAL_BATCH.value}.json"
  if _LEVEL.value is not None:
    config.objective.multiscale.gen_level = _LEVEL.value
    name = f"eval_metrics_level{_LEVEL.value}.json"
  if _REFINED.value:
    config.eval.prior_refined = True
    name = name.replace(".json", "_prior_refined.json")
  state, task = loop.load_trained(_WORKDIR.value, config)
  res = task.final_eval(state, config)
  if _LEVEL.value is None and not _REFINED.value:
    task.save_final(_WORKDIR.value)  # the refitted generation prior, for experiments.generate
  with open(os.path.join(_WORKDIR.value, name), "w") as f:
    json.dump(res, f, indent=1, sort_keys=True)
  print(task.summary(res))


if __name__ == "__main__":
  runtime.setup()
  app.run(main)
