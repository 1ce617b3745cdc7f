"""Counting a function's matmul FLOPs from its jaxpr.

XLA's `cost_analysis()` counts a while-loop body ONCE, whatever its trip count (measured: a
10-step `lax.scan` of a 256^3 matmul reports the FLOPs of one matmul), so it undercounts every
recurrent model. `matmul_flops` walks the jaxpr instead: a `dot_general` costs
2 x (batch x free x contracting) sizes, a `scan` multiplies its body by its length, and nested
calls (jit, custom_jvp/vjp, remat, cond branches: the max) are followed. Elementwise work is
not counted: MFU is reported against the matmul peak.

Dead code is removed first, as XLA does before anything runs: a value traced but never used,
such as the string scans of the record VAE's statistics pass (`RecordVAE.observe` runs the whole
encoder for the whitening statistics; only the ScalarTuple's part reaches an output), would
otherwise count FLOPs that never execute.
"""

from __future__ import annotations

import math

import jax
from jax.extend import core as jex_core


def _dot_flops(eqn) -> int:
  (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
  lhs, rhs = (v.aval.shape for v in eqn.invars)
  contract = math.prod(lhs[d] for d in lc)
  batch = math.prod(lhs[d] for d in lb)
  lfree = math.prod(s for d, s in enumerate(lhs) if d not in lc and d not in lb)
  rfree = math.prod(s for d, s in enumerate(rhs) if d not in rc and d not in rb)
  return 2 * batch * lfree * rfree * contract


def _sub_jaxprs(eqn):
  for v in eqn.params.values():
    if isinstance(v, (jex_core.ClosedJaxpr, jex_core.Jaxpr)):
      yield v
    elif isinstance(v, (tuple, list)):
      for x in v:
        if isinstance(x, (jex_core.ClosedJaxpr, jex_core.Jaxpr)):
          yield x


def _count(jaxpr) -> int:
  jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
  total = 0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == "dot_general":
      total += _dot_flops(eqn)
    elif name == "scan":
      total += eqn.params["length"] * _count(eqn.params["jaxpr"])
    elif name == "cond":
      total += max(_count(b) for b in eqn.params["branches"])
    elif name == "while":
      raise ValueError("while loops have no static trip count; use lax.scan")
    else:
      total += sum(_count(j) for j in _sub_jaxprs(eqn))
  return total


def live_jaxpr(closed) -> jex_core.Jaxpr:
  """The jaxpr of `closed` without the equations no output depends on (jax's own DCE, which
  follows jit, scan, cond and remat bodies)."""
  from jax._src.interpreters import partial_eval as pe  # no public DCE in jax.extend yet

  jaxpr, _ = pe.dce_jaxpr(closed.jaxpr, [True] * len(closed.jaxpr.outvars))
  return jaxpr


def matmul_flops(fn, *args, dce: bool = True, **kwargs) -> int:
  """Matmul FLOPs of one call of `fn(*args, **kwargs)` (traced, not run); with `dce` only the
  work some output depends on (module doc)."""
  closed = jax.make_jaxpr(fn, **kwargs)(*args)
  return _count(live_jaxpr(closed) if dce else closed)
