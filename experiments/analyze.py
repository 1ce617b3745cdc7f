r"""The App D-E analyses of a trained workdir (paper 000 Figs 9-17).

  python -m experiments.analyze --workdir=/tmp/alala [--rounds=9] [--num=10000] [--steps=24]

Writes to the workdir: ``repeated_encode_decode.png`` (p-value box plots over n = 0..rounds
rounds of g(mu(x)), starting from generated and from training records, and the share of street
names present in the training data per round), ``interpolation.png`` (the decoded path between
the first two training records on a map of the training coordinates) and ``analysis.json``.
It also prints (and stores under 'extraction') the extraction rate of the generated sequence
(`alala_jax.metrics.privacy.extraction_rates` on the field `evaluate.extraction_field` picks):
the share of rare training values reproduced per round against that of rare test values.
"""

import json
import os

from absl import app, flags, logging

from alala_jax import runtime

_WORKDIR = flags.DEFINE_string("workdir", None, "Trained workdir.", required=True)
_ROUNDS = flags.DEFINE_integer("rounds", 9, "Rounds of encoding/decoding (App E: 9).")
_NUM = flags.DEFINE_integer("num", 10000, "Generated and training records per start set.")
_STEPS = flags.DEFINE_integer("steps", 24, "Points on the interpolation path.")
_SEED = flags.DEFINE_integer("seed", 0, "PRNG seed.")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  import jax
  import numpy as np

  from alala_jax import analysis, cli, evaluate, generate, viz
  from alala_jax.metrics import privacy
  from alala_jax.train import loop

  config = cli.load_workdir_config(_WORKDIR.value)
  state, task = loop.load_trained(_WORKDIR.value, config)
  ec = config.eval
  key = jax.random.key(_SEED.value)
  train = task.data.train
  n = min(_NUM.value, len(train))
  rng = np.random.default_rng(_SEED.value)
  starts = {
    "generated": generate.generate_records(
      task, state, n, jax.random.fold_in(key, 1), ec.chunk, ec.greedy
    ),
    "training": [train[i] for i in rng.choice(len(train), n, replace=False)],
  }
  coord_fields = tuple(f.strip() for f in ec.coord_fields.split(","))
  field = evaluate.extraction_field(config, train)
  stats, summary, extraction = {}, {}, {}
  for i, (name, recs) in enumerate(starts.items()):
    rounds = analysis.repeated_encode_decode(
      task, state, recs, _ROUNDS.value, jax.random.fold_in(key, 10 + i), ec.chunk, ec.greedy
    )
    if name == "generated" and field and task.data.test:
      values = lambda rs: evaluate.field_values(rs, field, config)
      extraction = privacy.extraction_rates(
        [values(r) for r in rounds],
        values(train),
        values(task.data.test),
        int(ec.get("extraction_max_count", 1)),
        _SEED.value,
      )
      extraction["extraction/field"] = field
    stats[name] = analysis.round_stats(
      rounds, train, ec.zip_field, coord_fields, ec.lev_field or None
    )
    summary[name] = [{k: v for k, v in r.items() if k != "pvalues"} for r in stats[name]]
    for r, row in enumerate(summary[name]):
      print(
        f"{name:9s} round {r}: p-value mean {row['mean']:.4f} median {row['median']:.4f} "
        f"std {row['std']:.4f}"
        + (f"  street in train {row['in_train']:.3f}" if "in_train" in row else "")
      )
  for line in privacy.format_privacy(extraction):
    print(line)
  out = os.path.join(_WORKDIR.value, "repeated_encode_decode.png")
  viz.plot_repeated_encode_decode(stats, out, f"step {int(state.step)}")
  path, _ = analysis.interpolate(
    task, state, train[0], train[1], _STEPS.value, jax.random.fold_in(key, 2), ec.greedy
  )
  lat, lon = coord_fields
  xy = lambda rs: [[getattr(r, lat), getattr(r, lon)] for r in rs]
  label = lambda r: f"{getattr(r, ec.lev_field, '')} {getattr(r, ec.zip_field, '')}"
  viz.plot_interpolation_map(
    xy(train),
    xy(path),
    [label(r) for r in path],
    os.path.join(_WORKDIR.value, "interpolation.png"),
    f"{label(train[0])} -> {label(train[1])}",
  )
  for r in path:
    print("  interpolation:", label(r), f"({getattr(r, lat):.4f}, {getattr(r, lon):.4f})")
  with open(os.path.join(_WORKDIR.value, "analysis.json"), "w") as f:
    json.dump(
      {"rounds": summary, "extraction": extraction, "interpolation": [label(r) for r in path]},
      f,
      indent=1,
    )
  print(f"wrote {out}, interpolation.png and analysis.json to {_WORKDIR.value}")


if __name__ == "__main__":
  runtime.setup()
  app.run(main)
