"""Privacy audit of generated records (alala_jax/metrics/privacy.py) against explicit loops."""

from __future__ import annotations

import dataclasses
import string

import numpy as np
import pytest

from alala_jax.metrics import privacy
from alala_jax.metrics import text as text_metrics


@dataclasses.dataclass(frozen=True)
class Rec:
  street: str
  city: str
  lat: float
  long: float


SF = ("street", "city")
FF = ("lat", "long")
SCALE = {"lat": 0.5, "long": 2.0}

A = [
  Rec("MAIN ST", "BARRE", 44.0, -72.0),
  Rec("", "", 44.2, -72.5),
  Rec("ELM ST", "STOWE", 45.0, -71.0),  # lat 1.0 away from A[0]: 2 scales, capped at 1
]
B = [
  Rec("MAIN ST", "BARRE", 44.0, -72.0),
  Rec("MAIN STREET", "BARE", 44.1, -73.0),
  Rec("", "STOWE", 44.0, -72.0),
  Rec("", "", 44.2, -72.5),
]


# the project's pure-Python Levenshtein (d_Lev) as the reference for rapidfuzz's C one
lev = text_metrics.levenshtein


def loop_distance(x: Rec, y: Rec, sf=SF, ff=FF, scale=SCALE) -> float:
  parts = []
  for f in sf:
    s, t = getattr(x, f), getattr(y, f)
    parts.append(0.0 if not s and not t else lev(s, t) / max(len(s), len(t)))
  for f in ff:
    parts.append(min(abs(getattr(x, f) - getattr(y, f)) / scale[f], 1.0))
  return sum(parts) / len(parts)


def test_lev_reference():
  assert lev("", "") == 0 and lev("", "abc") == 3 and lev("kitten", "sitting") == 3


def test_distance_matrix_matches_double_loop():
  d = privacy.record_distance_matrix(A, B, SF, FF, SCALE)
  assert d.shape == (3, 4) and d.dtype == np.float32
  want = np.array([[loop_distance(x, y) for y in B] for x in A])
  np.testing.assert_allclose(d, want, rtol=1e-6, atol=1e-7)
  assert d[0, 0] == 0 and d[1, 3] == 0  # identical records, empty strings included
  # A[1] vs B[2]: street "" vs "" -> 0, city "" vs "STOWE" -> 1, lat 0.2 / 0.5, long 0.5 / 2.
  assert d[1, 2] == pytest.approx((0 + 1 + 0.4 + 0.25) / 4, abs=1e-6)


def test_dicts_and_string_or_float_only():
  da = [dataclasses.asdict(r) for r in A]
  db = [dataclasses.asdict(r) for r in B]
  np.testing.assert_array_equal(
    privacy.record_distance_matrix(da, db, SF, FF, SCALE),
    privacy.record_distance_matrix(A, B, SF, FF, SCALE),
  )
  d = privacy.record_distance_matrix(A, B, ("street",), (), {})
  want = [[loop_distance(x, y, ("street",), ()) for y in B] for x in A]
  np.testing.assert_allclose(d, want, rtol=1e-6)
  d = privacy.record_distance_matrix(A, B, (), ("lat",), SCALE)
  np.testing.assert_allclose(d, [[loop_distance(x, y, (), ("lat",)) for y in B] for x in A])


def test_float_distance_is_capped():
  a = [Rec("X", "Y", 0.0, 0.0)]
  b = [Rec("X", "Y", 0.25, 0.0), Rec("X", "Y", 1.0, 0.0), Rec("X", "Y", 1e6, 0.0)]
  d = privacy.record_distance_matrix(a, b, (), ("lat",), {"lat": 0.5})
  np.testing.assert_allclose(d, [[0.5, 1.0, 1.0]])
  # A far-off coordinate counts as one fully different field out of four, no more.
  d = privacy.record_distance_matrix(a, b, SF, FF, {"lat": 0.5, "long": 1.0})
  np.testing.assert_allclose(d, [[0.125, 0.25, 0.25]])


