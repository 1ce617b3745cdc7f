r"""Benchmark of the text VAE's training strategies, ratios measured in one run (CPU or GPU).

  python -m experiments.bench_text [--k=1,5,20,80] [--steps=30] [--config_arg=synthetic004]
  python -m experiments.bench_text --config_file=experiments/configs/records_lagging.py \
      --config_arg=vermont --k=1,5,20 --no_remat_too=false --steps=5   # the record VAE's rows

Any config file whose argument takes `savae`, `k=K`, `aggressive` and `steps=N` (text.py,
records_lagging.py) can be measured; the programs are `ARG`, `savae,ARG,k=K` and
`aggressive,ARG,steps=N`.

1. SA-VAE (alala_jax/refine.py) at K refinement steps against a plain VAE step of the same
   model and batch: the compiled step's temporary memory (XLA's buffer assignment,
   `compiled.memory_analysis().temp_size_in_bytes`: the peak the step allocates besides its
   arguments and outputs) and its wall time (median of --steps calls after warm-up), with
   `jax.checkpoint` around each SVI step (the default) and without (--no_remat_too).
   Target: memory at K = 20 <= 2x memory at K = 1 (rematerialised).
2. Aggressive training (train/strategies.py) against plain steps: wall time per counted step
   while aggressive (encoder-only inner steps until the windowed loss stops improving, then a
   decoder step) and the mean number of inner steps; the whole-run ratio depends on how long
   the aggressive phase lasts (experiments/lagging.py records it).
3. The aggressive inner loop on the host (one compiled encoder step per inner step) against
   the same loop on the device (`strategies.encoder_loop`, one lax.while_loop per counted
   step): time per inner step from the same initial state, the same batches.
Paper 001 Table 3 for comparison: aggressive 2.2-3.7x, SA-VAE 9.9-15.2x the VAE's time.
"""

from __future__ import annotations

import statistics
import time

from absl import app, flags

from alala_jax import runtime

_K = flags.DEFINE_list("k", ["1", "5", "20", "80"], "SVI steps to measure.")
_STEPS = flags.DEFINE_integer("steps", 30, "Timed calls per program.")
_FILE = flags.DEFINE_string("config_file", "experiments/configs/text.py", "Config file measured.")
_ARG = flags.DEFINE_string("config_arg", "synthetic004", "The config file's argument.")
_NO_REMAT = flags.DEFINE_bool("no_remat_too", True, "Also measure SA-VAE without remat.")
_AGG_STEPS = flags.DEFINE_integer("aggressive_steps", 10, "Counted aggressive steps to time.")


def _compile(config):
  import jax

  from alala_jax.train import loop

  task = loop.prepare(config)
  trainer = task.trainer
  batch = task.example_batch(config.train.batch_size)
  state = trainer.create_state(0, batch)
  step = trainer.phase_step("train")
  compiled = step.lower(state, batch).compile()
  mem = compiled.memory_analysis()
  temp = int(getattr(mem, "temp_size_in_bytes", 0)) if mem is not None else 0
  for _ in range(3):  # warm-up (the state is donated: keep the returned one)
    state, m, _ = step(state, batch)
  jax.block_until_ready(state)
  times = []
  for _ in range(_STEPS.value):
    t = time.perf_counter()
    state, m, _ = step(state, batch)
    jax.block_until_ready(m)
    times.append(time.perf_counter() - t)
  return temp, statistics.median(times)


def main(argv):
  del argv
  import jax

  from alala_jax import config as config_lib
  from alala_jax.train import loop

  get_config = config_lib.config_file_module(_FILE.value).get_config

  print(
    f"device: {jax.devices()[0].device_kind} x {jax.device_count()}; {_FILE.value}:{_ARG.value}"
  )
  base = get_config(_ARG.value)
  mem0, t0 = _compile(base)
  rows = [("VAE", mem0, t0)]
  for k in [int(v) for v in _K.value]:
    for remat in [True] + ([False] if _NO_REMAT.value else []):
      c = get_config(f"savae,{_ARG.value},k={k}")
      c.refine.remat = remat
      mem, t = _compile(c)
      rows.append((f"SA-VAE K={k}" + ("" if remat else " (no remat)"), mem, t))
  print("| program | temp memory (MiB) | x VAE | step (ms) | x VAE |")
  print("|---|---|---|---|---|")
  for name, mem, t in rows:
    print(
      f"| {name} | {mem / 2**20:.1f} | {mem / max(mem0, 1):.2f} | {1e3 * t:.1f} | {t / t0:.2f} |"
    )
  by = {name: mem for name, mem, _ in rows}
  if "SA-VAE K=20" in by and "SA-VAE K=1" in by:
    print(f"memory K=20 / K=1 (remat): {by['SA-VAE K=20'] / max(by['SA-VAE K=1'], 1):.2f}")

  # aggressive training: counted steps while aggressive, against plain steps
  c = get_config(f"aggressive,{_ARG.value},steps={_AGG_STEPS.value}")
  c.train.aggressive.check_every = 10**9  # stays aggressive for the whole measurement
  c.train.log_every = c.train.checkpoint_every = 10**9
  c.train.eval_every = 0  # no evaluation, not even the final step's
  import tempfile

  task = loop.prepare(c)
  with tempfile.TemporaryDirectory() as wd:
    loop.train(c, wd, task, stop_at=1, log=lambda *a: None)  # compile both programs
    t = time.perf_counter()
    state, _ = loop.train(c, wd, task, log=lambda *a: None)
    t_agg = (time.perf_counter() - t) / (c.train.num_steps - 1)
  inner = (int(state.data_position) - int(state.step)) / int(state.step)
  print(
    f"aggressive: {1e3 * t_agg:.1f} ms per counted step ({inner:.1f} inner steps on average) = "
    f"{t_agg / t0:.1f}x a plain VAE step (while aggressive; paper 001 Table 3: whole runs "
    "2.2-3.7x)"
  )
  _inner_loops(task, _AGG_STEPS.value)


def _inner_loops(task, steps: int) -> None:
  """Section 3 of the module doc: host against device inner loops."""
  import dataclasses

  import jax

  from alala_jax.data import batching
  from alala_jax.train import strategies

  trainer, c = task.trainer, task.config
  stream = batching.Stream(task.train_arrays, c.train.batch_size, c.seed)
  per_inner = {}
  for inner in strategies.INNER_LOOPS:
    agg = dataclasses.replace(trainer.setup.strategy, inner_loop=inner)
    state = trainer.create_state(0, stream(0))
    host = agg.host_state(state)
    state, _, position = agg.advance(trainer, state, 0, 0, stream, host)  # compiles
    jax.block_until_ready(state)
    t, n0 = time.perf_counter(), position
    for s in range(1, steps + 1):
      state, m, position = agg.advance(trainer, state, s, position, stream, host)
    jax.block_until_ready(state)
    dt = time.perf_counter() - t
    per_inner[inner] = dt / (position - n0)
    print(
      f"inner loop on the {inner}: {1e3 * dt / steps:.1f} ms per counted step, "
      f"{(position - n0) / steps:.1f} inner steps each, {1e3 * per_inner[inner]:.2f} ms per "
      "inner step (decoder step included)"
    )
  print(f"device / host time per inner step: {per_inner['device'] / per_inner['host']:.2f}")


if __name__ == "__main__":
  runtime.setup()
  app.run(main)
