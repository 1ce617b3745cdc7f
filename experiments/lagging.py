r"""Paper 001's synthetic experiment (He et al. 2019, Sec 3-4, Figs 2-3): a basic VAE and the
same VAE with aggressive inference-network training on the oracle_001 data, a scalar latent,
points of the posterior mean space at several training stages, and the final metrics.

  python -m experiments.lagging --workdir=/tmp/lagging --epochs=50

For each run (`vae`, `aggressive`) it trains `experiments/configs/text.py:synthetic[,aggressive]`
to each stage (the run resumes between stages: the stages do not change the run), computes
(mu_x,theta, mu_x,phi) of `--points` validation sentences (metrics/latent.posterior_mean_space,
App A's grid), and writes `<run>_posterior_mean_space.png` (one panel per stage, paper 001
Fig 2) to the workdir and `--results` (JSON + a Markdown table): per stage KL, MI (whole
validation set estimator), AU and the share of points near the diagonal; at the end the test
ELBO, IW-NLL, PPL, KL, MI (both estimators) and AU, with the wall time of each run.
"""

from __future__ import annotations

import os
import time

from absl import app, flags, logging

from alala_jax import runtime
from experiments import results_io

_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for the runs.", required=True)
_EPOCHS = flags.DEFINE_integer("epochs", 50, "Training epochs of each run (paper: to convergence).")
_STAGES = flags.DEFINE_list(
  "stages", ["0", "0.01", "0.1", "1"], "Stages as fractions of the run (posterior mean space)."
)
_POINTS = flags.DEFINE_integer("points", 500, "Validation sentences in the plots (paper: 500).")
_RUNS = flags.DEFINE_list("runs", ["vae", "aggressive"], "Which runs.")
_IW = flags.DEFINE_integer("iw_samples", 500, "Importance samples of the test IW-NLL.")
_RESULTS = flags.DEFINE_string("results", "results/lagging_synthetic", "Results file stem.")
_SMOKE = flags.DEFINE_bool("smoke", False, "A tiny version (tests).")


def run_one(name: str, workdir: str) -> dict:
  import jax
  import numpy as np

  from alala_jax.data import batching
  from alala_jax.metrics import latent
  from alala_jax.train import loop
  from experiments.configs import rows_001_004

  arg, config = rows_001_004.synthetic001(
    name, epochs=_EPOCHS.value, smoke=_SMOKE.value, iw_samples=_IW.value
  )
  task = loop.prepare(config)
  model, trainer = task.trainer.model, task.trainer
  valid = task.heldout_arrays()
  points = batching.take(valid, np.arange(min(_POINTS.value, batching.num_rows(valid))))
  # grid chunk x points x T x V logits: 64 x 100 x 11 x 1004 floats = 0.3 GB per call
  pms_batch = jax.jit(lambda v, x: latent.posterior_mean_space(model, v, x, None, chunk=64))

  def pms(v, x):
    n = batching.num_rows(x)
    parts = [
      pms_batch(v, batching.take(x, np.arange(i, min(i + 100, n)))) for i in range(0, n, 100)
    ]
    return tuple(np.concatenate([np.asarray(p[j]) for p in parts]) for j in range(2))

  stages = sorted({int(round(float(f) * config.train.num_steps)) for f in _STAGES.value})
  out: dict = {"config": arg, "num_steps": config.train.num_steps, "stages": []}
  by_stage = {}
  t0 = time.time()
  wd = os.path.join(workdir, name)
  for s in stages:
    if s == 0:
      state = trainer.create_state(config.seed, task.example_batch(config.train.batch_size))
    else:
      state, _ = loop.train(config, wd, task, stop_at=s, log=lambda *a: None)
    variables = trainer.variables(state)
    mu_model, mu_enc = (np.asarray(a, np.float64) for a in pms(variables, points))
    mi = latent.mi_dataset(model, variables, valid, jax.random.key(1), batch_size=100)
    au = latent.active_units(model, variables, valid, batch_size=100)
    q, _ = model.encode(variables, points)
    kl = float(np.mean(np.asarray(q.kl_standard_normal())))
    near = float(np.mean(np.abs(mu_model - mu_enc) <= 0.1 * np.maximum(np.abs(mu_model), 1.0)))
    row = {
      "step": int(state.step),
      "data_position": int(state.data_position),
      "kl": kl,
      "mi_dataset": float(mi["mi"]),
      "au": int(au["au"]),
      "near_diagonal": near,
      "mu_model_std": float(np.std(mu_model)),
      "mu_encoder_std": float(np.std(mu_enc)),
      "seconds": time.time() - t0,
    }
    if state.strategy_state is not None:
      row["aggressive"] = bool(state.strategy_state["aggressive"])
    out["stages"].append(row)
    print(name, row, flush=True)
    by_stage[f"step {int(state.step)}"] = (mu_model, mu_enc)
  out["train_seconds"] = time.time() - t0
  res = task.final_eval(state, config)
  out["final"] = {k: v for k, v in res.items() if isinstance(v, (int, float))}
  out["png"] = latent.plot_posterior_mean_space(
    by_stage,
    os.path.join(workdir, f"{name}_posterior_mean_space.png"),
    title=f"paper 001 synthetic, {name}: x = model posterior mean, y = encoder mean",
  )
  return out


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  os.makedirs(_WORKDIR.value, exist_ok=True)
  results = {name: run_one(name, _WORKDIR.value) for name in _RUNS.value}
  stem = _RESULTS.value
  results_io.write_json(stem, results)
  lines = [
    "| run | step | batches | KL | MI (valid set) | AU | near diagonal | aggressive |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for name, r in results.items():
    for s in r["stages"]:
      lines.append(
        f"| {name} | {s['step']} | {s['data_position']} | {s['kl']:.3f} | "
        f"{s['mi_dataset']:.3f} | {s['au']} | {s['near_diagonal']:.2f} | "
        f"{s.get('aggressive', '-')} |"
      )
  lines += [
    "",
    "| run | test ELBO | IW-NLL | PPL (IW) | KL | MI (test set) | MI (minibatch) | AU | train s |",
    "|---|---|---|---|---|---|---|---|---|",
  ]
  for name, r in results.items():
    f_ = r["final"]
    lines.append(
      f"| {name} | {f_['test/elbo']:.3f} | {f_['test/iw_nll']:.3f} | {f_['test/ppl_iw']:.2f} | "
      f"{f_['test/kl']:.3f} | {f_['test/mi_dataset']:.3f} | {f_['test/mi_minibatch']:.3f} | "
      f"{int(f_['test/au'])} | {r['train_seconds']:.0f} |"
    )
  results_io.write_markdown(stem, lines)


if __name__ == "__main__":
  runtime.setup()
  app.run(main)
