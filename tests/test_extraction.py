"""The repeated encode/decode extraction audit (paper 000 App E) in the end-of-run evaluation
and the quality report (alala_jax/evaluate.py, alala_jax/report.py) on the tiny test config.

The model is untrained (its parameters at initialisation): the test checks the wiring, the keys
and the printed lines, not the rates' values, which the pure function's tests in
tests/test_privacy.py check. Losses and the membership AUC are stubbed out (they compile
programs of their own and are covered by tests/test_train.py's end-to-end test).
"""

import copy
import dataclasses

import jax
import numpy as np
import pytest

from alala_jax import analysis, evaluate, report
from alala_jax.data import batching, text_format
from alala_jax.metrics import privacy
from alala_jax.schema import Address
from alala_jax.train import loop
from experiments.configs import test as test_config


@pytest.fixture(scope="module")
def config():
  c = test_config.get_config()
  c.eval.generation_prior = "tracked"  # no prior fitting: the audit runs on its records
  return c


@pytest.fixture(scope="module")
def untrained(config):
  task = loop.prepare(config)
  state = task.trainer.create_state(0, batching.batch_at(task.train_arrays, 0, 16, 0))
  return task, state


def _stub_losses(monkeypatch):
  losses = {f"{s}/{k}": 1.0 for s in ("train", "test", "generated") for k in ("loss", "bpc")}
  monkeypatch.setattr(evaluate, "loss_report", lambda *a, **k: dict(losses))
  monkeypatch.setattr(evaluate, "membership_auc", lambda *a, **k: {"mia/auc": 0.5})


def test_evaluate_runs_the_extraction_audit(config, untrained, monkeypatch, tmp_path):
  task, state = untrained
  _stub_losses(monkeypatch)
  calls = []
  real = analysis.repeated_encode_decode

  def spy(task_, state_, records, rounds, *args, **kwargs):
    out = real(task_, state_, records, rounds, *args, **kwargs)
    calls.append((len(records), rounds, [len(r) for r in out]))
    return out

  monkeypatch.setattr(analysis, "repeated_encode_decode", spy)
  train, test = task.data.train, task.data.test
  res = evaluate.evaluate(
    task, state, train, test, task.train_arrays, task.test_arrays, config, ({"tracked": None}, None)
  )
  ec = config.eval
  n = min(ec.privacy_records, ec.num_generated)  # 64 generated records, 3 rounds
  assert calls == [(n, ec.extraction_rounds, [n] * (ec.extraction_rounds + 1))]
  assert res["extraction/field"] == "street"  # 'auto' = eval.lev_field
  assert res["extraction/rounds"] == ec.extraction_rounds and res["extraction/n_generated"] == n
  assert res["extraction/n_train_compared"] == len(train)
  assert res["extraction/n_holdout_compared"] == len(test)
  assert res["extraction/n_train_rare"] > 0 and res["extraction/n_holdout_rare"] > 0
  for r in range(ec.extraction_rounds + 1):
    for k in ("train_rare", "holdout_rare", "pvalue", "in_train"):
      v = res[f"extraction/{k}@{r}"]
      assert np.isfinite(v) and 0 <= v <= 1, (k, r, v)
    # the ratio is NaN exactly when no rare held-out value came back (documented)
    ratio = res[f"extraction/ratio@{r}"]
    assert np.isnan(ratio) == (res[f"extraction/holdout_rare@{r}"] == 0)
  summary = evaluate.format_summary(res)
  assert "extraction by repeated encoding/decoding (App E) of 64 generated records" in summary
  assert "  extraction: " in summary and "after 3 rounds" in summary
  # the quality report's privacy section (its figures: tests/test_report.py) shows the keys and
  # the verdict
  assert {k for k in res if k.startswith("extraction/")} <= set(report.privacy_lines(res))
  page = open(report.write_html(str(tmp_path / "index.html"), "t", {}, [], res)).read()
  assert "<code>extraction/train_rare@3</code>" in page and "extraction: " in page


