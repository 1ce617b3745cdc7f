"""Realism checks of generated records (alala_jax/metrics/realism.py) on hand-built records."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from alala_jax.metrics import realism


@dataclasses.dataclass(frozen=True)
class Rec:
  number: str
  street: str
  city: str
  postcode: str
  lat: float = 44.0
  long: float = -72.0


TRAIN = [
  Rec("1", "MAIN ST", "BARRE", "05641"),
  Rec("2", "ELM ST", "BARRE", "05641"),
  Rec("3", "OAK RD", "STOWE", "05672"),
  Rec("4", "PINE LN", "BURLINGTON", "05401"),
  Rec("5", "MAPLE AVE", "WHEREVER", " "),
]
GEN = [
  Rec("1", "MAIN ST", "BARRE", "05641"),  # all seen, pair seen
  Rec("9", "NEW ST", "STOWE", "05641"),  # city and postcode seen, but never together
  Rec("4", "OAK RD", "NOWHERE", "05401"),  # city unseen
  Rec("7", "ELM ST", "BURLINGTON", ""),  # blank postcode, pair unseen
  Rec("8", "PINE LN", "WHEREVER", " "),  # blank postcode, pair seen
]
P = np.array([0.1, 0.4, 0.7, 0.22, 0.25])


def test_is_blank():
  for v in ("", " ", "   ", "\t", "\n ", None):
    assert realism.is_blank(v), repr(v)
  for v in ("05641", " 0 ", "x", 0, 0.0):
    assert not realism.is_blank(v), repr(v)


def test_blank_report_matches_loop():
  r = realism.blank_report(GEN, "postcode", P)
  nonblank = [p for g, p in zip(GEN, P) if g.postcode.strip()]
  assert r["count_blank"] == 2.0
  assert r["blank_share"] == pytest.approx(2 / 5)
  assert r["mean_nonblank"] == pytest.approx(sum(nonblank) / len(nonblank))
  assert r["mean_nonblank"] == pytest.approx((0.1 + 0.4 + 0.7) / 3)


def test_blank_report_all_blank_gives_nan_mean():
  gen = [Rec("1", "A", "B", " "), Rec("2", "A", "B", "")]
  r = realism.blank_report(gen, "postcode", [0.2, 0.3])
  assert r["blank_share"] == 1.0 and np.isnan(r["mean_nonblank"])


def _ks_by_hand(p):
  p = np.sort(np.asarray(p, np.float64))
  n = len(p)
  i = np.arange(1, n + 1)
  return max(np.max(np.abs(i / n - p)), np.max(np.abs(p - (i - 1) / n)))


def test_ks_statistic_matches_independent_computation():
  rng = np.random.default_rng(3)
  p = rng.beta(2.0, 5.0, 200)
  assert realism.ks_uniform(p)["ks_stat"] == pytest.approx(_ks_by_hand(p), abs=1e-12)
  assert realism.ks_uniform(P)["ks_stat"] == pytest.approx(_ks_by_hand(P), abs=1e-12)


def test_ks_uniform_small_for_uniform_and_one_for_centroids():
  u = np.random.default_rng(0).uniform(size=5000)
  r = realism.ks_uniform(u)
  assert r["ks_stat"] < 0.03 and r["ks_pvalue"] > 1e-3
  r = realism.ks_uniform(np.ones(5000))
  assert r["ks_stat"] == pytest.approx(1.0) and r["ks_pvalue"] < 1e-10


def test_ks_uniform_rejects_empty():
  with pytest.raises(ValueError, match="at least one p-value"):
    realism.ks_uniform([])


def test_in_train_shares_hand_example():
  r = realism.in_train_shares(GEN, TRAIN, ["city", "postcode", "street"])
  assert r == {
    "in_train/city": pytest.approx(4 / 5),  # NOWHERE unseen
    "in_train/postcode": pytest.approx(4 / 5),  # "" unseen (" " is seen)
    "in_train/street": pytest.approx(4 / 5),  # NEW ST unseen
  }


def test_pair_share_needs_values_together():
  # STOWE exists and 05641 exists, but not as one record: counts for the city share, not the pair.
  assert realism.in_train_shares(GEN[1:2], TRAIN, ["city"])["in_train/city"] == 1.0
  assert realism.pair_in_train_share(GEN[1:2], TRAIN, ("city", "postcode")) == 0.0
  assert realism.pair_in_train_share(GEN, TRAIN, ("city", "postcode")) == pytest.approx(2 / 5)


def test_string_fields_dataclass_and_dict():
  assert realism.string_fields(TRAIN[0]) == ["number", "street", "city", "postcode"]
  assert realism.string_fields({"a": "x", "b": 1.0, "c": ""}) == ["a", "c"]


def test_realism_report_combines_and_skips():
  r = realism.realism_report(GEN, TRAIN, "postcode", P, ("city", "postcode"))
  assert r["blank_share"] == pytest.approx(2 / 5)
  assert r["ks_stat"] == pytest.approx(_ks_by_hand(P))
  assert r["in_train/number"] == pytest.approx(2 / 5)  # "1" and "4"
  assert r["pair_in_train/city+postcode"] == pytest.approx(2 / 5)
  assert not any(k.startswith("in_train/lat") for k in r)
  lean = realism.realism_report(GEN, TRAIN, "", P, ())
  assert set(lean) == {f"in_train/{f}" for f in ("number", "street", "city", "postcode")}


def test_realism_report_on_dicts():
  gen = [dataclasses.asdict(g) for g in GEN]
  train = [dataclasses.asdict(t) for t in TRAIN]
  r = realism.realism_report(gen, train, "postcode", P, ("city", "postcode"))
  assert r["pair_in_train/city+postcode"] == pytest.approx(2 / 5)
  assert r["count_blank"] == 2.0


def test_length_mismatch_names_both_lengths():
  with pytest.raises(ValueError, match=r"len\(pvalues\) = 4.*len\(generated\) = 5"):
    realism.realism_report(GEN, TRAIN, "postcode", P[:4], ())
  with pytest.raises(ValueError, match="= 4"):
    realism.blank_report(GEN, "postcode", P[:4])


def test_unknown_field_names_field_and_available():
  with pytest.raises(ValueError, match=r"'zip'.*available.*postcode"):
    realism.realism_report(GEN, TRAIN, "zip", P, ())
  with pytest.raises(ValueError, match=r"'town'.*available.*city"):
    realism.realism_report(GEN, TRAIN, "postcode", P, ("town", "postcode"))
  with pytest.raises(ValueError, match="'town'"):
    realism.in_train_shares(GEN, TRAIN, ["town"])


def test_format_realism_full_and_partial():
  r = realism.realism_report(GEN, TRAIN, "postcode", P, ("city", "postcode"))
  lines = realism.format_realism(r, "postcode")
  assert len(lines) == 2
  assert "blank postcodes 40.00 %" in lines[0] and "KS vs U(0,1)" in lines[0]
  assert "(p-value mean without them 0.4000)" in lines[0]
  assert "city 80.00 %" in lines[1] and "(city, postcode) pairs 40.00 %" in lines[1]
  assert realism.format_realism({}) == []
  only = realism.format_realism({"ks_stat": 0.5, "in_train/city": 1.0})
  assert only == ["  KS vs U(0,1) 0.500", "  generated values seen in training: city 100.00 %"]
