"""Privacy audit of generated records: distance to closest record (DCR) and membership AUC.

Realism metrics (`alala_jax.metrics.realism`) reward generated records that look like training
records; they cannot tell a model that learned the distribution from one that copies its
training set. This module measures the copying directly:

* A distance between records (`record_distance_matrix`): the mean over the chosen fields of a
  per-field distance in [0, 1]. A string field contributes the normalized Levenshtein distance
  (edit distance / max of the two lengths; 0 for two empty strings), a float field contributes
  min(|x - y| / scale, 1), capped so that one far-off coordinate cannot outweigh all the text.
  `float_scales` picks the scale as the field's training standard deviation, so a difference of
  one standard deviation or more counts as fully different. 0 means equal on every field.
* `dcr_report`: the distance from each generated record to its closest training record, next to
  the same distance for held-out real records, which were not trained on and so show how close
  an honest sample of the distribution comes to the training set by chance (protocol in the
  function's docstring).
* `auc`: the ROC AUC of a membership-inference score (e.g. minus the per-record loss) for
  training records against held-out ones; 0.5 means the score carries no membership signal.
* `extraction_rates`: the repeated encode/decode extraction rate of paper 000 App E (generated
  street names drift toward training street names over x^(n) = g(mu(x^(n-1))), "an efficient
  tool to extract rare or unique sequences of the training data", quantification left to future
  work a la Carlini et al. 2018): per round, the share of rare training values of one field the
  generated records reproduce, next to the same share of rare held-out values (protocol in the
  function's docstring).

Records are objects with attributes (the dataclass instances of `alala_jax.data`) or dicts; field
names are validated against the first record of each list. String fields must hold str values and
float fields finite numbers (filter unparsable records out first). Pure numpy/scipy/rapidfuzz
(the C Levenshtein of `rapidfuzz.process.cdist`), no JAX.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Any, Hashable, Mapping, Sequence

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein
from scipy import stats

from alala_jax.metrics.realism import field_names, field_value, has_field

# Rows of the query side per block: a block holds chunk x len(reference) float64 values
# (1024 x 2000 -> 16 MB).
DEFAULT_CHUNK = 1024

# Verdict thresholds of `format_privacy` (see there).
SHARE_CLOSER_MAX = 0.55
P05_RATIO_MIN = 0.8
BELOW_P05_MAX = 0.10
# `format_privacy`'s extraction verdict: one-sided Fisher exact p-value below which rare training
# values count as reproduced more often than rare held-out ones.
EXTRACTION_ALPHA = 0.05


def _check_spec(
  string_fields: Sequence[str], float_fields: Sequence[str], float_scale: Mapping[str, float]
) -> tuple[list[str], list[str]]:
  sf, ff = list(string_fields), list(float_fields)
  if not sf and not ff:
    raise ValueError("need at least one string or float field, got none")
  for f in sf + ff:
    if not isinstance(f, str) or not f:
      raise ValueError(f"field names must be non-empty strings, got {f!r}")
  if len(set(sf + ff)) != len(sf) + len(ff):
    raise ValueError(f"fields must be distinct and not both string and float: {sf} / {ff}")
  for f in ff:
    if f not in float_scale:
      raise ValueError(
        f"float_scale has no entry for float field {f!r}; it has {list(float_scale)}"
      )
    s = float(float_scale[f])
    if not (math.isfinite(s) and s > 0):
      raise ValueError(f"float_scale[{f!r}] must be positive and finite, got {s}")
  return sf, ff


@dataclasses.dataclass(frozen=True)
class _Columns:
  """The field values of `n` records, one column per field."""

  n: int
  strs: dict[str, list[str]]
  floats: dict[str, np.ndarray]


def _columns(records: Sequence[Any], sf: list[str], ff: list[str], name: str) -> _Columns:
  """The field values of `records` as columns, validated: str for string fields, finite floats
  for float fields."""
  for i, r in enumerate(records):
    if r is None:
      raise ValueError(f"{name}[{i}] is None (a malformed text line?); filter it out first")
  if records:
    for f in sf + ff:
      if not has_field(records[0], f):
        raise ValueError(
          f"field {f!r} is not present on the {name} records; available fields: "
          f"{field_names(records[0])}"
        )
  strs = {}
  for f in sf:
    col = [field_value(r, f) for r in records]
    for i, v in enumerate(col):
      if not isinstance(v, str):
        raise ValueError(f"string field {f!r} of {name}[{i}] is {type(v).__name__} {v!r}, not str")
    strs[f] = col
  floats = {}
  for f in ff:
    try:
      col = np.array([float(field_value(r, f)) for r in records], np.float64)
    except (TypeError, ValueError) as e:
      raise ValueError(f"float field {f!r} of the {name} records is not numeric: {e}") from None
    bad = np.flatnonzero(~np.isfinite(col))
    if bad.size:
      raise ValueError(
        f"float field {f!r} of {name} has {bad.size} non-finite values (first at index "
        f"{bad[0]}: {col[bad[0]]}); filter such records out first"
      )
    floats[f] = col
  return _Columns(len(records), strs, floats)


def _block(
  ca: _Columns, cb: _Columns, rows: slice, scale: Mapping[str, float], workers: int
) -> np.ndarray:
  """Distance matrix of the records `rows` of `ca` against all of `cb` (float64)."""
  acc = np.zeros((len(range(ca.n)[rows]), cb.n), np.float64)
  for f, col in ca.strs.items():
    acc += process.cdist(
      col[rows],
      cb.strs[f],
      scorer=Levenshtein.normalized_distance,
      dtype=np.float32,
      workers=workers,
    )
  for f, col in ca.floats.items():
    acc += np.minimum(np.abs(col[rows, None] - cb.floats[f][None, :]) / float(scale[f]), 1.0)
  return acc / (len(ca.strs) + len(ca.floats))


def _check_chunk(chunk: int) -> int:
  if int(chunk) != chunk or chunk < 1:
    raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
  return int(chunk)


def record_distance_matrix(
  a: Sequence[Any],
  b: Sequence[Any],
  string_fields: Sequence[str],
  float_fields: Sequence[str],
  float_scale: Mapping[str, float],
  chunk: int = DEFAULT_CHUNK,
  workers: int = 1,
) -> np.ndarray:
  """Distances between every record of `a` and every record of `b`: float32 [len(a), len(b)].

  Distance = mean over fields of the per-field distance: normalized Levenshtein distance for a
  string field (`rapidfuzz.distance.Levenshtein.normalized_distance`: edit distance divided by
  the longer length, 0 for two empty strings), min(|x - y| / float_scale[field], 1) for a float
  field. In [0, 1]; 0 exactly when all fields are equal. Rows of `a` are computed `chunk` at a
  time (the float64 accumulator of a block is chunk x len(b)); `workers` is rapidfuzz's thread
  count (-1 = all cores).
  """
  sf, ff = _check_spec(string_fields, float_fields, float_scale)
  chunk = _check_chunk(chunk)
  ca, cb = _columns(a, sf, ff, "a"), _columns(b, sf, ff, "b")
  out = np.empty((len(a), len(b)), np.float32)
  if not len(a) or not len(b):
    return out
  for i in range(0, len(a), chunk):
    rows = slice(i, min(i + chunk, len(a)))
    out[rows] = _block(ca, cb, rows, float_scale, workers)
  return out


def float_scales(train: Sequence[Any], float_fields: Sequence[str]) -> dict[str, float]:
  """Per float field, the standard deviation (ddof=0) of its values over `train`: a difference
  of one standard deviation or more counts as fully different in `record_distance_matrix`.

  ValueError if `train` is empty or a standard deviation is 0 or non-finite.
  """
  ff = list(float_fields)
  if not train:
    raise ValueError("float_scales needs training records, got none")
  cols = _columns(train, [], ff, "train").floats
  out = {}
  for f in ff:
    s = float(np.std(cols[f]))
    if not (math.isfinite(s) and s > 0):
      raise ValueError(
        f"float field {f!r} has standard deviation {s} over the training records; need a "
        "positive finite spread to scale it (pass float_scale explicitly)"
      )
    out[f] = s
  return out


def _nearest(
  cq: _Columns, cr: _Columns, scale: Mapping[str, float], chunk: int, workers: int
) -> np.ndarray:
  out = np.empty(cq.n, np.float32)
  for i in range(0, cq.n, chunk):
    rows = slice(i, min(i + chunk, cq.n))
    out[rows] = _block(cq, cr, rows, scale, workers).astype(np.float32).min(axis=1)
  return out


def nearest_distances(
  query: Sequence[Any],
  reference: Sequence[Any],
  string_fields: Sequence[str],
  float_fields: Sequence[str],
  float_scale: Mapping[str, float],
  chunk: int = DEFAULT_CHUNK,
  workers: int = 1,
) -> np.ndarray:
  """Distance of each query record to its closest reference record (DCR): float32 [len(query)],
  equal to `record_distance_matrix(query, reference, ...).min(axis=1)` without holding the whole
  matrix. ValueError if `reference` is empty."""
  sf, ff = _check_spec(string_fields, float_fields, float_scale)
  chunk = _check_chunk(chunk)
  if not reference:
    raise ValueError("nearest_distances needs at least one reference record, got none")
  cq, cr = _columns(query, sf, ff, "query"), _columns(reference, sf, ff, "reference")
  return _nearest(cq, cr, float_scale, chunk, workers)


def _subset(c: _Columns, idx: np.ndarray) -> _Columns:
  return _Columns(
    len(idx),
    {f: [col[int(i)] for i in idx] for f, col in c.strs.items()},
    {f: col[idx] for f, col in c.floats.items()},
  )


def _share_closer(d_train: np.ndarray, d_hold: np.ndarray) -> float:
  return float(np.mean((d_train < d_hold) + 0.5 * (d_train == d_hold)))


def dcr_report(
  generated: Sequence[Any],
  train: Sequence[Any],
  holdout: Sequence[Any],
  string_fields: Sequence[str],
  float_fields: Sequence[str],
  max_records: int = 2000,
  seed: int = 0,
  float_scale: Mapping[str, float] | None = None,
  chunk: int = DEFAULT_CHUNK,
  workers: int = 1,
) -> dict[str, float]:
  """Distance-to-closest-record audit of `generated` against `train`, with a held-out baseline.

  Protocol (all subsets drawn without replacement by `np.random.default_rng(seed)`):

  1. The holdout records are shuffled and split into two disjoint parts: a reference part R_hold
     of n_ref = min(len(train), len(holdout) // 2, max_records) records and a query part H_q
     (the remaining holdout records, at most max_records of them). R_train is a random subset of
     n_ref training records, so both references have the same size and closeness to one is
     comparable with closeness to the other. G is a random subset of at most max_records
     generated records.
  2. For every g in G: d_train(g) = distance to the closest record of R_train, d_hold(g) =
     distance to the closest record of R_hold. The same two distances for every h in H_q, which
     is disjoint from R_hold and was never trained on, give the no-memorisation baseline.

  Keys (distances as in `record_distance_matrix`, floats scaled by `float_scale`, default
  `float_scales(train, float_fields)`):

  * `dcr/generated_to_train_median`, `dcr/generated_to_train_p05`: median and 5th percentile
    over G of the distance to the closest record of the WHOLE training set;
    `dcr/holdout_to_train_median`, `dcr/holdout_to_train_p05` the same over H_q. Copies of any
    training record pull the generated percentiles below the held-out ones.
  * `dcr/generated_below_holdout_p05`: share of G closer to the whole training set than the
    held-out records' 5th percentile: ≈ 0.05 without memorisation, up to 1 with copying.
  * `dcr/share_closer_to_train`: mean over G of [d_train < d_hold] + 0.5 [d_train == d_hold].
    If train and holdout are a random split of the same data, R_train and R_hold are
    exchangeable, so for any G drawn independently of the training records (no memorisation,
    however good or bad the model) the share is 0.5 in expectation; memorisation moves it toward
    1. Only copies of records in R_train move it, so its sensitivity to copying scales with
    n_ref / len(train); the percentiles above and `dcr/exact_match_share` use all of train.
    `dcr/holdout_share_closer_to_train` is the same over H_q: 0.5 up to sampling noise by
    construction, a yardstick of that noise.
  * `dcr/exact_match_share`: share of G equal on every field to some record of the whole
    training set (d = 0 against all of `train`, found by hashing, so copies of records outside
    R_train count too).
  * `dcr/n_generated`, `dcr/n_holdout_query`, `dcr/n_reference`: |G|, |H_q|, n_ref.

  ValueError if `generated` or `train` is empty, `holdout` has fewer than 2 records or
  `max_records` < 1.
  """
  if int(max_records) != max_records or max_records < 1:
    raise ValueError(f"max_records must be a positive integer, got {max_records!r}")
  if not generated:
    raise ValueError("dcr_report needs generated records, got none")
  if not train:
    raise ValueError("dcr_report needs training records, got none")
  if len(holdout) < 2:
    raise ValueError(
      f"dcr_report needs at least 2 holdout records (a query and a reference part), got "
      f"{len(holdout)}"
    )
  if float_scale is None:
    float_scale = float_scales(train, float_fields)
  sf, ff = _check_spec(string_fields, float_fields, float_scale)
  chunk = _check_chunk(chunk)
  max_records = int(max_records)

  rng = np.random.default_rng(seed)
  n_ref = min(len(train), len(holdout) // 2, max_records)
  g_idx = rng.permutation(len(generated))[:max_records]
  h_perm = rng.permutation(len(holdout))
  r_hold_idx, hq_idx = h_perm[:n_ref], h_perm[n_ref:][:max_records]
  r_train_idx = rng.permutation(len(train))[:n_ref]

  # Validate each whole list once (error messages then index the caller's lists), then subset.
  cgen, ct, ch = (
    _columns(generated, sf, ff, "generated"),
    _columns(train, sf, ff, "train"),
    _columns(holdout, sf, ff, "holdout"),
  )
  cg, chq, crh, crt = (
    _subset(cgen, g_idx),
    _subset(ch, hq_idx),
    _subset(ch, r_hold_idx),
    _subset(ct, r_train_idx),
  )
  g_train = _nearest(cg, crt, float_scale, chunk, workers)
  g_hold = _nearest(cg, crh, float_scale, chunk, workers)
  q_train = _nearest(chq, crt, float_scale, chunk, workers)
  q_hold = _nearest(chq, crh, float_scale, chunk, workers)
  # distances to the WHOLE training set: a copy of any training record counts
  g_full = _nearest(cg, ct, float_scale, chunk, workers)
  q_full = _nearest(chq, ct, float_scale, chunk, workers)
  q05 = float(np.percentile(q_full, 5))

  # Exact matches against the whole training set: hash the field tuples (float values as
  # Python floats, so 1 and 1.0 or np.float64 values compare as numbers do).
  seen = set(zip(*([ct.strs[f] for f in sf] + [ct.floats[f].tolist() for f in ff])))
  keys = zip(*([cg.strs[f] for f in sf] + [cg.floats[f].tolist() for f in ff]))
  exact = np.array([k in seen for k in keys], bool)

  return {
    "dcr/generated_to_train_median": float(np.median(g_full)),
    "dcr/generated_to_train_p05": float(np.percentile(g_full, 5)),
    "dcr/holdout_to_train_median": float(np.median(q_full)),
    "dcr/holdout_to_train_p05": q05,
    "dcr/generated_below_holdout_p05": float(np.mean(g_full < q05)),
    "dcr/share_closer_to_train": _share_closer(g_train, g_hold),
    "dcr/holdout_share_closer_to_train": _share_closer(q_train, q_hold),
    "dcr/exact_match_share": float(exact.mean()),
    "dcr/n_generated": float(cg.n),
    "dcr/n_holdout_query": float(chq.n),
    "dcr/n_reference": float(n_ref),
  }


def auc(member_scores: Any, nonmember_scores: Any) -> float:
  """ROC AUC of "higher score means member": the probability that a random member scores above a
  random non-member, ties counted 1/2 (the Mann-Whitney U statistic / (m n), from the mid-ranks
  of `scipy.stats.rankdata`). For membership inference on per-record losses pass minus the loss.

  ValueError if either side is empty or holds a non-finite score.
  """
  m = np.asarray(member_scores, np.float64).reshape(-1)
  n = np.asarray(nonmember_scores, np.float64).reshape(-1)
  for name, x in (("member_scores", m), ("nonmember_scores", n)):
    if x.size == 0:
      raise ValueError(f"auc needs at least one value in {name}, got none")
    if not np.isfinite(x).all():
      raise ValueError(f"auc needs finite scores; {int((~np.isfinite(x)).sum())} in {name} are not")
  ranks = stats.rankdata(np.concatenate([m, n]))
  u = ranks[: m.size].sum() - m.size * (m.size + 1) / 2
  return float(u / (m.size * n.size))


def _rare(
  counts: collections.Counter, everywhere: collections.Counter, max_count: int
) -> set[Hashable]:
  """The values occurring at most `max_count` times in `counts` and nowhere else."""
  return {v for v, c in counts.items() if c <= max_count and everywhere[v] == c}


def extraction_rates(
  rounds_values: Sequence[Sequence[Hashable]],
  train_values: Sequence[Hashable],
  holdout_values: Sequence[Hashable],
  max_count: int = 1,
  seed: int = 0,
) -> dict[str, float]:
  """The repeated encode/decode extraction rate (paper 000 App E) of one field, with a held-out
  baseline.

  `rounds_values[n]` holds the field's values in the generated records after n rounds of
  encoding and decoding, x^(n) = g(mu(x^(n-1))) (`alala_jax.analysis.repeated_encode_decode`;
  round 0 = the generated records themselves); `train_values` and `holdout_values` the field's
  values in the training records and in real records never trained on. None entries (e.g. a
  malformed text line) are ignored everywhere.

  Protocol:

  1. The rare training values R_train: values occurring 1..max_count times among the training
     values and never among the held-out ones. The held-out baseline R_hold: values occurring
     1..max_count times among the held-out values and never among the training ones. (For
     max_count > 1 "among" means among the equal-size subsets A and B described below.)
  2. Per round n: train_rare@n = |R_train ∩ values(n)| / |R_train|, the share of rare training
     values reproduced at least once, and holdout_rare@n the same share of R_hold; their ratio;
     and a one-sided Fisher exact p-value (`scipy.stats.fisher_exact`, alternative 'greater') of
     "training values are reproduced more often" on the 2x2 table of reproduced / not
     reproduced counts of the two sets.

  Why the held-out set is the baseline: a model that generalises without memorising can still
  emit a rare real value (a plausible street name of the right zip), seen or unseen; it has no
  reason to emit the ones it was trained on more often than equally rare ones it never saw. A
  model that memorises does: extraction shows as train_rare@n > holdout_rare@n. "Equally rare"
  needs train and held-out data to be a random split of one data set (as
  `alala_jax.data.datasets.split` makes them). Then, for max_count = 1, R_train and R_hold are
  the values that occur exactly once in all the data, each put on its side by the split
  independently of which value it is, whatever the two sides' sizes: without memorisation the
  two shares agree in expectation. Each share is of its own set, so the sets' sizes (which
  differ with the split) do not enter. For max_count > 1 a value occurring c times lands wholly
  on the larger side more often the larger c is, which would fill the larger side's set with
  more common values; so both sides are first cut to m = min(len(train), len(holdout)) values,
  random subsets A and B (`np.random.default_rng(seed)`), the sets are formed from A and B, and
  a value also occurring anywhere else (the cut-off rest of either side) is in neither. A and B
  are then exchangeable, and so are R_train and R_hold. The Fisher p-value treats values as
  independent, which they are not quite (one model emits them): read it as a yardstick of the
  noise.

  Keys: `extraction/n_train_rare`, `extraction/n_holdout_rare` (|R_train|, |R_hold|),
  `extraction/n_train_compared`, `extraction/n_holdout_compared` (the values the sets were
  formed from: all, or m each for max_count > 1), `extraction/max_count`, `extraction/rounds`
  (the last n), `extraction/n_generated` (records of round 0) and per round n = 0..rounds:
  `extraction/train_rare@n`, `extraction/holdout_rare@n` (NaN when the set is empty),
  `extraction/ratio@n` (train share / held-out share; NaN when either is NaN or the held-out
  share is 0), `extraction/pvalue@n` (NaN when either set is empty) and `extraction/in_train@n`
  (share of the round's records whose value occurs in the training data at all, the quantity of
  App E Figs 15-17; None counts as absent; NaN for an empty round).

  ValueError if `rounds_values` is empty or `max_count` < 1.
  """
  if int(max_count) != max_count or max_count < 1:
    raise ValueError(f"max_count must be a positive integer, got {max_count!r}")
  if not len(rounds_values):
    raise ValueError("extraction_rates needs at least one round of generated values (round 0)")
  max_count = int(max_count)
  train = [v for v in train_values if v is not None]
  hold = [v for v in holdout_values if v is not None]
  a, b = train, hold
  if max_count > 1:  # equal sizes (docstring)
    m = min(len(train), len(hold))
    rng = np.random.default_rng(seed)
    a = [train[i] for i in rng.permutation(len(train))[:m]]
    b = [hold[i] for i in rng.permutation(len(hold))[:m]]
  everywhere = collections.Counter(train) + collections.Counter(hold)
  r_train = _rare(collections.Counter(a), everywhere, max_count)
  r_hold = _rare(collections.Counter(b), everywhere, max_count)
  seen = set(train)
  nan = float("nan")
  out = {
    "extraction/n_train_rare": float(len(r_train)),
    "extraction/n_holdout_rare": float(len(r_hold)),
    "extraction/n_train_compared": float(len(a)),
    "extraction/n_holdout_compared": float(len(b)),
    "extraction/max_count": float(max_count),
    "extraction/rounds": float(len(rounds_values) - 1),
    "extraction/n_generated": float(len(rounds_values[0])),
  }
  for n, values in enumerate(rounds_values):
    got = {v for v in values if v is not None}
    k_train, k_hold = len(r_train & got), len(r_hold & got)
    s_train = k_train / len(r_train) if r_train else nan
    s_hold = k_hold / len(r_hold) if r_hold else nan
    p = nan
    if r_train and r_hold:
      table = [[k_train, len(r_train) - k_train], [k_hold, len(r_hold) - k_hold]]
      p = float(stats.fisher_exact(table, alternative="greater").pvalue)
    out[f"extraction/train_rare@{n}"] = s_train
    out[f"extraction/holdout_rare@{n}"] = s_hold
    out[f"extraction/ratio@{n}"] = s_train / s_hold if s_hold > 0 else nan  # False for NaN
    out[f"extraction/pvalue@{n}"] = p
    out[f"extraction/in_train@{n}"] = (
      float(np.mean([v is not None and v in seen for v in values])) if len(values) else nan
    )
  return out


def format_privacy(res: Mapping[str, Any]) -> list[str]:
  """Human-readable lines for the keys of `dcr_report` (and `mia/auc`, an `auc` of per-record
  losses) present in `res`; missing keys are left out, no keys at all gives [].

  The verdict line says "no closer" when share_closer_to_train <= 0.55, the generated p05
  distance (to the whole training set) is at least 0.8 x the held-out p05 distance, at most
  10 % of generated records lie below the held-out p05 distance (5 % expected) and, when
  reported, at most 1 % are exact copies; otherwise "closer" with the numbers. It needs the
  share and both p05 keys.

  With the keys of `extraction_rates` (and `extraction/field`, the field's name) it adds the
  reproduced shares per round and a verdict at the last round: "memorises more than the
  held-out baseline" when the one-sided Fisher p-value is below EXTRACTION_ALPHA (rare training
  values reproduced more often than rare held-out ones beyond noise), "no more than the held-out
  baseline" otherwise ("no evidence of memorising more than ..."), and "no verdict" when either
  set of rare values is empty.
  """
  lines = []
  for who, label in (("generated", "generated"), ("holdout", "held-out real")):
    med, p05 = res.get(f"dcr/{who}_to_train_median"), res.get(f"dcr/{who}_to_train_p05")
    parts = []
    if med is not None:
      parts.append(f"median {med:.3f}")
    if p05 is not None:
      parts.append(f"p05 {p05:.3f}")
    if parts:
      lines.append(f"  distance of {label} records to closest training record: " + ", ".join(parts))
  share = res.get("dcr/share_closer_to_train")
  if share is not None:
    s = f"  generated records closer to train than to held-out: {share:.3f} (ideal 0.5"
    base = res.get("dcr/holdout_share_closer_to_train")
    if base is not None:
      s += f"; held-out real records {base:.3f}"
    lines.append(s + ")")
  below = res.get("dcr/generated_below_holdout_p05")
  if below is not None:
    lines.append(
      f"  generated records closer to the training set than 95 % of held-out real records: "
      f"{100 * below:.2f} % (5 % expected)"
    )
  exact = res.get("dcr/exact_match_share")
  if exact is not None:
    lines.append(f"  exact copies of training records (every field): {100 * exact:.2f} %")
  g05, h05 = res.get("dcr/generated_to_train_p05"), res.get("dcr/holdout_to_train_p05")
  if share is not None and g05 is not None and h05 is not None:
    ok = share <= SHARE_CLOSER_MAX and g05 >= P05_RATIO_MIN * h05
    ok = ok and (below is None or below <= BELOW_P05_MAX) and (exact is None or exact <= 0.01)
    if ok:
      lines.append(
        "  memorisation: generated records are no closer to the training set than held-out "
        "real records are"
      )
    else:
      lines.append(
        "  memorisation: generated records sit closer to the training set than held-out real "
        f"records (share closer to train {share:.3f}, p05 distance {g05:.3f} vs {h05:.3f}"
        + (f", {100 * below:.1f} % below the held-out p05" if below is not None else "")
        + ")"
      )
  if "mia/auc" in res:
    lines.append(
      f"  membership inference AUC (per-record ELBO): {res['mia/auc']:.3f} (0.5 = no signal)"
    )
  lines.extend(_format_extraction(res))
  return lines


def _pct(share: float, n_set: float) -> str:
  if math.isnan(share):
    return "n/a (no such values)"
  return f"{100 * share:.2f} % ({round(share * n_set)}/{n_set:.0f})"


def _format_extraction(res: Mapping[str, Any]) -> list[str]:
  """The lines of the `extraction_rates` keys in `res` (none without `extraction/rounds`)."""
  if "extraction/rounds" not in res:
    return []
  last = int(res["extraction/rounds"])
  field = res.get("extraction/field", "field")
  nt, nh = res["extraction/n_train_rare"], res["extraction/n_holdout_rare"]
  mc = int(res.get("extraction/max_count", 1))
  times = "once" if mc == 1 else f"at most {mc} times"
  cut = ""
  if mc > 1 and "extraction/n_train_compared" in res:
    cut = f", counted in {res['extraction/n_train_compared']:.0f} values per side"
  lines = [
    f"  extraction by repeated encoding/decoding (App E) of "
    f"{res.get('extraction/n_generated', 0):.0f} generated records: shares reproduced of the "
    f"{nt:.0f} {field} values occurring {times} in training and never held out, and (the "
    f"baseline) of the {nh:.0f} occurring {times} held out and never in training{cut}"
  ]
  for n in range(last + 1):
    t, h = res.get(f"extraction/train_rare@{n}"), res.get(f"extraction/holdout_rare@{n}")
    if t is None or h is None:
      continue
    line = f"    round {n}: training {_pct(t, nt)}, held-out {_pct(h, nh)}"
    it = res.get(f"extraction/in_train@{n}")
    if it is not None and not math.isnan(it):
      line += f"; all generated {field} values seen in training {100 * it:.1f} %"
    lines.append(line)
  t, h = res.get(f"extraction/train_rare@{last}"), res.get(f"extraction/holdout_rare@{last}")
  p = res.get(f"extraction/pvalue@{last}", float("nan"))
  if t is None or h is None:
    return lines
  after = f"after {last} round{'s' if last != 1 else ''} of encoding/decoding"
  if math.isnan(t) or math.isnan(h) or math.isnan(p):
    lines.append(
      f"  extraction: no verdict, {nt:.0f} rare training and {nh:.0f} rare held-out {field} "
      "values to compare (need both: another eval.extraction_field, e.g. a comma list of fields, "
      "or a larger eval.extraction_max_count may have them)"
    )
    return lines
  ratio = res.get(f"extraction/ratio@{last}", float("nan"))
  nums = (
    f"{100 * t:.2f} % vs {100 * h:.2f} %, ratio "
    + ("n/a" if math.isnan(ratio) else f"{ratio:.2f}")
    + f", one-sided Fisher p = {p:.3g}"
  )
  if p < EXTRACTION_ALPHA:
    lines.append(
      f"  extraction: memorises more than the held-out baseline: {after}, rare training {field} "
      f"values are reproduced more often than rare held-out ones ({nums})"
    )
  else:
    lines.append(
      f"  extraction: no evidence of memorising more than the held-out baseline: {after}, rare "
      f"training {field} values are not significantly more often reproduced than rare held-out "
      f"ones ({nums})"
    )
  return lines
