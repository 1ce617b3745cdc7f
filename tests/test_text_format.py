"""The comma-separated text model of paper 000 App F: the line format, malformed lines, the
one-field model, and the p-value with malformed lines scored 0."""

import dataclasses

import jax
import numpy as np
import pytest

from alala_jax import config as base
from alala_jax import evaluate
from alala_jax import schema as sc
from alala_jax.data import codec, datasets, synthetic, text_format
from alala_jax.metrics import pvalue
from alala_jax.nn import tree, vae
from alala_jax.schema import Address

FIELDS = ("number", "street", "city", "postcode", "lat", "long")


@pytest.fixture(scope="module")
def fmt():
  return text_format.TextFormat(Address, FIELDS, 5)


def test_lines_round_trip_with_coordinates_rounded(fmt):
  recs = synthetic.synthetic_addresses(50, 5, 0)
  for r in recs:
    line = fmt.to_text(r)
    assert line.text == (f"{r.number},{r.street},{r.city},{r.postcode},{r.lat:.5f},{r.long:.5f}")
    back = fmt.parse(line)
    assert (back.number, back.street, back.city, back.postcode) == (
      r.number,
      r.street,
      r.city,
      r.postcode,
    )
    assert back.lat == round(r.lat, 5) and back.long == round(r.long, 5)
    assert back.unit == back.district == back.region == ""  # omitted string fields


@pytest.mark.parametrize(
  "line, ok",
  [
    ("12,MAIN ST,BURLINGTON,05401,44.47,-73.21", True),
    ("12,MAIN ST,BURLINGTON,05401,44.47", False),  # too few values
    ("12,MAIN ST,BURLINGTON,05401,44.4x7,-73.21", False),  # not a float
    ("12,MAIN ST,BURLINGTON,05401,44.47,", False),  # empty float
    ("12,MAIN,ST,BURLINGTON,05401,44.47,-73.21", True),  # extra value: tolerated
    ("", False),
  ],
)
def test_malformed_rule(fmt, line, ok):
  rec = fmt.parse(line)
  assert (rec is not None) == ok
  if ok:  # float fields are the last values, string fields the first (module docstring)
    assert (rec.lat, rec.long, rec.number) == (44.47, -73.21, "12")


def test_format_errors_name_the_problem(fmt):
  with pytest.raises(ValueError, match="not fields of Address"):
    text_format.TextFormat(Address, ("number", "zip", "lat", "long"))
  with pytest.raises(ValueError, match="omits the non-string fields"):
    text_format.TextFormat(Address, ("number", "street", "lat"))
  with pytest.raises(ValueError, match="must come last"):
    text_format.TextFormat(Address, ("lat", "number", "long"))
  bad = dataclasses.replace(synthetic.synthetic_addresses(1, 1, 0)[0], street="A, B")
  with pytest.raises(ValueError, match="record 3: field 'street'"):
    fmt.to_text(bad, 3)
  c = base.base_config()
  c.data.format = "csv"
  with pytest.raises(ValueError, match="unknown data.format"):
    text_format.from_config(c.data, Address)


def test_dataset_becomes_lines_and_the_model_is_the_string_literal_alone():
  c = base.base_config()
  c.data.format, c.data.num_synthetic = "text", 200
  data = datasets.load(c.data)
  assert data.cls is text_format.CsvText and datasets.model_cls(c.data) is text_format.CsvText
  assert data.text.parse(data.train[0]) is not None and "comma-separated" in data.notes
  root = sc.parse_schema(text_format.CsvText)
  spec = codec.build_spec(root, data.train)
  arrays, _ = codec.encode(root, spec, data.train[:4])
  cfg = tree.ModelConfig(
    vocab_size=spec.vocab_size,
    max_len=tuple(sorted(spec.max_len.items())),
    latent_dim=8,
    char_dim=4,
  )
  model = vae.RecordVAE(root, cfg)
  k = jax.random.key(0)
  params = model.init({"params": k, "latent": k, "sample": k}, arrays, 1.0, 1.0)["params"]
  assert set(params) == {"literal", "sigma_net"}  # no Tuple around the one field
  assert isinstance(tree.build(root, None, cfg), tree.Single)


def test_pvalue_report_scores_malformed_lines_zero(fmt):
  recs = synthetic.synthetic_addresses(400, 4, 1)
  train = fmt.to_texts(recs)
  gen = fmt.to_texts(recs[:6]) + [
    text_format.CsvText("1,A,B"),
    text_format.CsvText("1,A,B,05401,x,y"),
  ]
  c = base.base_config()
  c.data.format = "text"
  got = evaluate.pvalue_report(train, gen, c)
  parsed = [fmt.parse(t) for t in train]
  zs = pvalue.fit_zip_stats(
    [r.postcode for r in parsed], np.array([[r.lat, r.long] for r in parsed])
  )
  ok = [fmt.parse(t) for t in gen[:6]]
  p = np.concatenate(
    [
      pvalue.zip_pvalues(zs, [r.postcode for r in ok], np.array([[r.lat, r.long] for r in ok])),
      [0.0, 0.0],
    ]
  )
  assert got["malformed_count"] == 2 and got["malformed_rate"] == 0.25
  np.testing.assert_allclose(got["pvalue/mean"], p.mean(), rtol=1e-12)
  np.testing.assert_allclose(got["pvalue/median"], np.median(p), rtol=1e-12)
  assert got["pvalue/mean"] > 0
