r"""Conditional generation by inference against rejection sampling, on a trained workdir.

  python -m experiments.conditional --workdir=/tmp/vt [--n=1000] [--candidates=4096] \
      [--max_generated=100000] [--output=results/conditional_vermont.md]

Four conditions chosen from the training data: the most common and a rare postcode (fewest
training records, at least `--rare_min`), the most common and a rare city. For each, inference
(importance sampling alone, and followed by `--svi_steps` steps of SVI per record) and rejection
sampling generate `--n` records from the run's generation prior (workdir/generation_prior.npz at
the run's temperature) and the table reports seconds per 1000 records and the quality of the
free fields given the fixed one:

* postcode fixed: the zip-coordinate p-value of the generated coordinates (mean / median;
  ideal 0.5 / 0.5);
* city fixed: the share of generated postcodes that occur with that city in the training data;
* both: the number of distinct generated records (a small ESS makes records share latents).

Rejection sampling (SDV's method) stops after `--max_generated` unconditional records; when it
keeps fewer than n records its time per 1000 is extrapolated from its acceptance rate and marked.
"""

import collections
import dataclasses
import time

from absl import app, flags, logging

from alala_jax import runtime

_WORKDIR = flags.DEFINE_string("workdir", None, "Trained workdir.", required=True)
_N = flags.DEFINE_integer("n", 1000, "Records per condition and method.")
_CANDIDATES = flags.DEFINE_integer("candidates", 4096, "Latent candidates per condition.")
_MAX_GEN = flags.DEFINE_integer("max_generated", 100000, "Rejection sampling's budget.")
_RARE_MIN = flags.DEFINE_integer("rare_min", 2, "Training records of the rare conditions.")
_OUTPUT = flags.DEFINE_string("output", "", "Markdown table to write (also printed).")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_SVI_STEPS = flags.DEFINE_integer(
  "svi_steps", 20, "K of the 'inference + SVI' rows (conditional.DEFAULT_SVI otherwise); 0: off."
)
_SVI_LR = flags.DEFINE_float("svi_lr", -1.0, "SVI learning rate (<0: DEFAULT_SVI's).")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  import jax
  import numpy as np

  from alala_jax import cli, conditional, evaluate
  from alala_jax.tasks import records
  from alala_jax.train import loop

  config = cli.load_workdir_config(_WORKDIR.value)
  state, task = loop.load_trained(_WORKDIR.value, config)
  prior, temperature, _ = records.load_run_prior(
    _WORKDIR.value, int(state.step), config.eval.prior_temperature
  )
  train = task.data.train
  zips = collections.Counter(r.postcode for r in train if r.postcode.strip())
  cities = collections.Counter(r.city for r in train if r.city.strip())
  city_zips = collections.defaultdict(set)
  for r in train:
    city_zips[r.city].add(r.postcode)

  def rare(counter):
    return min((c, v) for v, c in counter.items() if c >= _RARE_MIN.value)[1]

  conds = [
    ("postcode", zips.most_common(1)[0][0], "common"),
    ("postcode", rare(zips), "rare"),
    ("city", cities.most_common(1)[0][0], "common"),
    ("city", rare(cities), "rare"),
  ]

  def quality(field, value, gen):
    if not gen:
      return "–"
    distinct = len({repr(g) for g in gen})
    if field == "postcode":
      p = evaluate.pvalue_report(train, gen, config)
      q = f"p mean {p['pvalue/mean']:.3f} / median {p['pvalue/median']:.3f}"
    else:
      ok = np.mean([g.postcode in city_zips[value] for g in gen])
      q = f"postcode seen with the city {100 * ok:.1f} %"
    return f"{q}; {distinct} distinct records"

  svi = None
  if _SVI_STEPS.value:
    svi = dataclasses.replace(conditional.DEFAULT_SVI, steps=_SVI_STEPS.value)
    if _SVI_LR.value > 0:
      svi = dataclasses.replace(svi, lr=_SVI_LR.value)

  key = jax.random.key(_SEED.value)
  n = _N.value
  # compile both paths once before timing
  conditional.sample(
    task, state, {"city": conds[2][1]}, key, n=8, prior=prior, candidates=_CANDIDATES.value
  )
  if svi is not None:  # n rows: the SVI batch is sized to the group (up to 512 rows)
    conditional.sample(
      task,
      state,
      {"city": conds[2][1]},
      key,
      n=n,
      prior=prior,
      candidates=_CANDIDATES.value,
      svi=svi,
    )
  conditional.rejection_sample(task, state, {"city": conds[2][1]}, 1, key, prior=prior, chunk=1000)
  lines = [
    f"Workdir `{_WORKDIR.value}` (step {int(state.step)}), prior "
    f"{'tracked Gaussian' if prior is None else type(prior).__name__} at temperature "
    f"{temperature:g}; {n} records per condition and method; inference with "
    f"{_CANDIDATES.value} latent candidates; rejection budget {_MAX_GEN.value} records.",
    "",
    "| condition | training records | method | s per 1000 records | acceptance / ESS | quality |",
    "|---|---|---|---|---|---|",
  ]
  for i, (field, value, kind) in enumerate(conds):
    count = (zips if field == "postcode" else cities)[value]
    k = jax.random.fold_in(key, i)
    for method, refine in (("inference", None), (f"inference + SVI (K={_SVI_STEPS.value})", svi)):
      if method != "inference" and refine is None:
        continue
      t0 = time.time()
      gen, rep = conditional.sample(
        task,
        state,
        {field: value},
        k,
        n=n,
        prior=prior,
        temperature=temperature,
        candidates=_CANDIDATES.value,
        svi=refine,
      )
      s = time.time() - t0
      assert all(getattr(g, field) == value for g in gen)
      lines.append(
        f"| {field} = {value} ({kind}) | {count} | {method} | {1000 * s / n:.1f} | "
        f"ESS {rep.min_ess:.0f} | {quality(field, value, gen)} |"
      )
      print(lines[-1], flush=True)
    kept, rrep = conditional.rejection_sample(
      task,
      state,
      {field: value},
      n,
      k,
      prior=prior,
      temperature=temperature,
      max_generated=_MAX_GEN.value,
    )
    if rrep.accepted >= n:
      per = f"{1000 * rrep.seconds / n:.1f}"
    elif rrep.accepted:
      per = f"~{1000 * rrep.seconds / rrep.accepted:.0f} (extrapolated)"
    else:
      per = f"> {rrep.seconds:.0f} s for none"
    lines.append(
      f"| {field} = {value} ({kind}) | {count} | rejection | {per} | "
      f"{rrep.accepted}/{rrep.generated} ({100 * rrep.acceptance:.3f} %) | "
      f"{quality(field, value, kept)} |"
    )
    print(lines[-1], flush=True)
  text = "\n".join(lines)
  print(text)
  if _OUTPUT.value:
    with open(_OUTPUT.value, "w") as f:
      f.write("# Conditional generation: inference vs rejection sampling\n\n" + text + "\n")


if __name__ == "__main__":
  runtime.setup()
  app.run(main)
