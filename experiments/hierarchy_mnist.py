r"""Paper 002 on binarized MNIST at a stated CPU budget: LVAE, LVAE+ and BIVA (dense, L = 6),
each seed trained `--steps` with free bits (2 nats per KL row), then fine-tuned `--finetune_steps`
more with free bits 0 (the paper's lambda = 0 phase) by resuming the same workdir; test L_1 and
L_1e3 (IW-NLL, k = --iw_samples) before and after the fine-tune, KL and active units per
stochastic layer, and the anomaly score L^{>k} (Eq 3) for k = 0..L-1 on the MNIST test set
against Omniglot made MNIST-like (`data.images.load_omniglot_28`), as ROC AUCs per k.

  python -m experiments.hierarchy_mnist --steps=10000 --finetune_steps=1000 \
      --workdir=/tmp/h002 --results=results/hierarchy_mnist

Configs: `experiments/configs/images.py:mnist,<variant>` (App C's latents (48, 40, 32, 24, 16,
8), M = 3 blocks of 64 dense units, dropout 0.5, Adamax 2e-3, batch 48, EMA 0.9995 for
evaluation). The paper trains far longer (its Table 2 BIVA: L_1e3 <= 78.67 nats). Each run
writes its rows to the JSON / Markdown results as soon as it finishes; a finished workdir is
resumed, not retrained (so a killed campaign picks up where it stopped).
"""

from __future__ import annotations

import json
import os
import time

from absl import app, flags, logging

from alala_jax import runtime
from experiments import results_io

_VARIANTS = flags.DEFINE_list("variants", ["lvae", "lvae+", "biva"], "Paper 002 variants.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1"], "Seeds (the run's config.seed).")
_STEPS = flags.DEFINE_integer("steps", 10000, "Steps with free bits (batch 48).")
_FT = flags.DEFINE_integer("finetune_steps", 1000, "Further steps with free bits 0.")
_NUM_TEST = flags.DEFINE_integer(
  "num_test", 1000, "Test images of every evaluation (L_1, L_1e3, layers, L^{>k}); 0 = 10,000."
)
_IW = flags.DEFINE_integer("iw_samples", 1000, "Importance samples of L_1e3.")
_OOD = flags.DEFINE_integer("ood", 1000, "Omniglot images (evaluation split) for the AUCs.")
_ABOVE_S = flags.DEFINE_integer("l_above_samples", 10, "One-sample estimates per image of L^{>k}.")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/hierarchy_mnist", "Parent of the run workdirs.")
_RESULTS = flags.DEFINE_string("results", "results/hierarchy_mnist", "Results file stem.")
_SMOKE = flags.DEFINE_bool("smoke", False, "Tiny models and budgets (a test of the script).")
_REPLOT = flags.DEFINE_bool(
  "replot", False, "Only rewrite the Markdown and the per-layer PNG from the results JSON."
)


def run_config(variant: str, seed: int, steps: int, free_bits: float):
  from experiments.configs import images as images_config

  c = images_config.get_config(f"mnist,{variant}" + (",smoke" if _SMOKE.value else ""))
  c.seed = seed
  c.train.num_steps = steps
  c.train.eval_every = c.train.checkpoint_every = max(1, min(2500, steps))
  c.objective.free_bits = free_bits
  c.eval.num_test = _NUM_TEST.value
  c.eval.iw_samples = _IW.value
  c.eval.l_above_samples = 1  # the AUC pass below takes more
  return c


def evaluation_row(res: dict) -> dict:
  keep = ("elbo", "iw_nll", "kl", "recon")
  row = {k: res[f"test/{k}"] for k in keep}
  row["layers"] = {
    k[len("test/") :]: v
    for k, v in res.items()
    if k.startswith(("test/kl/", "test/au/", "test/units/", "test/l_above/"))
  }
  return row


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  import jax
  import numpy as np

  from alala_jax.data import images
  from alala_jax.metrics import hierarchy
  from alala_jax.train import loop

  stem = _RESULTS.value
  results = results_io.read_json(stem) or {}
  if _REPLOT.value:
    write(results, stem, np)
    return
  ood = images.load_omniglot_28(limit=_OOD.value, seed=0)
  for variant in _VARIANTS.value:
    for seed in map(int, _SEEDS.value):
      name = f"{variant}/seed{seed}"
      if name in results and not _SMOKE.value:
        print("done before:", name)
        continue
      wd = os.path.join(_WORKDIR.value, variant.replace("+", "plus"), f"seed{seed}")
      t0 = time.time()
      c1 = run_config(variant, seed, _STEPS.value, 2.0)
      before = loop.train_and_evaluate(c1, wd, log=lambda *a: None)
      t1 = time.time()
      c2 = run_config(variant, seed, _STEPS.value + _FT.value, 0.0)
      c2.train.allow_config_change = True  # the λ = 0 fine-tune resumes c1's run, by design
      after = loop.train_and_evaluate(c2, wd, log=lambda *a: None)
      t2 = time.time()
      state, task = loop.load_trained(wd, c2)
      variables = task.trainer.variables(state)
      x_in = task.test_arrays[: _NUM_TEST.value or None]
      n = min(len(x_in), len(ood))
      key = jax.random.key(seed + 11)
      score = lambda x: hierarchy.l_above_k(
        task.trainer.eval_model, variables, x[:n], key, num_samples=_ABOVE_S.value
      )
      ks = list(range(task.model.config.num_layers))
      anomaly = hierarchy.anomaly_report(score(x_in), score(ood), ks)
      results[name] = {
        "variant": variant,
        "seed": seed,
        "steps": _STEPS.value,
        "finetune_steps": _FT.value,
        "train_seconds": t1 - t0,
        "finetune_seconds": t2 - t1,
        "anomaly_seconds": time.time() - t2,
        "num_test": int(before["test/num_examples"]),
        "iw_samples": int(before["test/num_samples"]),
        "anomaly_n": n,
        "before": evaluation_row(before),
        "after": evaluation_row(after),
        "anomaly": anomaly,
      }
      print(name, json.dumps({k: results[name][k] for k in ("before", "after")})[:400], flush=True)
      write(results, stem, np)
  print(open(stem + ".md").read())


