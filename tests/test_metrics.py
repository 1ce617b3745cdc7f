import itertools

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from alala_jax.metrics import pvalue, text
from tests.conftest import vermont_or_skip


def test_pvalue_matches_scipy_loop():
  rng = np.random.default_rng(0)
  zips = ["A"] * 30 + ["B"] * 20 + ["C"]
  coords = np.concatenate(
    [
      rng.normal([44, -72], [0.1, 0.3], (30, 2)),
      rng.multivariate_normal([43, -73], [[0.02, 0.01], [0.01, 0.03]], 20),
      [[42.0, -71.0]],
    ]
  )
  zs = pvalue.fit_zip_stats(zips, coords)
  q_zips = ["A", "B", "B", "C", "Z", "A"]
  q = np.array(
    [[44.05, -72.1], [43.1, -73.2], [45.0, -70.0], [42.0, -71.0], [44, -72], [44.0, -72.0]]
  )
  got = pvalue.zip_pvalues(zs, q_zips, q)
  for i, (z, x) in enumerate(zip(q_zips, q)):
    rows = coords[np.array(zips) == z]
    if len(rows) < 2:
      assert got[i] == 0.0  # unseen zip or a single row: p = 0 by convention
      continue
    vi = np.linalg.inv(np.cov(rows, rowvar=False, ddof=1))
    d2 = distance.mahalanobis(x, rows.mean(0), vi) ** 2
    assert got[i] == pytest.approx(1 - stats.chi2.cdf(d2, 2), rel=1e-9)


def test_singular_covariance_scores_zero():
  zs = pvalue.fit_zip_stats(["A"] * 3, np.array([[1.0, 2.0]] * 3))
  assert pvalue.zip_pvalues(zs, ["A"], np.array([[1.0, 2.0]]))[0] == 0.0


def test_pvalues_of_gaussian_data_are_uniform():
  rng = np.random.default_rng(1)
  x = rng.multivariate_normal([0, 0], [[1, 0.5], [0.5, 2]], 20000)
  zs = pvalue.fit_zip_stats(["A"] * 20000, x)
  s = pvalue.summarize(pvalue.zip_pvalues(zs, ["A"] * 20000, x))
  assert s["mean"] == pytest.approx(0.5, abs=0.01)
  assert s["std"] == pytest.approx(1 / np.sqrt(12), abs=0.01)


def test_vermont_against_itself_reproduces_reference():
  from alala_jax import schema as sc
  from alala_jax.data import csv_io

  recs, _ = csv_io.read_csv(vermont_or_skip(), sc.Address, "long=LON")
  coords = np.array([[r.lat, r.long] for r in recs])
  zips = [r.postcode for r in recs]
  s = pvalue.summarize(pvalue.zip_pvalues(pvalue.fit_zip_stats(zips, coords), zips, coords))
  assert (round(s["mean"], 4), round(s["median"], 4), round(s["std"], 4)) == (
    0.5215,
    0.5352,
    0.2960,
  )


def _lev_recursive(a, b):
  if not a or not b:
    return len(a) + len(b)
  return min(
    _lev_recursive(a[1:], b) + 1,
    _lev_recursive(a, b[1:]) + 1,
    _lev_recursive(a[1:], b[1:]) + (a[0] != b[0]),
  )


def test_levenshtein_against_recursive_definition():
  words = ["", "A", "AB", "BA", "ABC", "CAB", "AAB"]
  for a, b in itertools.product(words, words):
    assert text.levenshtein(a, b) == _lev_recursive(a, b), (a, b)
    assert text.levenshtein_python(a, b) == _lev_recursive(a, b), (a, b)
  assert text.levenshtein("PAINT WORKS RD", "PAINT POIKS RD") == 2


def test_rapidfuzz_levenshtein_matches_the_python_one():
  """The C implementation d_Lev uses against the pure-Python programme, on random strings over
  a small alphabet (many near-matches) with non-ASCII characters and lengths 0-30."""
  rng = np.random.default_rng(0)
  alphabet = list("ABCab \u00e9\u00fc\u4e2d")
  word = lambda: "".join(rng.choice(alphabet, size=rng.integers(0, 31)))
  for _ in range(500):
    a, b = word(), word()
    assert text.levenshtein(a, b) == text.levenshtein_python(a, b), (a, b)


def test_levenshtein_per_char_rules():
  # 2 edits / 14 chars; empty original: reconstruction length / 1
  assert text.levenshtein_per_char(["PAINT WORKS RD", ""], ["PAINT POIKS RD", ""]) == pytest.approx(
    (2 / 14 + 0) / 2
  )
  assert text.levenshtein_per_char([""], ["AB"]) == 2.0


def test_independent_fields_baseline_keeps_marginals_breaks_correlation():
  from alala_jax.data import synthetic
  from alala_jax.metrics import baselines

  recs = synthetic.synthetic_addresses(3000, seed=5)
  fake = baselines.independent_fields(recs, 3000, seed=1)
  real_zips = {r.postcode for r in recs}
  assert {r.postcode for r in fake} <= real_zips
  real_pairs = {(r.lat, r.long) for r in recs}
  assert all((r.lat, r.long) in real_pairs for r in fake)  # floats sampled jointly
  coords = lambda rs: np.array([[r.lat, r.long] for r in rs])
  zs = pvalue.fit_zip_stats([r.postcode for r in recs], coords(recs))
  p_real = pvalue.zip_pvalues(zs, [r.postcode for r in recs], coords(recs)).mean()
  p_fake = pvalue.zip_pvalues(zs, [r.postcode for r in fake], coords(fake)).mean()
  assert p_real > 0.45 and p_fake < 0.1
