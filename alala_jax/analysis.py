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


COORD_STAGES = (
  "ScalarTuple decoder on its encoder's embedding",
  "g(mu(x)), Tuple inputs teacher-forced",
  "g(mu(x))",
  "g(z), z ~ q(z|x)",
  "linear readout of mu(x)",
)


def coordinate_precision(
  task, state, train_arrays, test_arrays, key: jax.Array, rows: int = 2000, ridge: float = 1e-3
) -> dict[str, Any]:
  """Where the record VAE's float fields lose precision on the way through g(mu(x)).

  The floats travel x -> whitening -> ScalarTuple encoder -> Tuple encoder -> mu(x) -> Tuple
  decoder (emits e_k per field in schema order) -> ScalarTuple decoder -> x. For the first
  `rows` training and test rows, per stage of `COORD_STAGES`: the whitened squared error summed
  over the float fields (the data's variance is k) and the km error per row:

  * the ScalarTuple decoder applied to the ScalarTuple encoder's own embedding (it is trained on
    the Tuple decoder's emitted e_k, which the skew loss only pulls toward that embedding);
  * mu(x) decoded with the Tuple decoder fed the children's encoder embeddings (p_tuple = 1),
    so the fields before the floats in the Tuple's order cannot hurt;
  * mu(x) decoded as generation decodes (p_tuple = 0);
  * z ~ q(z|x) decoded so: the posterior's noise, what training and the aggregate prior see;
  * a ridge readout from mu(x) to the whitened floats fitted on the training rows.

  Returns {'fields': names, 'position': the floats' place in the Tuple order (1-based),
  'order': the Tuple's child keys, 'rows': rows, 'whitened_train_mean' / 'whitened_train_cov':
  the moments of the whitened training rows ((0, I) when the whitening's moving statistics fit
  the data), (stage, split): {'sq': [rows], 'km': [rows]}}.
  """
  from alala_jax import schema as sc
  from alala_jax.metrics import coords
  from alala_jax.nn import tree, vae

  root, module = task.root, task.model.module
  variables = task.variables(state)
  found = [k for k, c in enumerate(root.children) if isinstance(c, sc.FloatsNode)]
  if not found:
    raise ValueError("the record schema has no float fields")
  k = found[0]
  node = root.children[k]
  st = lambda m: m.body.kids[k].st  # the ScalarTuple

  @jax.jit
  def stages(x, key):
    target = x[node.key]
    mu, sigma, enc = module.apply(variables, x, method=vae.RecordVAE.posterior)
    xw = module.apply(variables, method=lambda m: st(m).whiten(target))
    out = {}
    loss, _, pred = module.apply(
      variables, method=lambda m: st(m).decode(enc["children"][k]["emb"], target)
    )
    out[COORD_STAGES[0]] = (loss, pred)
    z_q = mu + sigma * jax.random.normal(jax.random.fold_in(key, 1), mu.shape)
    for name, z, p_tuple in zip(COORD_STAGES[1:4], (mu, mu, z_q), (1.0, 0.0, 0.0)):
      dec = module.apply(
        variables,
        z,
        x,
        enc,
        p_tuple,
        1.0,
        method=vae.RecordVAE.decode,
        rngs={"sample": jax.random.fold_in(key, 2)},
      )
      out[name] = (dec.fields[tree.floats_name(node)], dec.sample[node.key])
    return mu, xw, out

  res: dict[str, Any] = {
    "fields": node.names,
    "position": k + 1,
    "order": [c.key for c in root.children],
  }
  got = {}
  for split, arrays in (("train", train_arrays), ("test", test_arrays)):
    x = jax.tree.map(lambda a: a[:rows], arrays)
    got[split] = jax.device_get(stages(x, key)) + (np.asarray(x[node.key]),)
  res["rows"] = len(got["train"][3])
  # the whitening's moving statistics against the rows themselves: (0, I) if they match
  xw_train = np.asarray(got["train"][1], np.float64)
  res["whitened_train_mean"] = xw_train.mean(0)
  res["whitened_train_cov"] = np.cov(xw_train, rowvar=False)
  w, b = coords.ridge_fit(got["train"][0], got["train"][1], ridge)
  for split, (mu, xw, out, target) in got.items():
    pred_w = np.asarray(mu, np.float64) @ w + b
    pred = module.apply(
      variables, method=lambda m: st(m).unwhiten(jnp.asarray(pred_w, jnp.float32))
    )
    out = {**out, COORD_STAGES[4]: (np.sum((pred_w - xw) ** 2, -1), np.asarray(pred))}
    for name, (sq, p) in out.items():
      res[(name, split)] = {
        "sq": np.asarray(sq),
        "km": coords.km_error(np.asarray(p), target, node.names),
      }
  return res
