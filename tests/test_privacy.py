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
lev = text_metrics.levenshtein_python


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


# The repeated encode/decode extraction rate (paper 000 App E).

TRAIN_V = ["MAIN", "MAIN", "ELM", "OAK", "PINE", "BIRCH", None]  # None: a malformed line
HOLD_V = ["ELM", "FOX", "BEAR", "BEAR", "POND"]


def test_extraction_rates_hand_computed():
  rounds = [
    ["OAK", "FOX", "MAIN", None],
    ["OAK", "PINE", "PINE", "ELM", "NEW"],
    ["BIRCH", "OAK", "PINE", "FOX", "POND"],
  ]
  r = privacy.extraction_rates(rounds, TRAIN_V, HOLD_V)
  # rare training values: OAK, PINE, BIRCH (MAIN occurs twice, ELM is also held out); rare
  # held-out values: FOX, POND (BEAR occurs twice, ELM is also in training)
  assert r["extraction/n_train_rare"] == 3 and r["extraction/n_holdout_rare"] == 2
  assert r["extraction/n_train_compared"] == 6 and r["extraction/n_holdout_compared"] == 5
  assert r["extraction/rounds"] == 2 and r["extraction/n_generated"] == 4
  assert r["extraction/max_count"] == 1
  # round 0: OAK of 3, FOX of 2; Fisher [[1, 2], [1, 1]]: P(X >= 1), X ~ H(5, 2, 3) = 1 - 1/10
  assert r["extraction/train_rare@0"] == pytest.approx(1 / 3)
  assert r["extraction/holdout_rare@0"] == 0.5
  assert r["extraction/ratio@0"] == pytest.approx(2 / 3)
  assert r["extraction/pvalue@0"] == pytest.approx(0.9)
  assert r["extraction/in_train@0"] == 0.5  # OAK and MAIN of four records (None is absent)
  # round 1: OAK and PINE (twice counts once), no held-out one: ratio undefined (NaN);
  # Fisher [[2, 1], [0, 2]]: P(X = 2) = C(2, 2) C(3, 1) / C(5, 3) = 3 / 10
  assert r["extraction/train_rare@1"] == pytest.approx(2 / 3)
  assert r["extraction/holdout_rare@1"] == 0.0
  assert np.isnan(r["extraction/ratio@1"])
  assert r["extraction/pvalue@1"] == pytest.approx(0.3)
  assert r["extraction/in_train@1"] == pytest.approx(4 / 5)
  # round 2: everything reproduced on both sides
  assert r["extraction/train_rare@2"] == r["extraction/holdout_rare@2"] == 1.0
  assert r["extraction/ratio@2"] == 1.0 and r["extraction/pvalue@2"] == pytest.approx(1.0)
  assert r["extraction/in_train@2"] == pytest.approx(3 / 5)


def test_extraction_rates_max_count():
  train = ["MAIN", "MAIN", "ELM", "OAK", "PINE", "BIRCH"]
  hold = ["ELM", "FOX", "BEAR", "BEAR", "POND", "ASH"]  # as many values: nothing is cut
  rounds = [["MAIN", "BEAR", "FOX"]]
  r1 = privacy.extraction_rates(rounds, train, hold, max_count=1)
  assert (r1["extraction/n_train_rare"], r1["extraction/n_holdout_rare"]) == (3, 3)
  assert r1["extraction/train_rare@0"] == 0 and r1["extraction/holdout_rare@0"] == pytest.approx(
    1 / 3
  )
  # at most twice: MAIN and BEAR join their sets; ELM (on both sides) never counts
  r2 = privacy.extraction_rates(rounds, train, hold, max_count=2)
  assert (r2["extraction/n_train_rare"], r2["extraction/n_holdout_rare"]) == (4, 4)
  assert r2["extraction/n_train_compared"] == r2["extraction/n_holdout_compared"] == 6
  assert r2["extraction/train_rare@0"] == 0.25 and r2["extraction/holdout_rare@0"] == 0.5
  assert r2["extraction/ratio@0"] == 0.5


def loop_extraction(rounds, train, hold, k, seed):
  """The docstring's protocol, spelt out with explicit loops."""
  train = [v for v in train if v is not None]
  hold = [v for v in hold if v is not None]
  a, b = train, hold
  if k > 1:
    m = min(len(train), len(hold))
    rs = np.random.default_rng(seed)
    a = [train[i] for i in rs.permutation(len(train))[:m]]
    b = [hold[i] for i in rs.permutation(len(hold))[:m]]
  everything = train + hold

  def rare(side):
    return {v for v in side if side.count(v) <= k and everything.count(v) == side.count(v)}

  rt, rh = rare(a), rare(b)
  out = []
  for values in rounds:
    st = sum(v in values for v in rt) / len(rt)
    sh = sum(v in values for v in rh) / len(rh)
    out.append((st, sh, np.mean([v in train for v in values])))
  return len(rt), len(rh), out


