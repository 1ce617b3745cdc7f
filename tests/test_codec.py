import dataclasses
from typing import Optional

import numpy as np

from alala_jax import schema as sc
from alala_jax.data import codec, synthetic
from tests.conftest import Person, Tagged


def test_address_roundtrip_keeps_whitespace_and_leading_zeros():
  recs = synthetic.synthetic_addresses(50, seed=3)
  recs[0].street = "MAIN   ST  "  # runs of spaces are data
  recs[1].postcode = "05001"
  root = sc.parse_schema(sc.Address)
  spec = codec.build_spec(root, recs)
  arrays, report = codec.encode(root, spec, recs)
  assert report == codec.EncodeReport()
  assert arrays["street"]["chars"].shape == (50, spec.max_len["street"] + 1)
  assert arrays[sc.FLOATS_KEY].shape == (50, 2)
  back = codec.decode(root, spec, arrays)
  for a, b in zip(recs, back):
    assert (a.street, a.postcode, a.number, a.city) == (b.street, b.postcode, b.number, b.city)
    np.testing.assert_allclose([a.lat, a.long], [b.lat, b.long], rtol=1e-6)


def test_strings_end_with_end_token_and_are_padded_per_field():
  root = sc.parse_schema(sc.Address)
  recs = synthetic.synthetic_addresses(20, seed=1)
  spec = codec.build_spec(root, recs)
  arrays, _ = codec.encode(root, spec, recs)
  assert spec.max_len["postcode"] == 5 and spec.max_len["unit"] == 1
  ch, ln = arrays["street"]["chars"], arrays["street"]["length"]
  for row, n in zip(ch, ln):
    assert (row[:n] >= 2).all() and (row[n:] == codec.END_ID).all()


def test_oov_and_truncation_are_counted():
  root = sc.parse_schema(sc.Address)
  recs = synthetic.synthetic_addresses(20, seed=1)
  spec = codec.build_spec(root, recs)
  bad = [dataclasses.replace(r) for r in recs[:2]]
  bad[0].street = "ÄÖ ST"  # 2 characters outside the vocab
  bad[1].city = spec.chars[-1] * (spec.max_len["city"] + 3)  # too long
  arrays, report = codec.encode(root, spec, bad)
  assert report.oov_chars == 2 and report.truncated_strings == 1
  out = codec.decode(root, spec, arrays)
  assert out[0].street == codec.OOV_CHAR * 2 + " ST"
  assert len(out[1].city) == spec.max_len["city"]


def test_nested_list_optional_roundtrip():
  root = sc.parse_schema(Tagged)
  recs = [
    Tagged("a", Person("ann", 1.5), ["x", "yy"], None, 1.0, 2.0),
    Tagged("bb", Person("bo", 1.75), [], "b", 3.0, -1.0),
    Tagged("", Person("", 0.0), ["zzz"], "", 0.5, 0.25),
  ]
  spec = codec.build_spec(root, recs)
  arrays, report = codec.encode(root, spec, recs)
  assert spec.max_items == {"tags": 2}
  assert arrays["tags"]["items"]["chars"].shape == (3, 2, spec.max_len["tags.[]"] + 1)
  np.testing.assert_array_equal(arrays["tags"]["count"], [2, 0, 1])
  np.testing.assert_array_equal(arrays["nickname"]["present"], [0, 1, 1])
  assert codec.decode(root, spec, arrays) == recs
  assert codec.decode(root, spec, arrays, as_dict=True)[0]["owner"]["name"] == "ann"


def test_optional_and_list_floats_roundtrip():
  @dataclasses.dataclass
  class Reading:
    site: str
    value: Optional[float]
    history: list[float]
    x: float

  root = sc.parse_schema(Reading)
  recs = [Reading("a", 1.5, [0.25, 2.0], 3.0), Reading("b", None, [], -1.0)]
  spec = codec.build_spec(root, recs)
  arrays, _ = codec.encode(root, spec, recs)
  np.testing.assert_array_equal(arrays["value"]["value"], [[1.5], [0.0]])
  np.testing.assert_array_equal(arrays["history"]["items"][:, :, 0], [[0.25, 2.0], [0.0, 0.0]])
  assert codec.decode(root, spec, arrays) == recs