def random_records(rng: np.random.Generator, n: int) -> list[Rec]:
  letters = np.array(list(string.ascii_uppercase[:6]))

  def word() -> str:
    return "".join(rng.choice(letters, size=int(rng.integers(0, 7))))

  return [
    Rec(word(), word(), float(rng.normal(44, 0.3)), float(rng.normal(-72, 0.3))) for _ in range(n)
  ]


def test_chunked_equals_unchunked_and_nearest_is_row_min():
  rng = np.random.default_rng(1)
  a, b = random_records(rng, 23), random_records(rng, 17)
  full = privacy.record_distance_matrix(a, b, SF, FF, SCALE, chunk=10_000)
  for chunk in (1, 5, 23):
    np.testing.assert_array_equal(
      privacy.record_distance_matrix(a, b, SF, FF, SCALE, chunk=chunk), full
    )
  for chunk in (1, 4, 1024):
    near = privacy.nearest_distances(a, b, SF, FF, SCALE, chunk=chunk)
    assert near.shape == (23,)
    np.testing.assert_array_equal(near, full.min(axis=1))
  assert privacy.record_distance_matrix([], b, SF, FF, SCALE).shape == (0, 17)


def test_float_scales_is_training_std():
  rng = np.random.default_rng(2)
  train = random_records(rng, 50)
  s = privacy.float_scales(train, FF)
  assert s["lat"] == pytest.approx(np.std([r.lat for r in train]))
  assert s["long"] == pytest.approx(np.std([r.long for r in train]))
  with pytest.raises(ValueError, match="standard deviation"):
    privacy.float_scales([Rec("a", "b", 1.0, 2.0)] * 3, FF)
  with pytest.raises(ValueError, match="non-finite"):
    privacy.float_scales([Rec("a", "b", 1.0, 2.0), Rec("a", "b", float("nan"), 3.0)], FF)
  with pytest.raises(ValueError, match="no training records|needs training"):
    privacy.float_scales([], FF)


def test_distance_validation_errors():
  with pytest.raises(ValueError, match=r"'town'.*available fields.*street"):
    privacy.record_distance_matrix(A, B, ("town",), FF, SCALE)
  with pytest.raises(ValueError, match=r"'elev'.*available fields"):
    privacy.record_distance_matrix(A, B, SF, ("elev",), {"elev": 1.0})
  with pytest.raises(ValueError, match="no entry for float field 'long'"):
    privacy.record_distance_matrix(A, B, SF, FF, {"lat": 1.0})
  with pytest.raises(ValueError, match="positive"):
    privacy.record_distance_matrix(A, B, SF, FF, {"lat": 1.0, "long": 0.0})
  with pytest.raises(ValueError, match="at least one"):
    privacy.record_distance_matrix(A, B, (), (), {})
  with pytest.raises(ValueError, match="chunk"):
    privacy.record_distance_matrix(A, B, SF, FF, SCALE, chunk=0)
  with pytest.raises(ValueError, match="not str"):
    privacy.record_distance_matrix([Rec(None, "x", 0.0, 0.0)], B, SF, FF, SCALE)
  with pytest.raises(ValueError, match="non-finite"):
    privacy.record_distance_matrix([Rec("a", "x", float("inf"), 0.0)], B, SF, FF, SCALE)
  with pytest.raises(ValueError, match="at least one reference"):
    privacy.nearest_distances(A, [], SF, FF, SCALE)


