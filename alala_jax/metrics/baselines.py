"""Model-free reference points for the p-value metric.

`independent_fields` samples every top-level field of a flat record independently from its
empirical marginal in the training data (the float fields jointly, as one (lat, long) pair), so
it keeps each field's distribution and breaks every correlation between fields. A model must
beat it clearly to claim it learned the zip-coordinate correlation.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from alala_jax import schema as sc


def independent_fields(records: Sequence[Any], n: int, seed: int = 0) -> list[Any]:
  cls = type(records[0])
  root = sc.parse_schema(cls)
  rng = np.random.default_rng(seed)
  cols: dict[str, list[Any]] = {}
  for c in root.children:
    idx = rng.integers(len(records), size=n)
    names = c.names if isinstance(c, sc.FloatsNode) else (c.key,)
    for name in names:  # floats of one ScalarTuple share the same source rows
      cols[name] = [getattr(records[i], name) for i in idx]
  names = [f.name for f in dataclasses.fields(cls)]
  return [cls(**{k: cols[k][i] for k in names}) for i in range(n)]
