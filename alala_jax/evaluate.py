"""End-of-run evaluation: every generation-quality metric of paper 000 for one TrainState.

* zip-coordinate p-value mean / median / std of `num_generated` generated records (Sec 2.2);
* d_Lev: Levenshtein per character between `lev_field` of `num_reconstructed` random training
  records and its reconstruction g(mu(x)) (Sec 2.4), and per-field exact reconstruction rates;
* train / test / generated loss and BPC (Sec 4), over `loss_batches` batches each;
* share of generated `lev_field` values present in the training data (App E) and the exact-copy
  rate of generated records (string fields) vs the training set, next to the data's own rate of
  duplicate records (DESIGN §7).
* the privacy audit (`eval.privacy_records` > 0): distance to the closest training record and
  membership-inference AUC with the test records as held-out baseline, and the repeated
  encode/decode extraction rate of App E (`extraction_audit`).

With `config.data.format = 'text'` (App F) the records are comma-separated lines: the p-value
is computed on the lines parsed back into records, a malformed line scores p = 0, and
`malformed_rate` / `malformed_count` report how many were malformed.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

import jax
import numpy as np

from alala_jax import analysis, latent_priors
from alala_jax.data import batching, datasets, text_format
from alala_jax.generate import generate_records, reconstruct_records, string_key
from alala_jax.metrics import privacy, pvalue, realism, text
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
  task, state, train_records, test_records, train_arrays, test_arrays, config, priors=None
) -> dict[str, Any]:
  """Every metric of the module docstring for one state; `priors` = the result of
  `fit_generation_priors` (fitted here when None)."""
  ec = config.eval
  root = task.root
  key = jax.random.key(config.seed + 7)
  res: dict[str, Any] = {"step": int(state.step)}
  res.update(
    loss_report(
      task, state, train_arrays, test_arrays, config.train.batch_size, ec.loss_batches, config.seed
    )
  )
  kinds = latent_priors.parse_kinds(ec.generation_prior)
  res["zip_field"] = ec.zip_field
  if priors is None:
    priors = fit_generation_priors(task, state, train_arrays, config)
  priors, fit = priors
  res["generation_prior"] = kinds[0]
  res["prior_temperature"] = ec.prior_temperature
  if fit is not None:
    res.update({f"prior_heldout_log_prob/{k}": v for k, v in fit.heldout_log_prob.items()})
    res.update({f"gmm_heldout_log_prob/{k}": v for k, v in fit.gmm_scores.items()})
    res["prior_fit_records"], res["prior_heldout_records"] = fit.num_fit, fit.num_heldout
    if "gmm" in priors:
      res["gmm_components"] = priors["gmm"].num_components
  train_keys = [string_key(r, root) for r in train_records]
  key_set = set(train_keys)
  res["train_duplicate_rate"] = 1.0 - len(key_set) / len(train_keys)
  for j, kind in enumerate(kinds):
    gen = generate_records(
      task,
      state,
      ec.num_generated,
      jax.random.fold_in(key, 1),
      ec.chunk,
      ec.greedy,
      prior=priors.get(kind),
      temperature=ec.prior_temperature,
    )
    part = generation_report(root, train_records, gen, key_set, config)
    if ec.privacy_records:
      part.update(dcr_audit(train_records, test_records, gen, config))
      if j == 0:  # the headline prior's records only: each round is a reconstruction pass
        part.update(
          extraction_audit(
            task, state, train_records, test_records, gen, config, jax.random.fold_in(key, 5)
          )
        )
    res.update(part if j == 0 else {f"prior/{kind}/{k}": v for k, v in part.items()})
  if ec.privacy_records:
    res.update(membership_auc(task, state, train_arrays, test_arrays, config))
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
  return res


def fit_generation_priors(task, state, train_arrays, config):
  """The generation priors of `config.eval.generation_prior`, fitted on the final model.

  'tracked' maps to None (the model's own generation path, bit-identical to runs before the
  fitted priors existed). The others are fitted to q(z | x) of `eval.prior_records` random
  training records, `eval.prior_heldout` of which are held out to score every prior and to
  choose the mixture's size; with `eval.prior_refined`, to the refined posteriors q_K of the
  refinement at evaluation, in batches of `train.batch_size` (in SVI's 'reference' mode a
  row's step is lr / B times its gradient: B as in training refines as training did; the last
  batch's padding rows, copies of its first, enter its joint gradient clip).

  Returns:
    ({kind: prior or None}, latent_priors.FitReport or None when only 'tracked' is asked for).
  """
  ec = config.eval
  kinds = latent_priors.parse_kinds(ec.generation_prior)
  if kinds == ("tracked",):
    return {"tracked": None}, None
  variables = task.variables(state)
  n = batching.num_rows(train_arrays)
  m = min(ec.prior_records or n, n)
  idx = np.random.default_rng([config.seed, 13]).choice(n, m, replace=False)
  n_held = int(round(m * ec.prior_heldout))
  if n_held < 1 or n_held >= m:
    raise ValueError(
      f"eval.prior_heldout={ec.prior_heldout} of eval.prior_records={m} training records "
      "leaves no fitting or no held-out records"
    )
  k_enc, k_fit = jax.random.split(jax.random.fold_in(jax.random.key(config.seed + 7), 3))
  refined = bool(ec.get("prior_refined", False))
  if refined and not task.refines_at_eval:
    raise ValueError(
      "eval.prior_refined needs SVI at evaluation (refine.name='svi', refine.at_eval=True)"
    )
  step = int(state.step) if refined else 0  # SVI's objective decodes as the model at its step
  post = latent_priors.encode_posteriors(
    lambda b: task.encode_posterior(variables, b, refined=refined, step=step),
    batching.take(train_arrays, idx),
    config.train.batch_size if refined else ec.chunk,
    k_enc,
  )
  split = lambda a, s: type(a)(*(x[s] for x in a))
  mean, cov = task.prior_moments(variables)
  priors, report = latent_priors.fit_priors(
    kinds,
    split(post, slice(n_held, None)),
    split(post, slice(0, n_held)),
    k_fit,
    tracked=latent_priors.gaussian(mean, cov),
    components=[int(c) for c in str(ec.gmm_components).split(",") if c.strip()],
    iters=ec.gmm_iters,
    fit_on=ec.prior_fit_on,
  )
  priors["tracked"] = None
  return priors, report


def generation_report(root, train_records, gen, train_key_set, config) -> dict[str, float]:
  """Every number about a set of generated records: the zip-coordinate p-value, the realism
  checks (blank zips, KS against U(0, 1), values and pairs seen in training), the exact-copy
  rate and the share of `lev_field` values seen in training. Text-format lines (App F) are
  parsed first; malformed ones score p = 0 and are left out of the realism checks."""
  ec = config.eval
  out: dict[str, float] = {}
  if ec.zip_field:
    p, parsed_train, parsed_gen, extra = pvalues(train_records, gen, config)
    out.update(extra)
    ok = [i for i, g in enumerate(parsed_gen) if g is not None]
    pairs = tuple(f.strip() for f in ec.pair_fields.split(",") if f.strip())
    out.update(
      realism.realism_report([parsed_gen[i] for i in ok], parsed_train, ec.zip_field, p[ok], pairs)
    )
  if ec.lev_field:
    train_values = {getattr(r, ec.lev_field) for r in train_records}
    out[f"generated_{ec.lev_field}_in_train"] = float(
      np.mean([getattr(g, ec.lev_field) in train_values for g in gen])
    )
  out["exact_copy_rate"] = text.exact_copy_rate([string_key(g, root) for g in gen], train_key_set)
  return out


def _field_kinds(*record_lists) -> tuple[list[str], list[str]]:
  """(string fields, finite float fields) of dataclass records: the top-level fields whose
  value has that type in every record given (Optional, nested and list fields are left out)."""
  records = [r for rs in record_lists for r in rs]
  fields = [f.name for f in dataclasses.fields(records[0])]
  is_float = lambda v: isinstance(v, float) and np.isfinite(v)
  return (
    [f for f in fields if all(isinstance(getattr(r, f), str) for r in records)],
    [f for f in fields if all(is_float(getattr(r, f)) for r in records)],
  )


def dcr_audit(train_records, test_records, gen, config) -> dict[str, float]:
  """Distance-to-closest-record audit (`metrics.privacy.dcr_report`) of up to
  `eval.privacy_records` generated records against the training records, the test records
  serving as the held-out baseline. Comma-separated text lines (App F) are compared as the one
  string they are."""
  if not dataclasses.is_dataclass(train_records[0]):
    strings, floats = ["line"], []
    wrap = lambda rs: [{"line": r} for r in rs]
  else:
    strings, floats = _field_kinds(train_records, test_records, gen)
    wrap = lambda rs: rs
  return privacy.dcr_report(
    wrap(gen),
    wrap(train_records),
    wrap(test_records),
    strings,
    floats,
    max_records=config.eval.privacy_records,
    seed=config.seed,
  )


def _parse_for_fields(records, config) -> list[Any]:
  """Records as records of the schema: text lines (App F) parsed (None for a malformed one),
  other records as they are."""
  if not records or not isinstance(records[0], text_format.CsvText):
    return list(records)
  fmt = text_format.from_config(config.data, datasets.import_schema(config.data.schema))
  return [fmt.parse(r) for r in records]


def field_values(records, field: str, config) -> list[Any]:
  """The value of `field` in each record, or for a comma list of fields ('number,street') the
  tuple of their values; text lines (App F) parsed first, None for a malformed one."""
  names = [f.strip() for f in field.split(",")]

  def get(r):
    return getattr(r, names[0]) if len(names) == 1 else tuple(getattr(r, f) for f in names)

  return [None if r is None else get(r) for r in _parse_for_fields(records, config)]


def extraction_field(config, train_records) -> str | None:
  """The field of the extraction audit: `eval.extraction_field` (a string field, or a comma list
  of them whose values are compared as tuples, e.g. 'number,street' for whole addresses), or for
  'auto' `eval.lev_field` when it is a string field of the (parsed) training records, else their
  string field with the most distinct values; None when it is '' or no string field has two
  distinct values. ValueError for a named field that is not a string field of the records."""
  want = config.eval.get("extraction_field", "auto")
  if not want:
    return None
  parsed = [r for r in _parse_for_fields(train_records, config) if r is not None]
  if not parsed:
    return None
  strings, _ = _field_kinds(parsed)
  if want != "auto":
    names = [f.strip() for f in want.split(",")]
    bad = [f for f in names if f not in strings]
    if bad:
      raise ValueError(
        f"eval.extraction_field={want!r}: {bad} not string fields of the records; string "
        f"fields: {strings}"
      )
    return ",".join(names)
  lev = config.eval.get("lev_field", "")
  if lev and lev in strings:
    return lev
  distinct = {f: len({getattr(r, f) for r in parsed}) for f in strings}
  best = max(strings, key=lambda f: distinct[f], default=None)  # the first one on ties
  return best if best is not None and distinct[best] > 1 else None


def extraction_audit(
  task, state, train_records, test_records, gen, config, key: jax.Array
) -> dict[str, Any]:
  """The repeated encode/decode extraction rate of paper 000 App E
  (`metrics.privacy.extraction_rates`): the first `eval.privacy_records` records of `gen` (drawn
  independently, so a random sample of them) go
  through `eval.extraction_rounds` rounds of x -> g(mu(x)) (`analysis.repeated_encode_decode`,
  decoding as `eval.greedy`), and each round's values of `extraction_field` are compared with the
  rare values of the training records and, as the baseline, of the test records
  (`eval.extraction_max_count`, seed `config.seed`). Text lines (App F) are parsed for the
  field's values, a malformed line having none. Adds `extraction/field`; {} when the audit is
  off (0 rounds, no field, no generated or no test records)."""
  ec = config.eval
  rounds = int(ec.get("extraction_rounds", 0))
  if rounds < 0:
    raise ValueError(f"eval.extraction_rounds must be >= 0, got {rounds}")
  field = extraction_field(config, train_records) if rounds else None
  n = min(int(ec.privacy_records), len(gen))
  if field is None or not n or not test_records:
    return {}
  seq = analysis.repeated_encode_decode(task, state, gen[:n], rounds, key, ec.chunk, ec.greedy)
  values = lambda rs: field_values(rs, field, config)
  out: dict[str, Any] = privacy.extraction_rates(
    [values(r) for r in seq],
    values(train_records),
    values(test_records),
    max_count=int(ec.get("extraction_max_count", 1)),
    seed=config.seed,
  )
  out["extraction/field"] = field
  return out


def membership_auc(task, state, train_arrays, test_arrays, config) -> dict[str, float]:
  """Membership inference: the AUC with which the one-sample ELBO of a record (teacher-forced
  decoding; `metrics.likelihood.elbo`) tells `eval.privacy_records` random training records from
  as many test records (0.5 = no signal; a model that memorises gives its training records a
  higher ELBO)."""
  n = min(
    config.eval.privacy_records, batching.num_rows(train_arrays), batching.num_rows(test_arrays)
  )
  rng = np.random.default_rng([config.seed, 17])
  variables = task.variables(state)
  key = jax.random.key(config.seed + 19)
  scores = []
  for arrays in (train_arrays, test_arrays):
    idx = rng.choice(batching.num_rows(arrays), n, replace=False)
    out = []
    for i, batch, real in batching.padded_batches(batching.take(arrays, idx), config.eval.chunk):
      out.append(np.asarray(task.elbo(variables, batch, jax.random.fold_in(key, i)))[:real])
    scores.append(np.concatenate(out))
  return {"mia/auc": privacy.auc(scores[0], scores[1]), "mia/records": float(n)}


def pvalues(train_records, gen, config):
  """Zip-coordinate p-values [n] of generated records (Sec 2.2), text lines parsed first (a
  malformed line scores 0, App F).

  Returns:
    (p [n], the training records and the generated records as parsed records (None for a
    malformed line), {'pvalue/mean', ..., 'pvalue/zip_unseen', and for text
    'malformed_count' / 'malformed_rate'}).
  """
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
  return p, train_records, gen, out


def pvalue_report(train_records, gen, config) -> dict[str, float]:
  """The p-value summary of `pvalues` (mean, median, std, zip unseen, malformed lines)."""
  return pvalues(train_records, gen, config)[3]


def format_summary(res: dict[str, Any]) -> str:
  """The human-readable end-of-run report."""
  lines = [f"evaluation at step {res['step']}"]
  prior = res.get("generation_prior", "tracked")
  held = {k.split("/", 1)[1]: v for k, v in res.items() if k.startswith("prior_heldout_log_prob/")}
  lines.append(
    f"  generation prior: {prior}"
    + (f" ({res['gmm_components']} components)" if prior == "gmm" else "")
    + (
      f" at temperature {res.get('prior_temperature', 1.0):g} (tracked always at 1)"
      if prior != "tracked" or len(held) > 1
      else ""
    )
    + (
      "; held-out mean log-density of q-samples under each prior at temperature 1: "
      + ", ".join(f"{k} {v:.2f}" for k, v in held.items())
      + f" ({res['prior_heldout_records']} held-out records)"
      if held
      else ""
    )
  )
  if "pvalue/mean" in res:
    lines.append(
      f"  zip-coordinate p-value: mean {res['pvalue/mean']:.4f}  median "
      f"{res['pvalue/median']:.4f}  std {res['pvalue/std']:.4f}   (ideal 0.5 / 0.5 / "
      f"0.289; zip unseen in training: {res['pvalue/zip_unseen']:.2%})"
    )
  lines.extend(realism.format_realism(res, res.get("zip_field", "zip")))
  lines.extend(privacy.format_privacy(res))
  for other in sorted({k.split("/")[1] for k in res if k.startswith("prior/")}):
    r = {k[len(f"prior/{other}/") :]: v for k, v in res.items() if k.startswith(f"prior/{other}/")}
    if "pvalue/mean" in r:
      lines.append(
        f"  prior {other}: p-value mean {r['pvalue/mean']:.4f}  median {r['pvalue/median']:.4f}"
        f"  KS {r.get('ks_stat', float('nan')):.3f}  blank zips {r.get('blank_share', 0):.2%}"
        f"  exact copies {r['exact_copy_rate']:.4f}"
        + (
          f"  closer to train than held-out {r['dcr/share_closer_to_train']:.3f}"
          if "dcr/share_closer_to_train" in r
          else ""
        )
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
    "  BPC (character-level string fields)    train {:.4f}  test {:.4f}  generated {:.4f}".format(
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
