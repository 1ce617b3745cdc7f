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
  span = max(e["ts"] + e["dur"] for e in ops) - min(e["ts"] for e in ops)
  return OpSummary(steps, span, busy, dict(kind_us), dict(kind_count), dict(op_us), dict(op_count))


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
