"""The profile summary: exclusive times of nested op events, thread busy time, real traces."""

import jax
import jax.numpy as jnp
import pytest

from alala_jax import profiling


def _ev(name, tid, ts, dur):
  return {"ph": "X", "name": name, "tid": tid, "ts": ts, "dur": dur, "args": {"hlo_op": name}}


def test_summarize_nested_events_by_hand():
  events = [
    _ev("while.3", 1, 0, 100),  # a loop with two body ops inside it
    _ev("dot.7", 1, 10, 30),
    _ev("fusion.2", 1, 50, 20),
    _ev("copy.1", 1, 120, 10),  # after the loop, top level
    _ev("dot.8", 2, 0, 40),  # another thread
    {"ph": "X", "name": "PjitFunction", "tid": 1, "ts": 0, "dur": 500, "args": {}},  # no op
  ]
  s = profiling.summarize(events, {1: "a", 2: "b"}, steps=2)
  assert s.kind_us == {"while": 50, "dot": 70, "fusion": 20, "copy": 10}
  assert s.kind_count == {"while": 1, "dot": 2, "fusion": 1, "copy": 1}
  assert s.thread_busy_us == {"a": 110, "b": 40}
  assert s.span_us == 130
  assert s.op_us["dot.7"] == 30
  # leaves: dot.7 [10, 40], fusion.2 [50, 70], copy.1 [120, 130] on a; dot.8 [0, 40] on b
  assert s.concurrency_us == {0: 60, 1: 40, 2: 30}
  assert sum(s.concurrency_us.values()) == s.span_us
  assert "ms per step" in s.table()


def test_summarize_rejects_a_trace_without_ops():
  with pytest.raises(ValueError, match="no XLA:CPU op events"):
    profiling.summarize([{"ph": "X", "name": "x", "tid": 1, "ts": 0, "dur": 1}], {}, 1)


def test_op_kind_strips_the_instruction_number():
  assert (
    profiling.op_kind("bitcast_dynamic-update-slice_fusion.93")
    == "bitcast_dynamic-update-slice_fusion"
  )
  assert profiling.op_kind("while") == "while"


def test_trace_of_a_scan_counts_its_body_once_per_iteration(tmp_path):
  length, steps = 6, 2

  @jax.jit
  def f(h, w):
    def body(h, _):
      return jnp.tanh(h @ w), None

    return jax.lax.scan(body, h, None, length=length)[0]

  h, w = jnp.ones((64, 64)), jnp.eye(64) * 0.5
  s = profiling.trace_ops(f, h, w, steps=steps, logdir=str(tmp_path))
  assert s.steps == steps
  assert s.kind_count.get("while") == steps
  # the loop body's ops run length times per call; every op is counted, and busy <= span
  assert any(n == length * steps for k, n in s.kind_count.items() if k != "while"), s.kind_count
  assert all(0 < b <= s.span_us * 1.001 for b in s.thread_busy_us.values())
  assert sum(s.kind_us.values()) == pytest.approx(sum(s.op_us.values()))
  # the concurrency histogram partitions the span; some leaf op ran at some point
  assert sum(s.concurrency_us.values()) == pytest.approx(s.span_us)
  assert sum(v for k, v in s.concurrency_us.items() if k > 0) > 0