def test_dcr_copies_of_training_records():
  rng = np.random.default_rng(3)
  train, holdout = random_records(rng, 100), random_records(rng, 300)
  # n_ref = min(100, 150) = 100: R_train is all of train, so every copy has d_train = 0.
  r = privacy.dcr_report(list(train), train, holdout, SF, FF)
  assert r["dcr/n_reference"] == 100 and r["dcr/n_generated"] == 100
  assert r["dcr/n_holdout_query"] == 200
  assert r["dcr/exact_match_share"] == 1.0
  assert r["dcr/share_closer_to_train"] == pytest.approx(1.0, abs=0.01)
  assert r["dcr/generated_to_train_median"] == 0 and r["dcr/generated_to_train_p05"] == 0
  assert r["dcr/holdout_to_train_p05"] > 0
  lines = privacy.format_privacy(r)
  assert any("sit closer to the training set" in line for line in lines)
  # Copies of records outside a smaller R_train still show: exact matches and the distance
  # percentiles use the whole training set, and the verdict says so.
  big = random_records(rng, 400)
  r = privacy.dcr_report(big[:50], big, holdout, SF, FF, max_records=60)
  assert r["dcr/n_reference"] == 60 and r["dcr/exact_match_share"] == 1.0
  assert r["dcr/generated_to_train_p05"] == 0 and r["dcr/generated_below_holdout_p05"] == 1.0
  assert any("sit closer to the training set" in line for line in privacy.format_privacy(r))
  # near-copies (a float moved by a hair) are caught the same way, without exact matches
  near_copies = [dataclasses.replace(x, lat=x.lat + 1e-4) for x in big[:50]]
  r = privacy.dcr_report(near_copies, big, holdout, SF, FF, max_records=60)
  assert r["dcr/exact_match_share"] == 0.0 and r["dcr/generated_below_holdout_p05"] == 1.0
  assert any("sit closer to the training set" in line for line in privacy.format_privacy(r))


def test_dcr_iid_records_are_half_closer_to_train():
  rng = np.random.default_rng(4)
  gen, train, holdout = random_records(rng, 300), random_records(rng, 300), random_records(rng, 600)
  r = privacy.dcr_report(gen, train, holdout, SF, FF, seed=5)
  assert r["dcr/n_reference"] == 300 and r["dcr/n_generated"] == 300
  assert r["dcr/exact_match_share"] == 0.0
  assert r["dcr/share_closer_to_train"] == pytest.approx(0.5, abs=0.1)
  assert r["dcr/holdout_share_closer_to_train"] == pytest.approx(0.5, abs=0.1)
  g, h = r["dcr/generated_to_train_p05"], r["dcr/holdout_to_train_p05"]
  assert g == pytest.approx(h, rel=0.25)
  assert any("no closer to the training set" in line for line in privacy.format_privacy(r))
  # Deterministic under the seed.
  assert privacy.dcr_report(gen, train, holdout, SF, FF, seed=5) == r


def test_dcr_report_matches_explicit_protocol():
  rng = np.random.default_rng(6)
  gen, train, holdout = random_records(rng, 30), random_records(rng, 40), random_records(rng, 50)
  scale = privacy.float_scales(train, FF)
  r = privacy.dcr_report(gen, train, holdout, SF, FF, max_records=20, seed=7)
  # Re-draw the documented subsets in the documented order.
  rs = np.random.default_rng(7)
  g_idx = rs.permutation(30)[:20]
  h_perm = rs.permutation(50)
  r_hold, h_q = h_perm[:20], h_perm[20:][:20]
  r_train = rs.permutation(40)[:20]
  assert not set(r_hold) & set(h_q)

  def near(q, ref):
    m = np.array([[loop_distance(x, y, scale=scale) for y in ref] for x in q])
    return m.min(axis=1)

  g, rt, rh = [gen[i] for i in g_idx], [train[i] for i in r_train], [holdout[i] for i in r_hold]
  q = [holdout[i] for i in h_q]
  dt, dh = near(g, rt), near(g, rh)
  gf, qf = near(g, train), near(q, train)  # the percentiles use the whole training set
  assert r["dcr/generated_to_train_median"] == pytest.approx(np.median(gf), abs=1e-6)
  assert r["dcr/generated_to_train_p05"] == pytest.approx(np.percentile(gf, 5), abs=1e-6)
  assert r["dcr/holdout_to_train_median"] == pytest.approx(np.median(qf), abs=1e-6)
  below = np.mean(gf < np.percentile(qf, 5))
  assert r["dcr/generated_below_holdout_p05"] == pytest.approx(below)
  share = np.mean([(a < b) + 0.5 * (a == b) for a, b in zip(dt, dh)])
  assert r["dcr/share_closer_to_train"] == pytest.approx(share)


