r"""The amortization gap of a trained workdir (paper 004 Sec 3): the test loss at the encoder's
posterior lambda_0 and after K steps of SVI from it, for several SVI learning rates.

  python -m experiments.amortization_gap --workdir=/tmp/rl/savae_k5 --lrs=1,10,30,100 --steps=20

Any task and model of the core: the workdir's config with `refine` set to SVI at evaluation
(a run trained without refinement gets the reference defaults: momentum 0.5, clip 5, mode
'reference'), the learning rate and K replaced. Nothing trains. Each test batch's SVI
(`Trainer.eval_loss` on the run's batch size) reports the objective's loss at lambda_0 and at
lambda_K (`svi/loss_first`, `svi/loss_last`: one z per row, each step its own epsilon); the
table gives their means over the test batches, the gap and its standard error over batches.

Why the learning rate: in the reference mode the SVI step is the gradient of the batch-mean
loss, so each row moves lr / B times its own gradient, in the units of the model's loss. Paper
004's text loss is nats per sentence with B = 32; the record VAE's is nats / ~100 (per
character of the record) with B = 128, so lr 1 there is a ~400x smaller step per row in nats.
"""

from __future__ import annotations

import copy

import numpy as np
from absl import app, flags, logging

from alala_jax import runtime
from experiments import results_io

_WORKDIR = flags.DEFINE_string("workdir", None, "Trained workdir.", required=True)
_LRS = flags.DEFINE_list("lrs", ["1", "10", "100", "1000"], "SVI learning rates.")
_STEPS = flags.DEFINE_integer("steps", 0, "SVI steps K (0: the workdir's, else 20).")
_MODE = flags.DEFINE_enum(
  "mode", None, ["reference", "per_example"], "SVI mode (default: the workdir's)."
)
_BATCHES = flags.DEFINE_integer("batches", 0, "Test batches (0: the whole test set).")
_RESULTS = flags.DEFINE_string("results", "", "Results file stem ('' = print only).")


def svi_config(config, lr: float, steps: int, mode: str | None):
  """The workdir's config with SVI at evaluation at this lr and K."""
  c = copy.deepcopy(config)
  if c.get("refine", None) is None or c.refine.get("name", "none") == "none":
    import ml_collections

    with c.unlocked():
      c.refine = ml_collections.ConfigDict({"name": "svi", "variant": "savae"})
  with c.refine.unlocked():
    c.refine.at_eval = True
    c.refine.lr = lr
    c.refine.steps = steps or c.refine.get("steps", 20)
    if mode is not None:
      c.refine.mode = mode
  return c


def gap(task, state, config, n_batches: int) -> dict:
  """Means over test batches of the loss at lambda_0 and lambda_K, the gap and its SE."""
  from alala_jax.data import batching
  from alala_jax.train.state import Salt

  arrays = task.test_arrays
  n = batching.num_rows(arrays)
  bs = config.train.batch_size
  n_batches = n_batches or max(n // bs, 1)
  first, last = [], []
  for i, b in enumerate(batching.eval_batches(arrays, bs, n_batches, config.seed)):
    m = task.trainer.eval_loss(state, b, Salt.EVAL_LOSS + i)
    first.append(float(m["svi/loss_first"]))
    last.append(float(m["svi/loss_last"]))
  first, last = np.asarray(first), np.asarray(last)
  d = first - last
  return {
    "loss_lambda0": float(first.mean()),
    "loss_lambdaK": float(last.mean()),
    "gap": float(d.mean()),
    "gap_se": float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan"),
    "batches": len(d),
  }


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  from alala_jax import cli
  from alala_jax.train import loop

  base = cli.load_workdir_config(_WORKDIR.value)
  rows = {}
  for lr in map(float, _LRS.value):
    c = svi_config(base, lr, _STEPS.value, _MODE.value)
    state, task = loop.load_trained(_WORKDIR.value, c)
    rows[str(lr)] = {"lr": lr, "steps": c.refine.steps, "mode": c.refine.mode}
    rows[str(lr)].update(gap(task, state, c, _BATCHES.value))
    print(lr, rows[str(lr)], flush=True)
  task_name = base.get("task", "records")
  lines = [
    f"Amortization gap of {_WORKDIR.value} (step {int(state.step)}, task {task_name}): test "
    "loss at the encoder's lambda_0 and after K SVI steps (`python3 -m "
    "experiments.amortization_gap`)",
    "",
    "| SVI lr | K | mode | loss at lambda_0 | loss at lambda_K | gap | SE | batches |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for r in rows.values():
    lines.append(
      f"| {r['lr']:g} | {r['steps']} | {r['mode']} | {r['loss_lambda0']:.5f} | "
      f"{r['loss_lambdaK']:.5f} | {r['gap']:.5f} | {r['gap_se']:.5f} | {r['batches']} |"
    )
  if _RESULTS.value:
    results_io.write_json(_RESULTS.value, {"workdir": _WORKDIR.value, "rows": rows})
    results_io.write_markdown(_RESULTS.value, lines)
  else:
    print("\n".join(lines))


if __name__ == "__main__":
  runtime.setup()
  app.run(main)
