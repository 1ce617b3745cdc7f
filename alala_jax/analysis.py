"""The analyses of paper 000 App D-E on a trained model.

* `repeated_encode_decode`: x^(0) = records, x^(n) = g(mu(x^(n-1))) for n = 1..rounds (App E,
  Figs 12-17: run on 10,000 generated and 10,000 training records);
* `round_stats`: per round, the zip-coordinate p-values and the share of `lev_field` values
  (street names) present in the training data;
* `interpolate`: records decoded along the straight line between the posterior means of two
  records (App D, Figs 9-11), with their latents.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from alala_jax.data import codec
from alala_jax.generate import reconstruct_records
from alala_jax.metrics import pvalue


def repeated_encode_decode(
  task,
  state,
  records: Sequence[Any],
  rounds: int,
  key: jax.Array,
  chunk: int = 1000,
  greedy: bool = False,
) -> list[list[Any]]:
  """[x^(0), ..., x^(rounds)]: each round reconstructs the previous one, g(mu(x))."""
  out = [list(records)]
  for n in range(1, rounds + 1):
    recs, _ = reconstruct_records(task, state, out[-1], jax.random.fold_in(key, n), chunk, greedy)
    out.append(recs)
  return out


def round_stats(
  rounds: list[list[Any]],
  train_records: Sequence[Any],
  zip_field: str,
  coord_fields: tuple[str, str],
  lev_field: str | None,
) -> list[dict]:
  """Per round: p-values [N] and summary, and the share of `lev_field` values seen in
  training."""
  lat, lon = coord_fields
  coords = lambda rs: np.array([[getattr(r, lat), getattr(r, lon)] for r in rs])
  zs = pvalue.fit_zip_stats([getattr(r, zip_field) for r in train_records], coords(train_records))
  seen = {getattr(r, lev_field) for r in train_records} if lev_field else set()
  stats = []
  for recs in rounds:
    p = pvalue.zip_pvalues(zs, [getattr(r, zip_field) for r in recs], coords(recs))
    row = {"pvalues": p, **pvalue.summarize(p)}
    if lev_field:
      row["in_train"] = float(np.mean([getattr(r, lev_field) in seen for r in recs]))
    stats.append(row)
  return stats


def interpolate(
  task, state, a: Any, b: Any, steps: int, key: jax.Array, greedy: bool = False
) -> tuple[list[Any], np.ndarray]:
  """Decodes z_t = (1 - t) mu(a) + t mu(b) for `steps` values of t in [0, 1].

  Returns:
    (records [steps], latents [steps, D]).
  """
  arrays, _ = codec.encode(task.root, task.spec, [a, b])
  mu = task.encode_mean(task.variables(state), arrays)
  t = jnp.linspace(0.0, 1.0, steps)[:, None]
  z = (1.0 - t) * mu[0] + t * mu[1]
  dec = task.decode_latents(task.variables(state), z, key, greedy)
  return codec.decode(task.root, task.spec, jax.device_get(dec)), np.asarray(z)
