"""`alala_jax.Synthesizer`: schema inference rules, and fit / sample / conditions / save / load /
report end to end on a tiny config (one fit shared by the module)."""

import dataclasses
import json
import os
import typing
from typing import Literal, Optional

import numpy as np
import pandas as pd
import pytest

from alala_jax import Synthesizer, synthesizer
from alala_jax import schema as sc
from alala_jax.data import synthetic
from alala_jax.data.csv_io import DataError


def _types(cls):
  return {k: v for k, v in typing.get_type_hints(cls).items()}


def test_infer_schema_from_csv_cells():
  rows = [
    {"zip": "05401", "number": "12", "lat": "44.5", "note": "", "w": ""},
    {"zip": "05402", "number": "7", "lat": "44.25", "note": "x", "w": "1.5"},
  ]
  cls = synthesizer.infer_schema(rows, ["zip", "number", "lat", "note", "w"], empty_is_missing=True)
  assert _types(cls) == {
    "zip": str,  # whole numbers stay strings, leading zeros kept
    "number": str,
    "lat": float,
    "note": str,  # an empty cell of a string column is the value ""
    "w": Optional[float],  # an empty cell of a float column is missing
  }
  assert "  w: Optional[float]" in synthesizer.schema_source(cls)


def test_infer_schema_from_a_dataframe_and_bad_columns():
  df = pd.DataFrame({"a": [1.5, np.nan], "b": ["x", None], "c": [1, 2], "d": ["p", "q"]})
  cls = synthesizer.infer_schema(df.to_dict("records"), list(df.columns))
  assert _types(cls) == {"a": Optional[float], "b": Optional[str], "c": str, "d": str}
  with pytest.raises(ValueError, match="'zip code' is not a Python identifier"):
    synthesizer.infer_schema([{"zip code": "1"}], ["zip code"])
  with pytest.raises(ValueError, match="column 'a' appears twice"):
    synthesizer.infer_schema([{"a": "1"}], ["a", "a"])


def test_bad_cells_name_line_and_field(tmp_path):
  path = tmp_path / "t.csv"
  path.write_text("name,x\na,1.5\nb,oops\n")
  cls = dataclasses.make_dataclass("T", [("name", str), ("x", float)])
  rows, cols, src, lines, _ = synthesizer._read_table(str(path))
  with pytest.raises(DataError, match=r"line 3, field 'x': not a finite number: 'oops'"):
    synthesizer._records(rows, cls, src, lines)
  with pytest.raises(DataError, match=r"field 'x': row 1: not a finite number: 'oops'"):
    synthesizer._records(rows, cls, "DataFrame")
  with pytest.raises(TypeError, match="takes a pandas DataFrame, a CSV path or a list"):
    Synthesizer(steps=1).fit(42)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
  recs = synthetic.synthetic_addresses(400, 10, 0)
  df = pd.DataFrame([dataclasses.asdict(r) for r in recs])
  df.loc[3, "lat"] = np.nan  # an Optional float column
  c = synthesizer.default_config(steps=4)
  c.model.latent_dim, c.model.char_dim, c.train.batch_size = 16, 4, 16
  c.model.string_scan = "grouped"
  c.eval.prior_records, c.eval.chunk = 100, 64
  c.data.categorical_max_share = 0.05  # city (12 values in 360 rows) and postcode categorical
  workdir = str(tmp_path_factory.mktemp("synth"))
  return Synthesizer(config=c, workdir=workdir, verbose=False).fit(df), df


@pytest.mark.slow
def test_fit_sample_conditions_save_load_report(fitted, tmp_path):
  synth, df = fitted
  splits = {
    json.loads(line)["split"] for line in open(os.path.join(synth.workdir, "metrics.jsonl"))
  }
  assert splits == {"train"}  # train.eval_every = 0: no periodic evaluation during fit
  hints = _types(synth.schema)
  assert hints == {**hints, "lat": Optional[float], "long": float, "number": str}
  out = synth.sample(7, seed=1)
  assert isinstance(out, pd.DataFrame) and list(out.columns) == list(df.columns) and len(out) == 7
  city = df.city.iloc[0]
  cond = synth.sample(5, conditions={"city": city}, candidates=32)
  assert (cond.city == city).all()
  refined = synth.sample(5, conditions={"city": city}, candidates=32, svi_steps=2)
  assert (refined.city == city).all() and not refined.drop(columns="city").equals(
    cond.drop(columns="city")
  )
  partial = pd.DataFrame({"city": [city, None], "postcode": [None, df.postcode.iloc[1]]})
  both = synth.sample(conditions=partial, candidates=32)
  assert both.city.iloc[0] == city and both.postcode.iloc[1] == df.postcode.iloc[1]
  assert synth.last_conditional_report.groups == 2
  recs = synth.sample(3, as_frame=False)
  assert dataclasses.is_dataclass(recs[0])
  path = str(tmp_path / "saved")
  synth.save(path)
  again = Synthesizer.load(path, verbose=False)
  pd.testing.assert_frame_equal(again.sample(6, seed=4), synth.sample(6, seed=4))
  res = synth.report(str(tmp_path / "report"), n=60)
  assert os.path.getsize(res["html"]) > 0 and set(res["figures"]) >= {"marginals"}
  with pytest.raises(RuntimeError, match="needs the training data"):
    again.report(str(tmp_path / "r2"))
  with pytest.raises(FileExistsError, match="holds a trained run"):
    Synthesizer(config=synth.config, workdir=synth.workdir, verbose=False).fit(df)


def test_schema_json_roundtrip_and_an_unsaveable_schema_fails_before_training():
  Lit = dataclasses.make_dataclass(
    "Lit", [("kind", Literal["a", "b"]), ("x", Optional[float]), ("s", str)]
  )
  back = synthesizer._schema_from_json(synthesizer._schema_to_json(Lit))
  assert _types(back) == _types(Lit)
  Nested = dataclasses.make_dataclass("Nested", [("inner", Lit)])
  with pytest.raises(sc.SchemaError, match="Nested.inner: the Synthesizer takes flat schemas"):
    Synthesizer(steps=1, verbose=False).fit([Nested(Lit("a", None, "q"))])


def test_csv_with_an_unclosed_quote_names_the_line(tmp_path):
  path = tmp_path / "q.csv"
  path.write_text('name,x\na,1.5\n"b,2.5\nc,3.5\n')
  with pytest.raises(DataError, match=r"line 3: a quoted cell opens in this row"):
    Synthesizer(steps=1, verbose=False).fit(str(path))
