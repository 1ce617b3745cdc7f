"""Where a jit'd step spends its time on XLA:CPU: per-op-kind exclusive times from a profiler trace.

`trace_ops(fn, *args, steps=3)` runs `fn` under `jax.profiler.trace(create_perfetto_trace=True)`
and reads back the thunk events XLA:CPU records for each HLO instruction it executes (a while
loop's body instructions appear once per iteration, nested inside the loop's own event).
`summarize` turns them into:

* exclusive time per op kind (the HLO name without its numeric suffix: 'dot', 'copy',
  'ynn_fusion' = a matmul fused by YNNPACK, 'while', 'add_select_fusion', ...): an event's
  duration less that of the events nested in it on the same thread;
* busy time per thread (the union of its top-level op events) against the traced wall span,
  i.e. how much of the step each core worked;
* concurrency: how long 0, 1, 2, ... threads were each inside a leaf op (an event with no op
  nested in it), over the span. Time with none is spent between ops (dispatch, loop control);
  a matmul that Eigen splits over the pool shows as one leaf event on one thread;
* the most expensive single instructions.

The profiler adds about a microsecond per event, so small steps read slower than they run; use
shares and ratios, and time steps without the profiler (experiments/bench_train.py).
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import gzip
import json
import os
import re
import tempfile
from typing import Any, Callable

import jax


@dataclasses.dataclass
class OpSummary:
  steps: int
  span_us: float  # wall time from the first op event to the last
  thread_busy_us: dict[str, float]  # thread name -> busy time (top-level op events)
  kind_us: dict[str, float]  # op kind -> exclusive time, all threads
  kind_count: dict[str, int]  # op kind -> executions
  op_us: dict[str, float]  # HLO instruction -> exclusive time
  op_count: dict[str, int]
  concurrency_us: dict[int, float] = dataclasses.field(default_factory=dict)  # threads in a
  # leaf op -> time over the span

  def table(self, top: int = 15) -> str:
    """A plain-text report: per-step times, thread utilisation, op kinds and instructions."""
    s = self.steps
    total = sum(self.kind_us.values())
    lines = [f"traced {s} step(s): {self.span_us / s / 1e3:.1f} ms per step (first to last op)"]
    for name, busy in sorted(self.thread_busy_us.items(), key=lambda kv: -kv[1]):
      lines.append(
        f"  thread {name:28s} busy {busy / s / 1e3:8.1f} ms/step "
        f"({busy / self.span_us:5.1%} of the span)"
      )
    if self.concurrency_us:
      lines.append(
        "  threads inside a leaf op: "
        + ", ".join(
          f"{k}: {v / s / 1e3:.1f} ms/step ({v / self.span_us:.0%})"
          for k, v in sorted(self.concurrency_us.items())
        )
      )
    lines.append(f"op kind (exclusive time, all threads: {total / s / 1e3:.1f} ms/step)")
    for k, v in sorted(self.kind_us.items(), key=lambda kv: -kv[1])[:top]:
      lines.append(
        f"  {v / s / 1e3:8.1f} ms/step {v / total:6.1%} {self.kind_count[k] / s:8.0f} per step  {k}"
      )
    lines.append("instructions")
    for k, v in sorted(self.op_us.items(), key=lambda kv: -kv[1])[:top]:
      lines.append(f"  {v / s / 1e3:8.2f} ms/step {self.op_count[k] / s:8.0f} per step  {k}")
    return "\n".join(lines)


def op_kind(name: str) -> str:
  """'bitcast_dynamic-update-slice_fusion.93' -> 'bitcast_dynamic-update-slice_fusion'."""
  return re.sub(r"\.\d+$", "", name)


def summarize(events: list[dict[str, Any]], thread_names: dict[Any, str], steps: int) -> OpSummary:
  """Summarises perfetto 'X' events that carry an 'hlo_op' argument (XLA:CPU thunks)."""
  ops = [e for e in events if e.get("ph") == "X" and "hlo_op" in e.get("args", {})]
  if not ops:
    raise ValueError("the trace holds no XLA:CPU op events (is this a CPU trace of a jit'd call?)")
  by_thread = collections.defaultdict(list)
  for e in ops:
    by_thread[e["tid"]].append(e)
  excl = {}
  busy = {}
  parents = set()  # events with an op nested in them
  for tid, es in by_thread.items():
    es.sort(key=lambda e: (e["ts"], -e["dur"]))
    stack: list[dict] = []
    top_level = 0.0
    for e in es:
      excl[id(e)] = e["dur"]
      while stack and stack[-1]["ts"] + stack[-1]["dur"] <= e["ts"]:
        stack.pop()
      if stack:
        excl[id(stack[-1])] -= e["dur"]
        parents.add(id(stack[-1]))
      else:
        top_level += e["dur"]
      stack.append(e)
    name = thread_names.get(tid, str(tid))
    busy[name] = busy.get(name, 0) + top_level
  kind_us, kind_count = collections.Counter(), collections.Counter()
  op_us, op_count = collections.Counter(), collections.Counter()
  for e in ops:
    kind_us[op_kind(e["name"])] += excl[id(e)]
    kind_count[op_kind(e["name"])] += 1
    op_us[e["name"]] += excl[id(e)]
    op_count[e["name"]] += 1
  t0, t1 = min(e["ts"] for e in ops), max(e["ts"] + e["dur"] for e in ops)
  leaves = [e for e in ops if id(e) not in parents]
  return OpSummary(
    steps,
    t1 - t0,
    busy,
    dict(kind_us),
    dict(kind_count),
    dict(op_us),
    dict(op_count),
    _concurrency(leaves, t0, t1),
  )


def _concurrency(leaves: list[dict], t0: float, t1: float) -> dict[int, float]:
  """Time over [t0, t1] with k threads inside a leaf event, k -> time (a sweep over the
  events' starts and ends; one thread's leaves never overlap)."""
  points = sorted(
    [(e["ts"], 1, e["tid"]) for e in leaves] + [(e["ts"] + e["dur"], -1, e["tid"]) for e in leaves],
    key=lambda p: (p[0], p[1]),  # ends before starts at the same instant
  )
  out: collections.Counter = collections.Counter()
  running: collections.Counter = collections.Counter()
  last = t0
  for t, d, tid in points:
    out[sum(1 for v in running.values() if v > 0)] += t - last
    running[tid] += d
    last = t
  out[0] += t1 - last
  return {k: v for k, v in out.items() if v > 0}


def read_perfetto(path: str) -> tuple[list[dict], dict[Any, str]]:
  """Events and thread names of a `perfetto_trace.json.gz`."""
  with gzip.open(path) as f:
    data = json.load(f)
  events = data["traceEvents"] if isinstance(data, dict) else data
  names = {
    e["tid"]: e["args"]["name"]
    for e in events
    if e.get("ph") == "M" and e.get("name") == "thread_name"
  }
  # thread names carry a numeric id suffix ('tf_XLAEigen/-547...'); keep them distinct but short
  names = {
    tid: n if "/" not in n else f"{n.split('/')[0]}/{i}" for i, (tid, n) in enumerate(names.items())
  }
  return events, names


def trace_ops(
  fn: Callable[..., Any], *args, steps: int = 3, logdir: str | None = None, carry: bool = False
) -> OpSummary:
  """Runs `fn(*args)` `steps` times under the profiler (after one untraced warm-up call).

  With `carry=True`, each call's output replaces the arguments (a training step
  `state, batch -> (state, ...)`: its first output becomes the next call's first argument).
  """
  args = list(args)

  def call():
    out = fn(*args)
    if carry:
      args[0] = out[0]
    return out

  jax.block_until_ready(call())
  logdir = logdir or tempfile.mkdtemp(prefix="alala_profile_")
  with jax.profiler.trace(logdir, create_perfetto_trace=True):
    for _ in range(steps):
      out = call()
    jax.block_until_ready(out)
  paths = sorted(
    glob.glob(os.path.join(logdir, "**", "perfetto_trace.json.gz"), recursive=True),
    key=os.path.getmtime,
  )
  if not paths:
    raise FileNotFoundError(f"jax.profiler wrote no perfetto_trace.json.gz under {logdir}")
  events, names = read_perfetto(paths[-1])
  return summarize(events, names, steps)
