"""Sampling records from a trained model and reconstructing records g(mu(x)).

Generation samples z ~ N(moving mean, moving cov) of the sampled training latents and decodes
by sampling from the decoder (paper 000 Sec 2.1/2.4); greedy argmax decoding is an option.
Work is done in fixed-size chunks so each program compiles once.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax

from alala_jax import schema as sc
from alala_jax.data import codec


def generate_records(
  task,
  state,
  n: int,
  key: jax.Array,
  chunk: int = 1000,
  greedy: bool = False,
  as_dict: bool = False,
) -> list[Any]:
  """Generates n records (dataclass instances, or dicts if `as_dict`)."""
  out: list[Any] = []
  i = 0
  while len(out) < n:
    arrays = task.generate(task.variables(state), jax.random.fold_in(key, i), chunk, greedy)
    out.extend(codec.decode(task.root, task.spec, jax.device_get(arrays), as_dict))
    i += 1
  return out[:n]


def reconstruct_records(
  task, state, records: Sequence[Any], key: jax.Array, chunk: int = 1000, greedy: bool = False
) -> tuple[list[Any], codec.EncodeReport]:
  """g(mu(x)) for each record: encode to the posterior mean, decode (sampling by default)."""
  out: list[Any] = []
  report = codec.EncodeReport()
  for i in range(0, len(records), chunk):
    part = list(records[i : i + chunk])
    pad = chunk - len(part)
    arrays, rep = codec.encode(task.root, task.spec, part + [part[-1]] * pad)
    report = report.merge(rep)
    rec = task.reconstruct(task.variables(state), jax.random.fold_in(key, i), arrays, greedy)
    out.extend(codec.decode(task.root, task.spec, jax.device_get(rec))[: len(part)])
  return out, report


def string_key(record: Any, root) -> tuple:
  """A record's string fields as a tuple (exact-copy comparisons ignore continuous floats)."""
  return tuple(
    repr(getattr(record, c.key)) for c in root.children if not isinstance(c, sc.FloatsNode)
  )
