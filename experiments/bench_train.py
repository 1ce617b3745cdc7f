r"""Training-step benchmark: model FLOP utilisation against this machine's measured matmul peak.

  python -m experiments.bench_train                       # Address, batch 256, latent 128
  python -m experiments.bench_train --batch=128 --latent=64 --steps=30
  python -m experiments.bench_train --string_scan=both     # per-field vs grouped string scans
  python -m experiments.bench_train --string_scan=field,packed  # vs scans packed without padding
  python -m experiments.bench_train --malloc=compare       # glibc malloc modes (runtime.py)
  python -m experiments.bench_train --dots=compare         # XLA:CPU dots: Eigen vs YNNPACK
  python -m experiments.bench_train --gru_remat=none,dots,full  # string GRU cells, nn.remat

Measures in ONE run: the float32 matmul peak (GFLOP/s, 1024^3 jit'd matmul, all cores), the
model's matmul FLOPs per training step (counted from the jaxpr of the step with one scan per
string field and no remat: scan bodies x length, dead code removed; XLA's cost analysis counts a
loop body once and is printed for comparison), each variant's executed FLOPs (with padding /
recomputation),
compile time, steps/s, records/s, XLA's temporary buffer size, minor page faults per step and
peak resident memory, and prints MFU = model FLOPs x steps/s / matmul peak. Variants
(--string_scan x --gru_remat) are timed in interleaved rounds (peak, variant 1, variant 2, ...)
and medians reported, since this machine's speed drifts by +-20% within minutes.

`--malloc=compare` / `--dots=compare` run the benchmark once per malloc mode / XLA:CPU dot
library of `alala_jax.runtime` (process settings, so each in its own subprocess, one after the
other, `--repeats` times in alternating order) and print their step-time ratios; MFU there is
taken against the larger of the modes' median matmul peaks.
"""

import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from absl import app, flags

from alala_jax import runtime

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_BATCH = flags.DEFINE_integer("batch", 256, "Batch size.")
_LATENT = flags.DEFINE_integer("latent", 128, "Latent / embedding size.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps per round (after one warm-up step).")
_ROUNDS = flags.DEFINE_integer(
  "rounds", 3, "Interleaved timing rounds (matmul peak, then each variant); medians are reported."
)
_RECORDS = flags.DEFINE_integer("records", 5000, "Synthetic records to draw batches from.")
_SCAN = flags.DEFINE_list(
  "string_scan",
  ["field"],
  "model.string_scan values to compare: field (one scan per field), grouped (shared padded "
  "scans), packed (shared scans without padding); 'both' = field,grouped, 'all' = the three. "
  "Each is a variant, timed in the same rounds, with its ratio to the first.",
)
_REMAT = flags.DEFINE_list(
  "gru_remat",
  ["full"],
  "model.gru_remat values to compare "
  "(none, dots, full); each is a variant, crossed with --string_scan.",
)
_MALLOC = flags.DEFINE_enum(
  "malloc",
  "current",
  ["current", "compare"],
  "current: this process's malloc mode ($ALALA_MALLOC, default "
  "'thresholds'); compare: one subprocess per mode of runtime.MODES.",
)
_DOTS = flags.DEFINE_enum(
  "dots",
  "current",
  ["current", "compare"],
  "current: this process's XLA:CPU dot library ($ALALA_XLA_DOTS, default "
  "'eigen'); compare: one subprocess per mode of runtime.DOT_MODES.",
)
_REPEATS = flags.DEFINE_integer(
  "repeats", 1, "--malloc/--dots=compare: processes per mode, run in alternating order (ABBA...)."
)


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


def default_step(scan: str, batch_size: int, latent: int, records: int, remat: str = "none"):
  """(task, its Trainer, initial state, first batch) of the default training step."""
  from alala_jax import config as base
  from alala_jax.data import batching
  from alala_jax.train import loop

  c = base.base_config()
  c.data.num_synthetic = records
  c.train.batch_size = batch_size
  c.model.latent_dim = latent
  c.model.string_scan = scan
  c.model.gru_remat = remat
  prep = loop.prepare(c)
  batch = batching.batch_at(prep.train_arrays, 0, batch_size, 0)
  return prep, prep.trainer, prep.trainer.create_state(0, batch), batch


def step_flops(trainer, state, batch) -> float:
  """Matmul FLOPs of the training step `trainer` compiles (no posterior means, as its loops)."""
  from alala_jax.train import flops as flops_lib
  from alala_jax.train import step as step_lib

  step = functools.partial(step_lib.train_step, setup=trainer.setup, phase="train", means=False)
  return float(flops_lib.matmul_flops(step, state, batch))


