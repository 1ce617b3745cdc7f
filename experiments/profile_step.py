r"""Profile of the default training step: where the time goes on XLA:CPU (issue #5).

  python -m experiments.profile_step                      # Address, batch 256, latent 128
  python -m experiments.profile_step --string_scan=grouped --traced=5

Traces `--traced` steps with `jax.profiler` (after a warm-up step) and prints, from the
perfetto trace, each thread's busy share of the step, the exclusive time per op kind
('ynn_fusion' and 'dot' are the matmuls) and the most expensive instructions
(`alala_jax/profiling.py`). The raw trace stays in `--logdir` for Perfetto / TensorBoard.
"""

import os

from absl import app, flags

from alala_jax import runtime

# --batch, --latent, --records, --string_scan, --gru_remat: bench_train's flags, same step
from experiments import bench_train

_TRACED = flags.DEFINE_integer("traced", 3, "Traced steps.")
_TOP = flags.DEFINE_integer("top", 15, "Rows per table.")
_LOGDIR = flags.DEFINE_string("logdir", "", "Trace directory ('' = a fresh temporary one).")


def main(argv):
  del argv
  from alala_jax import profiling

  scans, b, latent = bench_train.string_scans(), bench_train._BATCH.value, bench_train._LATENT.value
  if len(scans) != 1 or len(bench_train._REMAT.value) != 1:
    raise app.UsageError("profile one variant at a time: one --string_scan, one --gru_remat")
  scan = scans[0]
  remat = bench_train._REMAT.value[0]
  task, p, state, batch = bench_train.default_step(
    scan, b, latent, bench_train._RECORDS.value, remat
  )
  print(
    f"train step (B={b}, latent={latent}, string_scan={scan}, gru_remat={remat}, "
    f"malloc mode {os.environ.get('ALALA_MALLOC', 'thresholds')}, "
    f"lengths {dict(task.spec.max_len)})"
  )
  summary = profiling.trace_ops(
    p.phase_step("train"),
    state,
    batch,
    steps=_TRACED.value,
    logdir=_LOGDIR.value or None,
    carry=True,
  )
  print(summary.table(_TOP.value))


if __name__ == "__main__":
  runtime.setup()
  app.run(main)