def test_extraction_audit_verdict_with_a_copying_model(config, monkeypatch):
  """A fake model whose rounds drift onto the training records (App E's observation): the
  audit reads the rounds' street values and says it memorises. No network runs."""
  from alala_jax.data.synthetic import synthetic_addresses

  recs = synthetic_addresses(2000, num_zips=100, seed=0)  # many streets occur once
  train, test = recs[:1800], recs[1800:]
  gen = synthetic_addresses(300, num_zips=100, seed=1)
  copies = [train[i] for i in np.random.default_rng(0).choice(len(train), 600, replace=False)]

  def fake(task, state, records, rounds, key, chunk, greedy):
    assert len(records) == 300 and rounds == 2
    return [list(records), records[:150] + copies[:150], copies[:300]]

  monkeypatch.setattr(analysis, "repeated_encode_decode", fake)
  c = copy.deepcopy(config)
  c.eval.extraction_rounds, c.eval.privacy_records = 2, 300
  res = evaluate.extraction_audit(None, None, train, test, gen, c, jax.random.key(0))
  assert res["extraction/field"] == "street" and res["extraction/n_holdout_rare"] > 0
  assert res["extraction/train_rare@2"] > res["extraction/holdout_rare@2"]
  (line,) = [s for s in privacy.format_privacy(res) if s.startswith("  extraction:")]
  assert "memorises more than the held-out baseline" in line, line
  # off: no rounds, no field, no held-out records
  c.eval.extraction_rounds = 0
  assert evaluate.extraction_audit(None, None, train, test, gen, c, None) == {}
  c.eval.extraction_rounds, c.eval.extraction_field = 2, ""
  assert evaluate.extraction_audit(None, None, train, test, gen, c, None) == {}
  c.eval.extraction_field = "street"
  assert evaluate.extraction_audit(None, None, train, [], gen, c, None) == {}
  c.eval.extraction_rounds = -1
  with pytest.raises(ValueError, match="extraction_rounds"):
    evaluate.extraction_audit(None, None, train, test, gen, c, None)


def test_extraction_field_choice_and_text_lines(config):
  from alala_jax.data.synthetic import synthetic_addresses

  recs = synthetic_addresses(200, num_zips=4, seed=0)
  c = copy.deepcopy(config)
  assert evaluate.extraction_field(c, recs) == "street"
  c.eval.lev_field = ""  # auto: the string field with the most distinct values
  distinct = {
    f.name: len({getattr(r, f.name) for r in recs})
    for f in dataclasses.fields(Address)
    if f.type in (str, "str")
  }
  assert evaluate.extraction_field(c, recs) == max(distinct, key=distinct.get)
  c.eval.extraction_field = "city"
  assert evaluate.extraction_field(c, recs) == "city"
  for bad in ("lat", "street,lat"):
    c.eval.extraction_field = bad
    with pytest.raises(ValueError, match=r"\['lat'\] not string fields"):
      evaluate.extraction_field(c, recs)
  # a comma list: the fields' values as tuples (whole addresses)
  c.eval.extraction_field = "number, street"
  assert evaluate.extraction_field(c, recs) == "number,street"
  assert evaluate.field_values(recs[:2], "number,street", c) == [
    (r.number, r.street) for r in recs[:2]
  ]
  # App F text lines: parsed for the field's values, a malformed line has none
  c.eval.extraction_field = "auto"
  c.data.format = "text"
  fmt = text_format.from_config(c.data, Address)
  lines = fmt.to_texts(recs) + [text_format.CsvText("not,a,line")]
  assert evaluate.extraction_field(c, lines) == max(distinct, key=distinct.get)
  c.eval.lev_field = "street"
  assert evaluate.extraction_field(c, lines) == "street"
  assert evaluate.field_values(lines, "street", c) == [r.street for r in recs] + [None]
