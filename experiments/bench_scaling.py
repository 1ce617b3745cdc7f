r"""Cost growth of the training step (issue #5): steps/s and records/s against batch size,
string length, number of multiscale levels and number of devices, printed as tables.

  python -m experiments.bench_scaling                          # every sweep, default sizes
  python -m experiments.bench_scaling --sweeps=levels --levels=1,2,4,8,16,32 --per_level=8

* batch:   batch sizes (`--batches`), one level.
* length:  the street field cut/repeated to each length (`--lengths`), batch `--batch`.
* levels:  n levels with `--per_level` rows each (batch = n x per_level), next to n times one
           single-level step of `--per_level` rows: the ratio t(n levels) / (n x t(1 level))
           is what a vmapped level axis buys over n separate workers (target <= 1.2).
* devices: a (data=1, beta=d) mesh over d forced host devices, 8 levels. This sweep runs in a
           child process with `--xla_force_host_platform_device_count=max(d)`, so that the
           other sweeps time a single-device process like `bench_train.py` does (8 forced
           devices slowed the batch-256 step from 915 to 552 records/s). On a CPU the forced
           devices share the same cores: this measures SPMD partitioning overhead, not speed-up.

Every row compiles its own step (compile seconds are printed) and times `--steps` steps after a
warm-up step. Address schema on the embedded synthetic data, latent `--latent`.
"""

import os
import subprocess
import sys
import time

from absl import app, flags

from alala_jax import runtime

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SWEEPS = flags.DEFINE_list("sweeps", ["batch", "length", "levels", "devices"], "Which tables.")
_BATCHES = flags.DEFINE_list("batches", ["64", "128", "256", "512", "1024"], "Batch sizes.")
_LENGTHS = flags.DEFINE_list("lengths", ["8", "16", "32", "64"], "Street lengths.")
_LEVELS = flags.DEFINE_list("levels", ["1", "2", "4", "8", "16", "32"], "Level counts.")
_DEVICES = flags.DEFINE_list("devices", ["1", "2", "4", "8"], "Device counts (beta axis).")
_BATCH = flags.DEFINE_integer("batch", 256, "Batch size of the length and devices sweeps.")
_PER_LEVEL = flags.DEFINE_integer("per_level", 8, "Rows per level in the levels sweep.")
_LATENT = flags.DEFINE_integer("latent", 128, "Latent / embedding size.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps per row.")
_RECORDS = flags.DEFINE_integer("records", 3000, "Synthetic records.")


