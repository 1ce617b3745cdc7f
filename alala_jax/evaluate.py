"""End-of-run evaluation: every generation-quality metric of paper 000 for one TrainState.

* zip-coordinate p-value mean / median / std of `num_generated` generated records (Sec 2.2);
* d_Lev: Levenshtein per character between `lev_field` of `num_reconstructed` random training
  records and its reconstruction g(mu(x)) (Sec 2.4), and per-field exact reconstruction rates;
* train / test / generated loss and BPC (Sec 4), over `loss_batches` batches each;
* share of generated `lev_field` values present in the training data (App E) and the exact-copy
  rate of generated records (string fields) vs the training set, next to the data's own rate of
  duplicate records (DESIGN §7).

With `config.data.format = 'text'` (App F) the records are comma-separated lines: the p-value
is computed on the lines parsed back into records, a malformed line scores p = 0, and
`malformed_rate` / `malformed_count` report how many were malformed.
"""

from __future__ import annotations

import collections
from typing import Any

import jax
import numpy as np

from alala_jax.data import batching, datasets, text_format
from alala_jax.generate import generate_records, reconstruct_records, string_key
from alala_jax.metrics import pvalue, text
from alala_jax.train.state import Salt


def mean_losses(fn, batches) -> dict[str, float]:
  acc = collections.defaultdict(list)
  for i, b in enumerate(batches):
    for k, v in jax.device_get(fn(b, i)).items():
      acc[k].append(float(v))
  return {k: float(np.mean(v)) for k, v in acc.items()}


def loss_report(
  task, state, train_arrays, test_arrays, batch_size: int, n_batches: int, seed: int
) -> dict[str, float]:
  """Train, test and generated loss/BPC under the current schedules (means over batches)."""
  out = {}
  for name, arrays in (("train", train_arrays), ("test", test_arrays)):
    bs = batching.eval_batches(arrays, batch_size, n_batches, seed)
    for k, v in mean_losses(lambda b, i: task.eval_loss(state, b, Salt.EVAL_LOSS + i), bs).items():
      out[f"{name}/{k}"] = v
  gen = mean_losses(
    lambda _, i: task.generated_loss(state, Salt.GENERATED_LOSS + 2 * i, batch_size),
    range(n_batches),
  )
  out.update({f"generated/{k}": v for k, v in gen.items()})
  return out


def evaluate(
  task, state, train_records, test_records, train_arrays, test_arrays, config
) -> dict[str, Any]:
  ec = config.eval
  root = task.root
  key = jax.random.key(config.seed + 7)
  res: dict[str, Any] = {"step": int(state.step)}
  res.update(
    loss_report(
      task, state, train_arrays, test_arrays, config.train.batch_size, ec.loss_batches, config.seed
    )
  )
  gen = generate_records(
    task, state, ec.num_generated, jax.random.fold_in(key, 1), ec.chunk, ec.greedy
  )
  if ec.zip_field:
    res.update(pvalue_report(train_records, gen, config))
  rng = np.random.default_rng(config.seed + 11)
  idx = rng.choice(len(train_records), min(ec.num_reconstructed, len(train_records)), replace=False)
  originals = [train_records[i] for i in idx]
  recons, _ = reconstruct_records(
    task, state, originals, jax.random.fold_in(key, 2), ec.chunk, ec.greedy
  )
  for c in root.children:
    if hasattr(originals[0], c.key) and isinstance(getattr(originals[0], c.key), str):
      res[f"recon_acc/{c.key}"] = float(
        np.mean([getattr(o, c.key) == getattr(r, c.key) for o, r in zip(originals, recons)])
      )
  if ec.lev_field:
    res["lev_field"] = ec.lev_field
    res["d_lev"] = text.levenshtein_per_char(
      [getattr(o, ec.lev_field) for o in originals], [getattr(r, ec.lev_field) for r in recons]
    )
    train_values = {getattr(r, ec.lev_field) for r in train_records}
    res[f"generated_{ec.lev_field}_in_train"] = float(
      np.mean([getattr(g, ec.lev_field) in train_values for g in gen])
    )
  train_keys = [string_key(r, root) for r in train_records]
  key_set = set(train_keys)
  res["exact_copy_rate"] = text.exact_copy_rate([string_key(g, root) for g in gen], key_set)
  res["train_duplicate_rate"] = 1.0 - len(key_set) / len(train_keys)
  return res


def pvalue_report(train_records, gen, config) -> dict[str, float]:
  """Zip-coordinate p-value stats of generated records; text lines are parsed first and a
  malformed line scores 0 (App F)."""
  ec = config.eval
  fmt = text_format.from_config(config.data, datasets.import_schema(config.data.schema))
  out = {}
  if fmt is not None:
    train_records = [fmt.parse(r) for r in train_records]
    gen = [fmt.parse(g) for g in gen]
    malformed = sum(g is None for g in gen)
    out.update(malformed_count=float(malformed), malformed_rate=malformed / max(len(gen), 1))
  ok = [g for g in gen if g is not None]
  lat, lon = [f.strip() for f in ec.coord_fields.split(",")]
  coords = lambda rs: np.array([[getattr(r, lat), getattr(r, lon)] for r in rs]).reshape(-1, 2)
  zs = pvalue.fit_zip_stats(
    [getattr(r, ec.zip_field) for r in train_records], coords(train_records)
  )
  p = np.zeros(len(gen))
  if ok:
    p[[i for i, g in enumerate(gen) if g is not None]] = pvalue.zip_pvalues(
      zs, [getattr(r, ec.zip_field) for r in ok], coords(ok)
    )
  out.update({f"pvalue/{k}": v for k, v in pvalue.summarize(p).items()})
  out["pvalue/zip_unseen"] = float(
    np.mean([g is not None and getattr(g, ec.zip_field) not in zs.index for g in gen])
  )
  return out


def format_summary(res: dict[str, Any]) -> str:
  """The human-readable end-of-run report."""
  lines = [f"evaluation at step {res['step']}"]
  if "pvalue/mean" in res:
    lines.append(
      f"  zip-coordinate p-value: mean {res['pvalue/mean']:.4f}  median "
      f"{res['pvalue/median']:.4f}  std {res['pvalue/std']:.4f}   (ideal 0.5 / 0.5 / "
      f"0.289; zip unseen in training: {res['pvalue/zip_unseen']:.2%})"
    )
  if "malformed_rate" in res:
    lines.append(
      f"  malformed generated lines (p = 0): {res['malformed_count']:.0f} "
      f"({res['malformed_rate']:.2%})"
    )
  if "d_lev" in res:
    lines.append(
      f"  d_Lev per character ({res.get('lev_field', 'street')} reconstructions): "
      f"{res['d_lev']:.4f}"
    )
  lines.append(
    "  loss   train {:.4f}  test {:.4f}  generated {:.4f}".format(
      res["train/loss"], res["test/loss"], res["generated/loss"]
    )
  )
  lines.append(
    "  BPC    train {:.4f}  test {:.4f}  generated {:.4f}".format(
      res["train/bpc"], res["test/bpc"], res["generated/bpc"]
    )
  )
  accs = {k.split("/", 1)[1]: v for k, v in res.items() if k.startswith("recon_acc/")}
  if accs:
    lines.append(
      "  exact reconstruction rate: " + ", ".join(f"{k} {v:.3f}" for k, v in accs.items())
    )
  lines.append(
    f"  exact-copy rate of generated records {res['exact_copy_rate']:.4f} (training "
    f"data's own duplicate rate {res['train_duplicate_rate']:.4f})"
  )
  return "\n".join(lines)
