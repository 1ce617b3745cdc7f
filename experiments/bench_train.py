r"""Training-step benchmark: model FLOP utilisation against this machine's measured matmul peak.

  python experiments/bench_train.py                       # Address, batch 256, latent 128
  python experiments/bench_train.py --batch=128 --latent=64 --steps=30
  python experiments/bench_train.py --string_scan=both     # per-field vs grouped string scans

Measures in ONE run: the float32 matmul peak (GFLOP/s, 1024^3 jit'd matmul, all cores), the
training step's matmul FLOPs (counted from its jaxpr, scan bodies x length; XLA's
cost analysis counts a loop body once and is printed for comparison), compile time, steps/s,
records/s, peak resident memory, and prints MFU = step FLOPs x steps/s / matmul peak.
"""

import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from alala_jax import runtime  # noqa: E402

_BATCH = flags.DEFINE_integer("batch", 256, "Batch size.")
_LATENT = flags.DEFINE_integer("latent", 128, "Latent / embedding size.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps (after one warm-up step).")
_RECORDS = flags.DEFINE_integer("records", 5000, "Synthetic records to draw batches from.")
_SCAN = flags.DEFINE_enum("string_scan", "field", ["field", "grouped", "both"],
                          "String scans: one per field, grouped (shared padded scans), or both "
                          "(measured one after the other in this run, with their ratio).")


def matmul_peak_gflops(n: int = 1024, reps: int = 20) -> float:
  import jax
  import jax.numpy as jnp
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  f = jax.jit(lambda x, y: x @ y)
  f(a, a).block_until_ready()
  best = float("inf")
  for _ in range(3):
    t = time.perf_counter()
    for _ in range(reps):
      out = f(a, a)
    out.block_until_ready()
    best = min(best, (time.perf_counter() - t) / reps)
  return 2 * n**3 / best / 1e9


def measure(scan: str, peak: float) -> dict:
  """Compiles and times the default training step with `model.string_scan = scan`."""
  import jax
  from alala_jax import config as base
  from alala_jax.data import batching
  from alala_jax.train import flops as flops_lib
  from alala_jax.train import loop
  c = base.base_config()
  c.data.num_synthetic = _RECORDS.value
  c.train.batch_size = _BATCH.value
  c.model.latent_dim = _LATENT.value
  c.model.string_scan = scan
  prep = loop.prepare(c)
  p = prep.programs
  batch = batching.batch_at(prep.train_arrays, 0, _BATCH.value, 0)
  state = p.create_state(0, batch)
  t = time.perf_counter()
  compiled = p.train_step.lower(state, batch).compile()
  compile_s = time.perf_counter() - t
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(flops_lib.matmul_flops(p._train_step, state, batch))
  state, m, _ = p.train_step(state, batch)
  jax.block_until_ready(state)
  batches = [batching.batch_at(prep.train_arrays, s, _BATCH.value, 0) for s in range(_STEPS.value)]
  t = time.perf_counter()
  for b in batches:
    state, m, _ = p.train_step(state, b)
  jax.block_until_ready(state)
  dt = (time.perf_counter() - t) / _STEPS.value
  return dict(scan=scan, flops=flops, xla_flops=float(cost["flops"]), compile_s=compile_s,
              dt=dt, lengths=dict(p.spec.max_len))


def main(argv):
  del argv
  import jax
  peak = matmul_peak_gflops()
  scans = ["field", "grouped"] if _SCAN.value == "both" else [_SCAN.value]
  rows = [measure(s, peak) for s in scans]
  useful = rows[0]["flops"] if rows[0]["scan"] == "field" else None
  rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  print(f"devices: {jax.devices()}  cores: {os.cpu_count()}")
  print(f"float32 matmul peak (1024^3):  {peak:8.1f} GFLOP/s")
  print(f"train step (B={_BATCH.value}, latent={_LATENT.value}, Address schema, "
        f"string lengths {rows[0]['lengths']})")
  for r in rows:
    achieved = r["flops"] / r["dt"] / 1e9
    print(f"[string_scan={r['scan']}]")
    print(f"  matmul FLOPs/step (jaxpr count): {r['flops'] / 1e9:8.2f} GFLOP   (XLA cost "
          f"analysis, which counts each scan body once: {r['xla_flops'] / 1e9:.2f})")
    print(f"  compile time:                  {r['compile_s']:8.1f} s")
    print(f"  step time:                     {r['dt'] * 1e3:8.1f} ms  ({1 / r['dt']:.2f} "
          f"steps/s, {_BATCH.value / r['dt']:.0f} records/s)")
    print(f"  achieved:                      {achieved:8.1f} GFLOP/s")
    print(f"  MFU = achieved / matmul peak = {achieved / peak:.3f}")
    if useful is not None and r["scan"] != "field":
      print(f"  useful-work MFU (field FLOPs, padding not counted) = "
            f"{useful / r['dt'] / 1e9 / peak:.3f}; speed-up over field: "
            f"{rows[0]['dt'] / r['dt']:.2f}x, compile {rows[0]['compile_s'] / r['compile_s']:.2f}x "
            f"faster")
  print(f"peak resident memory (whole run): {rss_gib:.2f} GiB")


if __name__ == "__main__":
  runtime.setup()
  app.run(main)
