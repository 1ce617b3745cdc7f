r"""Trains a record VAE and prints its generation-quality metrics.

  python -m experiments.train --config=experiments/configs/default.py --workdir=/tmp/alala

All logic is in `alala_jax.train.loop` so it can be imported and tested (and used in Colab).
"""

from absl import app, flags, logging
from ml_collections import config_flags

from alala_jax import runtime

_WORKDIR = flags.DEFINE_string(
  "workdir", None, "Directory for checkpoints and metrics.", required=True
)
config_flags.DEFINE_config_file("config", None, "Training configuration file.", lock_config=True)
_DISTRIBUTED = flags.DEFINE_bool(
  "distributed",
  False,
  "Call jax.distributed.initialize() first (multi-host runs; reads "
  "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID or the cluster's own variables).",
)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError("Too many command-line arguments.")
  logging.set_verbosity(logging.WARNING)  # orbax logs every file it writes at INFO
  if _DISTRIBUTED.value:
    import jax

    jax.distributed.initialize()
  from alala_jax.train import loop

  loop.train_and_evaluate(flags.FLAGS.config, _WORKDIR.value)


if __name__ == "__main__":
  runtime.setup()
  flags.mark_flags_as_required(["config"])
  app.run(main)