def test_dcr_ties_count_half():
  # All records equal: d_train == d_hold == 0 for every query, so each counts 1/2.
  recs = [Rec("MAIN ST", "BARRE", 44.0, -72.0)] * 20
  r = privacy.dcr_report(recs[:5], recs[:8], recs, SF, FF, float_scale=SCALE)
  assert r["dcr/share_closer_to_train"] == 0.5
  assert r["dcr/holdout_share_closer_to_train"] == 0.5
  assert r["dcr/exact_match_share"] == 1.0


def test_dcr_report_errors():
  recs = random_records(np.random.default_rng(8), 10)
  with pytest.raises(ValueError, match="generated"):
    privacy.dcr_report([], recs, recs, SF, FF)
  with pytest.raises(ValueError, match="training"):
    privacy.dcr_report(recs, [], recs, SF, FF)
  with pytest.raises(ValueError, match="at least 2 holdout"):
    privacy.dcr_report(recs, recs, recs[:1], SF, FF)
  with pytest.raises(ValueError, match="max_records"):
    privacy.dcr_report(recs, recs, recs, SF, FF, max_records=0)
  with pytest.raises(ValueError, match=r"'town'.*available fields"):
    privacy.dcr_report(recs, recs, recs, ("town",), FF)


def loop_auc(m, n) -> float:
  return sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in m for b in n) / (len(m) * len(n))


def test_auc_matches_pairwise_loop():
  rng = np.random.default_rng(9)
  m = rng.integers(0, 8, 37).astype(float)  # many ties
  n = rng.integers(0, 10, 23).astype(float)
  assert privacy.auc(m, n) == pytest.approx(loop_auc(m, n))
  m, n = rng.normal(0.3, 1, 50), rng.normal(0, 1, 41)
  assert privacy.auc(m, n) == pytest.approx(loop_auc(m, n))
  assert privacy.auc([2.0, 3.0], [0.0, 1.0]) == 1.0
  assert privacy.auc([0.0, 1.0], [2.0, 3.0]) == 0.0
  assert privacy.auc([1.0, 1.0, 1.0], [1.0, 1.0]) == 0.5
  with pytest.raises(ValueError, match="member_scores"):
    privacy.auc([], [1.0])
  with pytest.raises(ValueError, match="nonmember_scores"):
    privacy.auc([1.0], [])
  with pytest.raises(ValueError, match="finite"):
    privacy.auc([1.0, float("nan")], [1.0])


def test_format_privacy():
  assert privacy.format_privacy({}) == []
  assert privacy.format_privacy({"mia/auc": 0.5123}) == [
    "  membership inference AUC (per-record ELBO): 0.512 (0.5 = no signal)"
  ]
  base = {
    "dcr/share_closer_to_train": 0.5,
    "dcr/generated_to_train_p05": 0.2,
    "dcr/holdout_to_train_p05": 0.2,
  }
  text = "\n".join(privacy.format_privacy(base))
  assert "are no closer to the training set than held-out real records are" in text
  # Too close at the low end, although the share is fine.
  text = "\n".join(privacy.format_privacy({**base, "dcr/generated_to_train_p05": 0.15}))
  assert "(share closer to train 0.500, p05 distance 0.150 vs 0.200)" in text
  text = "\n".join(privacy.format_privacy({**base, "dcr/share_closer_to_train": 0.56}))
  assert "sit closer to the training set" in text
  # Without the p05 keys there is no verdict, and nothing fails.
  lines = privacy.format_privacy({"dcr/share_closer_to_train": 0.9, "dcr/exact_match_share": 0.0})
  assert not any("memorisation" in line for line in lines) and len(lines) == 2
