"""The quality report (alala_jax/report.py) on synthetic records: no model is trained."""

import dataclasses
import os
import re

import numpy as np
import pytest
from scipy import stats

from alala_jax import config as config_lib
from alala_jax import report
from alala_jax.data.synthetic import synthetic_addresses
from alala_jax.metrics import pvalue

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def data():
  """(train, test, generated): generated = other synthetic draws of the same zips, coordinates
  jittered so that their p-values are not uniform."""
  recs = synthetic_addresses(500, num_zips=6, seed=0)
  train, test = recs[:400], recs[400:]
  rng = np.random.default_rng(1)
  gen = [
    dataclasses.replace(r, lat=r.lat + float(rng.normal(0, 0.1)), street=r.street.lower())
    for r in synthetic_addresses(300, num_zips=6, seed=0)[::-1]
  ]
  return train, test, gen


def _pngs(out_dir):
  return sorted(f for f in os.listdir(out_dir) if f.endswith(".png"))


def _pvalues(train, records):
  zs = pvalue.fit_zip_stats([r.postcode for r in train], [[r.lat, r.long] for r in train])
  return pvalue.zip_pvalues(zs, [r.postcode for r in records], [[r.lat, r.long] for r in records])


def _extraction(train, test, gen):
  """The repeated encode/decode extraction keys (paper 000 App E) of a "model" whose last round
  copies the training records' streets."""
  from alala_jax.metrics import privacy as privacy_lib

  streets = lambda rs: [r.street for r in rs]
  rounds = [streets(gen), streets(gen[:150]) + streets(train[:150]), streets(train)]
  ext = privacy_lib.extraction_rates(rounds, streets(train), streets(test))
  assert ext["extraction/train_rare@2"] == 1.0 and ext["extraction/n_holdout_rare"] > 0
  return {**ext, "extraction/field": "street"}


def test_report_writes_figures_and_html(tmp_path, data):
  train, test, gen = data
  ext = _extraction(train, test, gen)
  privacy = {
    "step": 7,
    "dcr/share_closer_to_train": 0.51,
    "mia/auc": 0.5,
    **ext,
    "exact_copy_rate": 0.0,
    "pvalue/mean": 0.4,
  }
  res = report.quality_report(
    train, test, gen, config_lib.base_config(), str(tmp_path), privacy=privacy, title="t<&>"
  )
  assert res["skipped"] == {}
  assert set(res["figures"]) == {"pvalues", "map", "marginals"}
  pngs = _pngs(tmp_path)
  assert pngs == sorted(os.path.basename(p) for p in res["figures"].values())
  for f in pngs:
    assert (tmp_path / f).read_bytes()[:8] == PNG
  page = (tmp_path / "index.html").read_text()
  assert res["html"] == str(tmp_path / "index.html")
  assert set(re.findall(r"src='([^']+\.png)'", page)) == set(pngs)
  assert "t&lt;&amp;&gt;" in page  # the title is escaped
  # the privacy lines, and only they, from the evaluation dict: the extraction keys in the
  # evaluation's order (round by round)
  assert res["privacy"] == {
    "dcr/share_closer_to_train": 0.51,
    "mia/auc": 0.5,
    **ext,
    "exact_copy_rate": 0.0,
  }
  assert list(res["privacy"]) == ["dcr/share_closer_to_train", "mia/auc", *ext, "exact_copy_rate"]
  for k in res["privacy"]:
    assert f"<code>{k}</code>" in page
  assert "at step 7" in page
  # the extraction audit's descriptions, lines and verdict
  assert "share of rare training values reproduced after 2 rounds" in page
  assert "held-out values reproduced after 2 rounds (baseline)" in page
  assert "extraction by repeated encoding/decoding (App E) of 300 generated records" in page
  assert "extraction: memorises more than the held-out baseline: after 2 rounds" in page
  assert "(no row): unit = ''" in page.replace("&#x27;", "'")  # always-empty fields
  n = res["numbers"]
  assert (n["records/train"], n["records/test"], n["records/generated"]) == (400, 100, 300)
  assert n["map/generated_outside"] >= 0
  assert 0 <= n["in_train/street"] < 0.5  # lower-cased streets are mostly unseen


