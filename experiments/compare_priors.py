r"""Scores generation priors on one trained record workdir (issue #13): which distribution over
the latents gives the most realistic records for the same model.

  python -m experiments.compare_priors --workdir=/tmp/alala \
      [--kinds=tracked,gaussian,gmm,aggregate] [--temperatures=1,0.5] [--fit_on=samples,means]

Encodes `eval.prior_records` training records once per fit_on, fits every prior
(`alala_jax.latent_priors`), generates `--num` records from each (kind, fit_on, temperature)
and prints one markdown row per setting: the held-out log-density, the zip-coordinate p-value,
the realism checks, the exact-copy rate and the distance-to-closest-record audit: the 5th
percentile of the distance to the whole training set for generated and for held-out real
records, the share of generated records below the held-out one (5 % expected) and the share
closer to a training than to a held-out reference sample (0.5 = no memorisation). 'tracked' (the paper's) has no fit and no
temperature. Writes the table to --output when given.
"""

import time

from absl import app, flags, logging

from alala_jax import runtime

_WORKDIR = flags.DEFINE_string("workdir", None, "Trained record workdir.", required=True)
_KINDS = flags.DEFINE_string("kinds", "tracked,gaussian,gmm,aggregate", "Priors to score.")
_TEMPS = flags.DEFINE_string("temperatures", "1", "Sampling temperatures of the fitted priors.")
_FIT_ON = flags.DEFINE_string("fit_on", "samples", "What the Gaussian/GMM fit: samples, means.")
_NUM = flags.DEFINE_integer("num", 10000, "Generated records per setting.")
_OUTPUT = flags.DEFINE_string("output", "", "Also write the markdown table here.")

COLUMNS = (
  ("pvalue/mean", "p mean", "{:.4f}"),
  ("pvalue/median", "p median", "{:.4f}"),
  ("ks_stat", "KS", "{:.3f}"),
  ("pvalue/zip_unseen", "zip unseen", "{:.1%}"),
  ("blank_share", "blank zip", "{:.2%}"),
  ("in_train/city", "city in train", "{:.1%}"),
  ("in_train/street", "street in train", "{:.1%}"),
  ("pair_in_train/city+postcode", "(city, zip) in train", "{:.1%}"),
  ("exact_copy_rate", "exact copies", "{:.4f}"),
  ("dcr/generated_to_train_p05", "DCR p05", "{:.3f}"),
  ("dcr/holdout_to_train_p05", "held-out DCR p05", "{:.3f}"),
  ("dcr/generated_below_holdout_p05", "below held-out p05", "{:.1%}"),
  ("dcr/share_closer_to_train", "closer to train", "{:.3f}"),
)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  import jax

  from alala_jax import cli, evaluate, latent_priors
  from alala_jax.generate import generate_records, string_key
  from alala_jax.train import loop

  config = cli.load_workdir_config(_WORKDIR.value)
  state, task = loop.load_trained(_WORKDIR.value, config)
  kinds = latent_priors.parse_kinds(_KINDS.value)
  temps = [float(t) for t in _TEMPS.value.split(",")]
  key_set = {string_key(r, task.root) for r in task.data.train}
  header = ["prior", "fit on", "τ", "held-out log q"] + [c[1] for c in COLUMNS] + ["s"]
  rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  print(rows[0] + "\n" + rows[1], flush=True)
  key = jax.random.key(config.seed + 7)
  for fit_on in _FIT_ON.value.split(","):
    config.eval.generation_prior = ",".join(kinds)
    config.eval.prior_fit_on = fit_on
    priors, fit = evaluate.fit_generation_priors(task, state, task.train_arrays, config)
    for kind in kinds:
      if kind == "tracked" and fit_on != _FIT_ON.value.split(",")[0]:
        continue
      for t in [1.0] if kind == "tracked" else temps:
        t0 = time.time()
        gen = generate_records(
          task,
          state,
          _NUM.value,
          jax.random.fold_in(key, 1),
          config.eval.chunk,
          config.eval.greedy,
          prior=priors.get(kind),
          temperature=t,
        )
        res = evaluate.generation_report(task.root, task.data.train, gen, key_set, config)
        if config.eval.privacy_records:
          res.update(evaluate.dcr_audit(task.data.train, task.data.test, gen, config))
        name = kind + (f" ({priors[kind].num_components})" if kind in ("gmm", "gaussian") else "")
        cells = [
          name,
          "–" if kind in ("tracked", "aggregate") else fit_on,
          "–" if kind == "tracked" else f"{t:g}",
          f"{fit.heldout_log_prob[kind]:.2f}",
        ]
        cells += [fmt.format(res[k]) if k in res else "–" for k, _, fmt in COLUMNS]
        cells.append(f"{time.time() - t0:.0f}")
        rows.append("| " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
  if _OUTPUT.value:
    with open(_OUTPUT.value, "w") as f:
      f.write("\n".join(rows) + "\n")


if __name__ == "__main__":
  runtime.setup()
  app.run(main)