def prepare(scan: str, remat: str) -> dict:
  """Compiles the default training step with `model.string_scan = scan` and `model.gru_remat =
  remat`; returns its counts and a `time()` closure: seconds per step and minor page faults per
  step over `--steps`."""
  import jax

  from alala_jax.data import batching

  prep, p, state, batch = default_step(scan, _BATCH.value, _LATENT.value, _RECORDS.value, remat)
  t = time.perf_counter()
  compiled = p.phase_step("train").lower(state, batch).compile()
  compile_s = time.perf_counter() - t
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = step_flops(p, state, batch)
  temp = compiled.memory_analysis().temp_size_in_bytes
  # the AOT executable itself: calling the jitted step would trace and compile it again
  carry = {"state": compiled(state, batch)[0]}
  jax.block_until_ready(carry)
  batches = [batching.batch_at(prep.train_arrays, s, _BATCH.value, 0) for s in range(_STEPS.value)]

  def time_steps() -> tuple[float, float]:
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = time.perf_counter()
    for b in batches:
      carry["state"] = compiled(carry["state"], b)[0]
    jax.block_until_ready(carry)
    dt = (time.perf_counter() - t) / _STEPS.value
    return dt, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / _STEPS.value

  return dict(
    scan=scan,
    remat=remat,
    flops=flops,
    xla_flops=float(cost["flops"]),
    compile_s=compile_s,
    lengths=dict(prep.spec.max_len),
    temp_mb=temp / 1e6,
    time=time_steps,
  )


def string_scans() -> list[str]:
  """--string_scan's variants ('both' and 'all' expanded), checked against the model's."""
  from alala_jax.nn import tree

  alias = {"both": ["field", "grouped"], "all": list(tree.STRING_SCANS)}
  scans = [s for v in _SCAN.value for s in alias.get(v, [v])]
  bad = [s for s in scans if s not in tree.STRING_SCANS]
  if bad:
    raise app.UsageError(f"--string_scan: unknown {bad}; one of {tree.STRING_SCANS}, both, all")
  return scans


def compare_processes(flag: str, env_var: str, modes: tuple[str, ...]) -> None:
  """Runs this benchmark once per mode of the process setting `env_var`, each in a fresh
  process, `--repeats` times in alternating order; prints medians and ratios to the first."""
  args = [a for a in sys.argv[1:] if not a.startswith(f"--{flag}")]
  runs = {m: [] for m in modes}
  for rep in range(_REPEATS.value):
    for mode in modes if rep % 2 == 0 else modes[::-1]:
      out = subprocess.run(
        [sys.executable, "-m", "experiments.bench_train", f"--{flag}=current", *args],
        env=dict(os.environ, XLA_FLAGS=runtime.user_xla_flags(), **{env_var: mode}),
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
      ).stdout
      print(f"--- {env_var}={mode} (repeat {rep + 1})\n{out}", flush=True)
      runs[mode].append([json.loads(l[7:]) for l in out.splitlines() if l.startswith("RESULT ")])
  peak = max(statistics.median(rs[0]["peak"] for rs in runs[m]) for m in modes)
  base = modes[0]
  print(
    f"{env_var:14s} scan     remat  ms/step (per process)   faults/step  MFU vs {peak:.0f} "
    f"GFLOP/s  speed vs {base}"
  )
  for mode in modes:
    for i in range(len(runs[mode][0])):
      dts = [rs[i]["dt"] for rs in runs[mode]]
      dt, base_dt = statistics.median(dts), statistics.median(rs[i]["dt"] for rs in runs[base])
      r = runs[mode][0][i]
      mfu = r["model_flops"] / dt / 1e9 / peak
      print(
        f"{mode:14s} {r['scan']:7s} {r['remat']:5s} {dt * 1e3:8.1f} "
        f"({', '.join(f'{x * 1e3:.0f}' for x in dts)})  {r['faults']:11.0f}  {mfu:.3f}"
        f"{'':17s}{base_dt / dt:.2f}x"
      )


