r"""Generates N records from a trained workdir to CSV or JSON lines.

  python -m experiments.generate --workdir=/tmp/alala --num=1000 --output=/tmp/fake.csv
  python -m experiments.generate --workdir=/tmp/alala --num=10 --output=- --format=jsonl --greedy

Sampling from the decoder is the default (paper 000 Sec 2.1); --greedy decodes by argmax. The
latents come from the generation prior the run's evaluation fitted (eval.generation_prior,
saved as generation_prior.npz) unless --prior=tracked asks for the paper's tracked Gaussian.
A comma-separated text model (data.format 'text', App F) writes its lines parsed back into
records of the schema; malformed lines are dropped and counted on stderr.
"""

import json
import sys

from absl import app, flags, logging

from alala_jax import runtime

_WORKDIR = flags.DEFINE_string("workdir", None, "Trained workdir.", required=True)
_NUM = flags.DEFINE_integer("num", 1000, "Number of records.")
_OUTPUT = flags.DEFINE_string("output", "-", "Output file ('-' = stdout).")
_FORMAT = flags.DEFINE_enum(
  "format", None, ["csv", "jsonl"], "Output format (default: from the file extension, else jsonl)."
)
_GREEDY = flags.DEFINE_bool("greedy", False, "Argmax decoding instead of sampling.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_TEMPERATURE = flags.DEFINE_float(
  "temperature", None, "Spread of the fitted prior (default: the run's eval.prior_temperature)."
)
_PRIOR = flags.DEFINE_enum(
  "prior",
  "fitted",
  ["fitted", "tracked"],
  "Latents to decode: 'fitted' = the prior the run's evaluation fitted and saved "
  "(workdir/generation_prior.npz; the model's tracked Gaussian when the run saved none), "
  "'tracked' = the model's moving N(mean, cov) of the training latents (paper 000).",
)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  import dataclasses

  import jax

  from alala_jax import cli, generate, latent_priors
  from alala_jax.data import csv_io, datasets, text_format
  from alala_jax.tasks import records
  from alala_jax.train import loop

  config = cli.load_workdir_config(_WORKDIR.value)
  state, task = loop.load_model(_WORKDIR.value, config)
  prior, temperature, source = None, config.eval.prior_temperature, "the model's tracked Gaussian"
  if _PRIOR.value == "fitted":
    prior, temperature, source = records.load_run_prior(
      _WORKDIR.value, int(state.step), temperature
    )
  if _TEMPERATURE.value is not None and prior is not None:
    temperature = _TEMPERATURE.value
    source = f"{latent_priors.describe('the fitted prior', prior)} at temperature {temperature:g}"
  print(f"latents from {source}", file=sys.stderr)
  recs = generate.generate_records(
    task,
    state,
    _NUM.value,
    jax.random.key(_SEED.value),
    config.eval.chunk,
    _GREEDY.value,
    prior=prior,
    temperature=temperature,
  )
  cls = task.root.cls
  text = text_format.from_config(config.data, datasets.import_schema(config.data.schema))
  if text is not None:
    parsed = [text.parse(r) for r in recs]
    recs, cls = [r for r in parsed if r is not None], text.cls
    print(
      f"{len(parsed) - len(recs)} of {len(parsed)} generated lines were malformed (dropped)",
      file=sys.stderr,
    )
  fmt = _FORMAT.value or ("csv" if _OUTPUT.value.endswith(".csv") else "jsonl")
  if fmt == "csv":
    if _OUTPUT.value == "-":
      raise app.UsageError("--format=csv needs --output=<file>")
    csv_io.write_csv(_OUTPUT.value, recs, cls)
  else:
    out = sys.stdout if _OUTPUT.value == "-" else open(_OUTPUT.value, "w")
    for r in recs:
      out.write(json.dumps(dataclasses.asdict(r)) + "\n")
    if out is not sys.stdout:
      out.close()
  print(f"wrote {len(recs)} records ({fmt}) to {_OUTPUT.value}", file=sys.stderr)


if __name__ == "__main__":
  runtime.setup()
  app.run(main)