def test_report_numbers_match_scipy(tmp_path, data):
  train, test, gen = data
  res = report.quality_report(train, test, gen, config_lib.base_config(), str(tmp_path))
  n = res["numbers"]
  p_gen, p_held = _pvalues(train, gen), _pvalues(train, test)
  ks = stats.kstest(p_gen, "uniform")
  ks_held = stats.kstest(p_held, "uniform")
  np.testing.assert_allclose(n["ks_stat"], ks.statistic, rtol=1e-12)
  np.testing.assert_allclose(n["ks_pvalue"], ks.pvalue, rtol=1e-9)
  np.testing.assert_allclose(n["heldout/ks_stat"], ks_held.statistic, rtol=1e-12)
  np.testing.assert_allclose(n["pvalue/mean"], p_gen.mean(), rtol=1e-12)
  np.testing.assert_allclose(n["heldout/pvalue/mean"], p_held.mean(), rtol=1e-12)
  assert n["ks_stat"] > n["heldout/ks_stat"]  # the jittered records are worse than real ones
  assert f"{n['ks_stat']:.4g}" in (tmp_path / "index.html").read_text()
  # the top values' total-variation share of a field, recomputed
  real = [r.city for r in train]
  gens = [g.city for g in gen]
  share = lambda vs, v: vs.count(v) / len(vs)
  vals = sorted(set(real) | set(gens), key=lambda v: (-max(share(real, v), share(gens, v)), v))
  tv = 0.5 * sum(abs(share(real, v) - share(gens, v)) for v in vals[: report.TOP_VALUES])
  np.testing.assert_allclose(n["marginals/city/top_tv"], tv, rtol=1e-12)


def test_pvalues_skipped_without_zip_field(tmp_path, data):
  train, test, gen = data
  config = config_lib.base_config()
  config.eval.zip_field = ""
  (tmp_path / report.PVALUES_PNG).write_bytes(PNG)  # an earlier report's figure goes
  res = report.quality_report(train, test, gen, config, str(tmp_path))
  assert "pvalues" not in res["figures"] and "zip_field is empty" in res["skipped"]["pvalues"]
  assert not (tmp_path / report.PVALUES_PNG).exists()
  assert "ks_stat" not in res["numbers"]
  page = (tmp_path / "index.html").read_text()
  assert "zip_field is empty" in page
  # the map still shows the coordinates, in one colour per panel
  assert set(_pngs(tmp_path)) == {report.MAP_PNG, report.MARGINALS_PNG}
  assert "No privacy numbers" in page


@dataclasses.dataclass
class Word:
  text: str
  tag: str


def test_records_without_floats_get_marginals(tmp_path):
  train = [Word(f"w{i % 7}", "ab"[i % 2]) for i in range(60)]
  gen = [Word(f"w{i % 5}x", "abc"[i % 3]) for i in range(40)]
  res = report.quality_report(train, [], gen, config_lib.base_config(), str(tmp_path))
  assert list(res["figures"]) == ["marginals"]
  assert set(res["skipped"]) == {"pvalues", "map"}
  assert _pngs(tmp_path) == [report.MARGINALS_PNG]
  assert (tmp_path / report.MARGINALS_PNG).read_bytes()[:8] == PNG
  page = (tmp_path / "index.html").read_text()
  assert f"src='{report.MARGINALS_PNG}'" in page
  assert "no numeric coordinates" in page
  assert res["numbers"]["in_train/text"] == 0.0 and res["numbers"]["in_train/tag"] == 27 / 40


def test_zip_colours_shared_and_cycled():
  colours = report.zip_colours(["b", "a", "b", "c"], ["z", "a"])
  assert list(colours) == ["b", "a", "c", "z"]  # by training frequency, then unseen zips
  many = report.zip_colours([f"{i:02d}" for i in range(25)])
  assert many["00"] == many["20"] and many["00"] != many["01"]


def test_field_kinds():
  strs, nums = report.field_kinds(synthetic_addresses(5, 2, 0))
  assert nums == ["lat", "long"]
  assert strs == ["number", "street", "unit", "city", "district", "region", "postcode"]


def test_text_lines_are_parsed(tmp_path, data):
  """App F text records: parsed for the figures; a malformed generated line scores p = 0."""
  from alala_jax.data import text_format

  train, test, gen = data
  config = config_lib.base_config()
  config.data.format = "text"
  fmt = text_format.from_config(config.data, type(train[0]))
  lines = fmt.to_texts(gen) + [text_format.CsvText("not,a,line")]
  res = report.quality_report(fmt.to_texts(train), fmt.to_texts(test), lines, config, str(tmp_path))
  assert set(res["figures"]) == {"pvalues", "map", "marginals"}
  n = res["numbers"]
  assert n["generated_malformed"] == 1 and n["records/generated"] == len(gen) + 1
  parsed = [fmt.parse(g) for g in lines[:-1]]
  expected = np.append(_pvalues([fmt.parse(t) for t in fmt.to_texts(train)], parsed), 0.0)
  np.testing.assert_allclose(n["pvalue/mean"], expected.mean(), rtol=1e-12)