def main(argv):
  del argv
  if _MALLOC.value == "compare":
    return compare_processes("malloc", "ALALA_MALLOC", runtime.MODES)
  if _DOTS.value == "compare":
    return compare_processes("dots", "ALALA_XLA_DOTS", runtime.DOT_MODES)
  import jax

  scans = string_scans()
  rows = [prepare(s, r) for s in scans for r in _REMAT.value]
  # interleaved rounds (peak, variant 1, variant 2, peak, ...): this machine's speed drifts
  # by +-20% within minutes, so each round's MFU is taken against that round's own peak
  for r in rows:
    r["dts"], r["mfus"], r["faults_all"] = [], [], []
  peaks = []
  for _ in range(_ROUNDS.value):
    peaks.append(matmul_peak_gflops())
    for r in rows:
      dt, faults = r["time"]()
      r["dts"].append(dt)
      r["faults_all"].append(faults)
      r["mfus"].append(r["flops"] / dt / 1e9 / peaks[-1])
  for r in rows:
    del r["time"]
    r["dt"], r["mfu"] = statistics.median(r["dts"]), statistics.median(r["mfus"])
    r["faults"] = statistics.median(r["faults_all"])
  peak = statistics.median(peaks)
  # the model's FLOPs: one scan per field, no remat (no padding, no recomputation); traced
  # afresh only when no timed variant is that step
  model_flops = next(
    (r["flops"] for r in rows if (r["scan"], r["remat"]) == ("field", "none")), None
  )
  if model_flops is None:
    _, p0, state0, batch0 = default_step(
      "field", _BATCH.value, _LATENT.value, _RECORDS.value, "none"
    )
    model_flops = step_flops(p0, state0, batch0)
  rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  print(f"devices: {jax.devices()}  cores: {os.cpu_count()}")
  print(
    f"float32 matmul peak (1024^3):  {peak:8.1f} GFLOP/s (median of {len(peaks)} rounds: "
    f"{', '.join(f'{x:.0f}' for x in peaks)})"
  )
  print(
    f"train step (B={_BATCH.value}, latent={_LATENT.value}, Address schema, "
    f"string lengths {rows[0]['lengths']})"
  )
  for r in rows:
    achieved = r["flops"] / r["dt"] / 1e9
    print(f"[string_scan={r['scan']}, gru_remat={r['remat']}]")
    print(
      f"  executed matmul FLOPs/step (jaxpr count, incl. padding and recomputation): "
      f"{r['flops'] / 1e9:8.2f} GFLOP   (XLA cost "
      f"analysis, which counts each scan body once: {r['xla_flops'] / 1e9:.2f})"
    )
    print(f"  compile time:                  {r['compile_s']:8.1f} s")
    print(
      f"  step time (median of rounds):  {r['dt'] * 1e3:8.1f} ms  ({1 / r['dt']:.2f} "
      f"steps/s, {_BATCH.value / r['dt']:.0f} records/s; rounds: "
      f"{', '.join(f'{x * 1e3:.0f}' for x in r['dts'])} ms)"
    )
    print(f"  achieved:                      {achieved:8.1f} GFLOP/s")
    mfus = [model_flops / dt / 1e9 / pk for dt, pk in zip(r["dts"], peaks)]
    r["model_mfu"], r["model_flops"] = statistics.median(mfus), model_flops
    print(
      f"  MFU = model FLOPs ({model_flops / 1e9:.2f} GFLOP: per-field scans, no padding, no "
      f"recomputation) / step time / matmul peak = {r['model_mfu']:.3f} (median over rounds, "
      f"each against its own peak; {min(mfus):.3f} - {max(mfus):.3f})"
    )
    print(
      f"  executed-FLOP utilisation = achieved / matmul peak = {r['mfu']:.3f} (median over "
      f"rounds of each round's step against its own peak; {min(r['mfus']):.3f} - "
      f"{max(r['mfus']):.3f})"
    )
    print(
      f"  XLA temporaries: {r['temp_mb']:.0f} MB; minor page faults per step: "
      f"{r['faults']:.0f} (= {r['faults'] * resource.getpagesize() / 1e6:.0f} MB; malloc "
      f"mode {os.environ.get('ALALA_MALLOC', 'thresholds')})"
    )
    if r is not rows[0]:
      ratios = [f / g for f, g in zip(rows[0]["dts"], r["dts"])]
      print(
        f"  speed-up over the first variant: median {statistics.median(ratios):.2f}x (rounds: "
        f"{', '.join(f'{x:.2f}' for x in ratios)}), compile "
        f"{rows[0]['compile_s'] / r['compile_s']:.2f}x faster"
      )
  print(f"peak resident memory (whole run): {rss_gib:.2f} GiB")
  for r in rows:
    print("RESULT " + json.dumps(dict(r, peak=peak)))
  print(f"XLA_FLAGS: {os.environ.get('XLA_FLAGS', '')!r}")


if __name__ == "__main__":
  runtime.setup()
  app.run(main)