def write(results: dict, stem: str, np) -> None:
  """JSON and the Markdown tables (rewritten after every run)."""
  results_io.write_json(stem, results)
  runs = list(results.values())
  r0 = runs[0]
  lines = [
    f"Binarized MNIST, dense hierarchies (L = 6); {r0['steps']} steps of batch 48 with free "
    f"bits 2, then {r0['finetune_steps']} with free bits 0; EMA parameters; "
    f"{r0['num_test']} test images, L_1e3 with k = {r0['iw_samples']}. Nats (lower -L is "
    "better). Paper 002 Table 2 (full budget): BIVA L_1e3 <= 78.67.",
    "",
    "| variant | seed | -L_1 | -L_1e3 | -L_1 after λ=0 | -L_1e3 after λ=0 | KL after | "
    "train s | fine-tune s |",
    "|---|---|---|---|---|---|---|---|---|",
  ]
  for r in runs:
    b, a = r["before"], r["after"]
    lines.append(
      f"| {r['variant']} | {r['seed']} | {-b['elbo']:.2f} | {b['iw_nll']:.2f} | "
      f"{-a['elbo']:.2f} | {a['iw_nll']:.2f} | {a['kl']:.2f} | {r['train_seconds']:.0f} | "
      f"{r['finetune_seconds']:.0f} |"
    )
  lines += ["", "Per stochastic layer after the fine-tune (seed mean): KL nats / active units"]
  by_variant: dict[str, list] = {}
  for r in runs:
    by_variant.setdefault(r["variant"], []).append(r)
  for variant, rs in by_variant.items():
    layers = rs[0]["after"]["layers"]
    slots = [k[3:] for k in layers if k.startswith("kl/")][::-1]  # top first
    cells = []
    for s in slots:
      kl = np.mean([r["after"]["layers"][f"kl/{s}"] for r in rs])
      au = np.mean([r["after"]["layers"][f"au/{s}"] for r in rs])
      cells.append(f"{s} {kl:.2f} / {au:.1f} of {int(layers[f'units/{s}'])}")
    lines.append(f"- {variant}: " + "; ".join(cells))
  ks = sorted({int(k.split("/")[1]) for r in runs for k in r["anomaly"]})
  lines += [
    "",
    f"Anomaly detection, MNIST test (in) vs Omniglot 28x28 (out), {r0['anomaly_n']} images each: "
    "ROC AUC of L^{>k} (1 = every MNIST image above every Omniglot image; k = 0 is the ELBO), "
    "seed mean; mean L^{>k} in / out in nats",
    "",
    "| variant | " + " | ".join(f"k={k}" for k in ks) + " |",
    "|---|" + "---|" * len(ks),
  ]
  for variant, rs in by_variant.items():
    cells = []
    for k in ks:
      auc = np.mean([r["anomaly"][f"l_above/{k}/auc"] for r in rs])
      lin = np.mean([r["anomaly"][f"l_above/{k}/in"] for r in rs])
      lout = np.mean([r["anomaly"][f"l_above/{k}/out"] for r in rs])
      cells.append(f"{auc:.3f} ({lin:.0f} / {lout:.0f})")
    lines.append(f"| {variant} | " + " | ".join(cells) + " |")
  results_io.write_markdown(stem, lines, echo=False)
  plot_layers(by_variant, stem + "_layers.png", np)


def per_layer(run: dict, what: str, np) -> list[float]:
  """KL (nats) or active-unit share per paper layer i = 1..L after the fine-tune; BIVA's BU and
  TD halves of a layer are summed (KL) or pooled (active units)."""
  lay = run["after"]["layers"]
  out, i = [], 1
  while any(k.startswith(f"kl/z{i}") for k in lay):
    names = [k[3:] for k in lay if k.startswith("kl/") and k[3:].split("_")[0] == f"z{i}"]
    if what == "kl":
      out.append(float(sum(lay[f"kl/{n}"] for n in names)))
    else:
      out.append(sum(lay[f"au/{n}"] for n in names) / sum(lay[f"units/{n}"] for n in names))
    i += 1
  return out


def plot_layers(by_variant: dict, path: str, np) -> None:
  """Paper 002's per-layer figure in kind: KL and the share of active units per stochastic layer
  (seed mean), one line per variant."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
  for variant, rs in by_variant.items():
    for ax, what in zip(axes, ("kl", "au")):
      ys = np.mean([per_layer(r, what, np) for r in rs], 0)
      ax.plot(np.arange(1, len(ys) + 1), ys, marker="o", label=f"{variant} (seeds: {len(rs)})")
  axes[0].set(xlabel="stochastic layer i", ylabel="KL (nats)", title="KL per layer")
  axes[1].set(xlabel="stochastic layer i", ylabel="active units / units", title="active units")
  axes[0].legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


if __name__ == "__main__":
  runtime.setup()
  app.run(main)