@pytest.mark.parametrize("k", [1, 2, 3])
def test_extraction_rates_match_explicit_loops(k):
  rng = np.random.default_rng(10 + k)
  letters = np.array(list("ABCDE"))
  word = lambda: "".join(rng.choice(letters, size=int(rng.integers(1, 4))))
  train = [word() for _ in range(300)]
  hold = [word() for _ in range(70)] + [None]
  rounds = [[word() for _ in range(60)] for _ in range(4)]
  r = privacy.extraction_rates(rounds, train, hold, max_count=k, seed=3)
  nt, nh, per_round = loop_extraction(rounds, train, hold, k, 3)
  assert (r["extraction/n_train_rare"], r["extraction/n_holdout_rare"]) == (nt, nh)
  assert nt > 0 and nh > 0
  m = 70 if k > 1 else None
  assert r["extraction/n_holdout_compared"] == 70
  assert r["extraction/n_train_compared"] == (m or 300)
  for n, (st, sh, it) in enumerate(per_round):
    assert r[f"extraction/train_rare@{n}"] == pytest.approx(st)
    assert r[f"extraction/holdout_rare@{n}"] == pytest.approx(sh)
    assert r[f"extraction/in_train@{n}"] == pytest.approx(it)


def test_extraction_rates_empty_sets_are_nan():
  # every held-out value also occurs in training: no baseline, so NaN and no verdict
  r = privacy.extraction_rates([["OAK", "PINE"], ["OAK"]], ["OAK", "PINE", "ELM"], ["ELM", "ELM"])
  assert r["extraction/n_train_rare"] == 2 and r["extraction/n_holdout_rare"] == 0
  assert r["extraction/train_rare@1"] == 0.5
  for key in ("holdout_rare", "ratio", "pvalue"):
    assert np.isnan(r[f"extraction/{key}@1"]), key
  text = "\n".join(privacy.format_privacy({**r, "extraction/field": "street"}))
  assert "held-out n/a (no such values)" in text
  assert "extraction: no verdict, 2 rare training and 0 rare held-out street values" in text
  # nothing held out at all, and an empty round
  r = privacy.extraction_rates([[]], ["OAK"], [])
  assert r["extraction/n_holdout_rare"] == 0 and np.isnan(r["extraction/in_train@0"])
  assert r["extraction/train_rare@0"] == 0.0 and np.isnan(r["extraction/holdout_rare@0"])
  with pytest.raises(ValueError, match="max_count"):
    privacy.extraction_rates([["OAK"]], ["OAK"], ["ELM"], max_count=0)
  with pytest.raises(ValueError, match="at least one round"):
    privacy.extraction_rates([], ["OAK"], ["ELM"])


def zipf_values(rng, n: int, vocab: int = 3000) -> list[str]:
  """`n` street-like values drawn from a Zipf-like population of `vocab` names."""
  p = 1 / np.arange(1, vocab + 1) ** 0.7
  return [f"S{i}" for i in rng.choice(vocab, n, p=p / p.sum())]


def verdict(r) -> str:
  lines = privacy.format_privacy({**r, "extraction/field": "street"})
  (line,) = [s for s in lines if s.startswith("  extraction:")]
  return line


def test_extraction_copying_model_memorises_a_generalising_one_does_not():
  rng = np.random.default_rng(12)
  data = zipf_values(rng, 1000)
  train, hold = data[:900], data[900:]  # a random split, 9:1 like the data sets'
  # A model that learned the population and nothing of its training set: fresh draws.
  fresh = [zipf_values(rng, 500) for _ in range(4)]
  r = privacy.extraction_rates(fresh, train, hold)
  assert r["extraction/n_train_rare"] > 5 * r["extraction/n_holdout_rare"] > 0
  assert r["extraction/pvalue@3"] >= privacy.EXTRACTION_ALPHA
  assert 0.5 < r["extraction/ratio@3"] < 2
  assert "no evidence of memorising more than the held-out baseline" in verdict(r)
  assert "after 3 rounds" in verdict(r)
  # The same, except that each round copies 80 more random training values (App E's drift
  # toward training street names): its rare training values come back more and more often.
  copying = [f[: 500 - 80 * n] + list(rng.choice(train, 80 * n)) for n, f in enumerate(fresh)]
  r = privacy.extraction_rates(copying, train, hold)
  shares = [r[f"extraction/train_rare@{n}"] for n in range(4)]
  assert shares == sorted(shares) and shares[3] > shares[0]
  assert r["extraction/pvalue@3"] < privacy.EXTRACTION_ALPHA
  assert r["extraction/ratio@3"] > 1
  assert "memorises more than the held-out baseline" in verdict(r)
  assert r["extraction/in_train@3"] > r["extraction/in_train@0"]


def test_format_extraction_lines():
  r = privacy.extraction_rates([["OAK", "FOX"], ["OAK", "PINE"]], TRAIN_V, HOLD_V)
  lines = privacy.format_privacy({**r, "extraction/field": "street"})
  assert lines[0] == (
    "  extraction by repeated encoding/decoding (App E) of 2 generated records: shares "
    "reproduced of the 3 street values occurring once in training and never held out, and (the "
    "baseline) of the 2 occurring once held out and never in training"
  )
  assert lines[1] == (
    "    round 0: training 33.33 % (1/3), held-out 50.00 % (1/2); all generated street values "
    "seen in training 50.0 %"
  )
  assert lines[2].startswith("    round 1: training 66.67 % (2/3), held-out 0.00 % (0/2)")
  assert lines[3] == (
    "  extraction: no evidence of memorising more than the held-out baseline: after 1 round of "
    "encoding/decoding, rare training street values are not significantly more often "
    "reproduced than rare held-out ones (66.67 % vs 0.00 %, ratio n/a, one-sided Fisher "
    "p = 0.3)"
  )
  assert len(lines) == 4
  # the extraction lines come after the DCR and membership lines
  both = privacy.format_privacy({**r, "mia/auc": 0.5})
  assert both[0].startswith("  membership inference AUC") and both[1:] == [
    s.replace("street", "field") for s in lines
  ]