def _records(street_len: int | None = None):
  import dataclasses

  from alala_jax.data import synthetic

  recs = synthetic.synthetic_addresses(_RECORDS.value, 40, 0)
  if street_len is None:
    return recs
  return [
    dataclasses.replace(r, street=(r.street + " ") * (street_len // max(len(r.street), 1) + 1))
    for r in recs
  ]


def _config(batch: int, levels: int = 1, mesh: str = ""):
  from alala_jax import config as base

  c = base.base_config()
  c.train.batch_size, c.model.latent_dim, c.train.mesh = batch, _LATENT.value, mesh
  c.objective.multiscale.n_levels = levels
  return c


def step_time(config, records, street_len: int | None = None) -> tuple[float, float]:
  """(seconds per step, compile seconds) of `config`'s training step on `records`."""
  import jax

  from alala_jax import schema as sc
  from alala_jax.data import batching, codec
  from alala_jax.tasks.records import RecordTask
  from alala_jax.train import sharding

  root = sc.parse_schema(sc.Address)
  spec = codec.build_spec(root, records)
  if street_len is not None:
    spec.max_len["street"] = street_len
  arrays, _ = codec.encode(root, spec, records)
  trainer = RecordTask(config, root, spec).trainer
  b = config.train.batch_size
  batches = [batching.batch_at(arrays, s, b, 0) for s in range(_STEPS.value + 1)]
  state = trainer.create_state(0, batches[0])
  mesh = sharding.mesh_from_config(config.train.mesh)
  if mesh is not None:
    state, _ = sharding.shard(state, batches[0], mesh, trainer.setup)
    batches = [jax.device_put(x, sharding.batch_sharding(mesh)) for x in batches]
  train_step = trainer.phase_step("train")
  t = time.perf_counter()
  state, _, _ = train_step(state, batches[0])
  jax.block_until_ready(state)
  compile_s = time.perf_counter() - t
  t = time.perf_counter()
  for x in batches[1:]:
    state, _, _ = train_step(state, x)
  jax.block_until_ready(state)
  return (time.perf_counter() - t) / _STEPS.value, compile_s


def _devices_child(n_devices: int) -> None:
  """Re-runs this script for the devices sweep alone with `n_devices` forced host devices."""
  flag = f"--xla_force_host_platform_device_count={n_devices}"
  env = dict(
    os.environ, XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip(), ALALA_BENCH_CHILD="1"
  )
  argv = [a for a in sys.argv[1:] if not a.startswith("--sweeps")] + ["--sweeps=devices"]
  subprocess.run(
    [sys.executable, "-m", "experiments.bench_scaling", *argv], env=env, check=True, cwd=REPO_ROOT
  )


def _row(cells) -> str:
  return "| " + " | ".join(str(c) for c in cells) + " |"


def main(argv):
  del argv
  import jax

  print(
    f"devices: {len(jax.devices())} x {jax.devices()[0].platform}, cores: {os.cpu_count()},"
    f" latent {_LATENT.value}, {_STEPS.value} timed steps per row"
  )
  recs = _records()
  if "batch" in _SWEEPS.value:
    print("\nbatch size (1 level)\n" + _row(["batch", "steps/s", "records/s", "compile s"]))
    print("|---|---|---|---|")
    for b in map(int, _BATCHES.value):
      dt, cs = step_time(_config(b), recs)
      print(_row([b, f"{1 / dt:.2f}", f"{b / dt:.0f}", f"{cs:.0f}"]), flush=True)
  if "length" in _SWEEPS.value:
    print(
      f"\nstreet length (batch {_BATCH.value}, 1 level)\n"
      + _row(["street max_len", "steps/s", "records/s", "compile s"])
      + "\n|---|---|---|---|"
    )
    for n in map(int, _LENGTHS.value):
      dt, cs = step_time(_config(_BATCH.value), _records(n), street_len=n)
      print(_row([n, f"{1 / dt:.2f}", f"{_BATCH.value / dt:.0f}", f"{cs:.0f}"]), flush=True)
  if "levels" in _SWEEPS.value:
    b = _PER_LEVEL.value
    t1, _ = step_time(_config(b), recs)
    print(
      f"\nlevels ({b} rows per level; one single-level step of {b} rows: {t1 * 1e3:.1f} ms)"
      "\n"
      + _row(["levels", "batch", "ms/step", "n x single ms", "ratio", "compile s"])
      + "\n|---|---|---|---|---|---|"
    )
    for n in map(int, _LEVELS.value):
      dt, cs = step_time(_config(n * b, n), recs)
      print(
        _row(
          [n, n * b, f"{dt * 1e3:.1f}", f"{n * t1 * 1e3:.1f}", f"{dt / (n * t1):.2f}", f"{cs:.0f}"]
        ),
        flush=True,
      )
  if "devices" in _SWEEPS.value:
    n_max = max(map(int, _DEVICES.value))
    if len(jax.devices()) < n_max:
      if os.environ.get("ALALA_BENCH_CHILD"):
        raise SystemExit(
          f"devices sweep: {len(jax.devices())} devices after forcing {n_max} "
          f"host devices (platform {jax.devices()[0].platform}); lower --devices"
        )
      sys.stdout.flush()
      _devices_child(n_max)
      return
    print(
      f"\ndevices (mesh data=1 x beta=d, 8 levels, batch {_BATCH.value}; forced host "
      "devices share the CPU)\n"
      + _row(["devices", "steps/s", "records/s", "compile s"])
      + "\n|---|---|---|---|"
    )
    for d in map(int, _DEVICES.value):
      dt, cs = step_time(_config(_BATCH.value, 8, f"1,{d}"), recs)
      print(_row([d, f"{1 / dt:.2f}", f"{_BATCH.value / dt:.0f}", f"{cs:.0f}"]), flush=True)


if __name__ == "__main__":
  runtime.setup()
  app.run(main)
