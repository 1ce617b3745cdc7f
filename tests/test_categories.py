"""Category fields (not in the paper): low-cardinality strings decoded by one softmax over their
training values. Schema parsing, the codec, the automatic choice, the CSV check of Literal
fields, the decoder's likelihood against a numpy log-softmax, sampling, and the record task."""

import dataclasses
from typing import Literal, Optional

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from scipy import special

from alala_jax import config as base_config
from alala_jax import schema as sc
from alala_jax.data import codec, csv_io
from alala_jax.models.record import RecordModel
from alala_jax.nn import tree
from alala_jax.tasks import records as records_task


@dataclasses.dataclass
class Shop:
  name: str
  kind: Literal["bakery", "butcher", "grocer"]
  town: str
  district: Optional[str]
  tags: list[str]
  lat: float


def _shops(n=30):
  towns = ["ALBURY", "BARTON", "COVE"]
  return [
    Shop(
      name=f"shop {i}",
      kind=("bakery", "butcher", "grocer")[i % 3],
      town=towns[i % 3],
      district=None if i % 4 == 0 else f"d{i % 2}",
      tags=["x", "yy", "x"][: i % 4],
      lat=44.0 + 0.25 * i,
    )
    for i in range(n)
  ]


CATEGORICAL = ("town", "district", "tags.[]")


def test_schema_literal_and_named_fields_become_categories():
  root = sc.parse_schema(Shop, CATEGORICAL)
  by_key = {c.key: c for c in root.children}
  assert by_key["kind"] == sc.CategoryNode("kind", ("kind",), ("bakery", "butcher", "grocer"))
  assert by_key["town"] == sc.CategoryNode("town", ("town",))
  assert isinstance(by_key["district"].child, sc.CategoryNode)
  assert isinstance(by_key["tags"].child, sc.CategoryNode)
  assert isinstance(by_key["name"], sc.StringNode)
  assert sc.string_paths(root) == [("name",)]
  assert {sc.path_name(p) for p in sc.category_paths(root)} == {"kind", *CATEGORICAL}
  assert root.num_fields == sc.parse_schema(Shop).num_fields == 6  # a category weighs 1


@pytest.mark.parametrize(
  "categorical, needle",
  [
    (("nope",), r"\['nope'\] are not str fields"),
    (("lat",), "Shop.lat: only str fields can be categorical"),
    (("tags",), r"\['tags'\] are not str fields.*'tags.\[\]'"),
  ],
)
def test_schema_rejects_categorical_names_that_are_not_str_fields(categorical, needle):
  with pytest.raises(sc.SchemaError, match=needle):
    sc.parse_schema(Shop, categorical)


@pytest.mark.parametrize(
  "annotation, needle",
  [(Literal[1, 2], "must list string values"), (Literal["a", 3], "must list string values")],
)
def test_schema_rejects_bad_literals(annotation, needle):
  Bad = dataclasses.make_dataclass("Bad", [("ok", str), ("kind", annotation)])
  with pytest.raises(sc.SchemaError, match="Bad.kind: .*" + needle):
    sc.parse_schema(Bad)


def test_codec_roundtrip_counts_values_outside_the_categories():
  root = sc.parse_schema(Shop, CATEGORICAL)
  train = _shops()
  spec = codec.build_spec(root, train)
  assert spec.categories["kind"] == ["bakery", "butcher", "grocer"]  # the Literal's order
  assert spec.categories["town"] == ["ALBURY", "BARTON", "COVE"]
  assert spec.categories["district"] == ["d0", "d1"]  # absent values are no category
  assert spec.categories["tags.[]"] == ["x", "yy"]
  assert "town" not in spec.max_len and "name" in spec.max_len
  arrays, report = codec.encode(root, spec, train)
  assert report.oov_values == 0  # None (absent districts) is not a value outside
  chex.assert_shape([arrays["town"], arrays["district"]["value"]], [(30,), (30,)])
  assert codec.decode(root, spec, arrays) == train
  new = dataclasses.replace(train[1], town="ZED", district="d9", tags=["x", "q"])
  arrays, report = codec.encode(root, spec, [new])
  assert report.oov_values == 3 and int(arrays["town"][0]) == codec.OOV_VALUE
  back = codec.decode(root, spec, arrays)[0]
  assert (back.town, back.district, back.tags) == (codec.OOV_CHAR, codec.OOV_CHAR, ["x", "\ufffd"])
  assert codec.DataSpec.from_json(spec.to_json()) == spec


def test_spec_without_categories_still_loads_and_mismatch_is_an_error():
  @dataclasses.dataclass
  class Named:
    name: str

  old = '{"chars": "ab", "max_items": {}, "max_len": {"name": 3}}'  # written before categories
  spec = codec.DataSpec.from_json(old)
  assert spec.categories == {}
  codec.check_categories(sc.parse_schema(Named), spec)
  with pytest.raises(
    ValueError, match=r"spec has category fields \[\] but the schema has \['name'\]"
  ):
    codec.check_categories(sc.parse_schema(Named, ["name"]), spec)


def test_choose_categorical_follows_both_thresholds():
  root = sc.parse_schema(Shop)
  shops = _shops(300)  # name: 300 distinct; town 3; district 2 (and absent ones); tags.[] 2
  names, note = codec.choose_categorical(root, shops, max_values=10, max_share=0.02)
  assert names == ["town", "district", "tags.[]"]
  assert "town (3)" in note and "character-level: name (300)" in note
  names, _ = codec.choose_categorical(root, shops, max_values=2, max_share=0.02)
  assert names == ["district", "tags.[]"]  # 3 towns; absent districts are no value
  names, _ = codec.choose_categorical(root, shops[:100], max_values=10, max_share=0.02)
  # 3 towns > 0.02 x 100 rows, 2 districts > 0.02 x 75 present ones, 2 tags <= 0.02 x 150
  assert names == ["tags.[]"]


def test_csv_rejects_a_value_outside_a_literal_field(tmp_path):
  @dataclasses.dataclass
  class Row:
    kind: Literal["a", "b"]
    x: float

  path = tmp_path / "rows.csv"
  path.write_text("kind,x\na,1\nc,2\n")
  with pytest.raises(csv_io.DataError, match=r"line 3, field 'kind': 'c' is not one of"):
    csv_io.read_csv(path, Row)
  rows, report = csv_io.read_csv(path, Row, on_bad_row="skip")
  assert rows == [Row("a", 1.0)] and report.rows_skipped == 1


def _category_module(n_values=5, h=6):
  cfg = tree.ModelConfig(vocab_size=4, max_len=(), categories=(("c", n_values),), latent_dim=h)
  return tree.CategoryField(sc.CategoryNode("c", ("c",)), cfg)


def test_category_loss_is_the_softmax_cross_entropy():
  mod = _category_module()
  emb = jax.random.normal(jax.random.key(0), (7, 6))
  target = jnp.array([0, 1, 2, 3, 4, 4, 1])
  ctx = tree.DecodeContext(1.0, 1.0)
  rngs = {"params": jax.random.key(1), "sample": jax.random.key(2)}
  v = mod.init(rngs, emb, target, None, ctx, method="decode")
  out = mod.apply(v, emb, target, None, ctx, method="decode", rngs={"sample": jax.random.key(3)})
  p = v["params"]["logits"]
  logits = np.asarray(emb, np.float64) @ np.asarray(p["kernel"]) + np.asarray(p["bias"])
  want = -special.log_softmax(logits, -1)[np.arange(7), np.asarray(target)]
  np.testing.assert_allclose(out.loss, want, rtol=1e-5)
  np.testing.assert_allclose(out.nll, want, rtol=1e-5)
  np.testing.assert_allclose(out.fields["c"], want, rtol=1e-5)
  assert float(jnp.sum(out.chars)) == 0.0  # no characters: BPC counts strings only


def test_category_sampling_follows_the_softmax_and_never_emits_outside():
  mod = _category_module()
  emb = jnp.ones((4000, 6))
  ctx = tree.DecodeContext(1.0, 1.0)
  v = mod.init(
    {"params": jax.random.key(1), "sample": jax.random.key(2)},
    emb,
    None,
    None,
    ctx,
    method="decode",
  )
  v = jax.tree.map(lambda a: a, v)
  v["params"]["logits"]["kernel"] = jnp.zeros_like(v["params"]["logits"]["kernel"])
  v["params"]["logits"]["bias"] = jnp.array([5.0, 0.0, 1.0, -1.0, 0.5])  # id 0: most likely
  sample = mod.apply(
    v, emb, None, None, ctx, method="decode", rngs={"sample": jax.random.key(4)}
  ).sample
  assert sample.dtype == jnp.int32 and int(jnp.min(sample)) >= 1
  freq = np.bincount(np.asarray(sample), minlength=5)[1:] / 4000
  want = special.softmax([0.0, 1.0, -1.0, 0.5])
  np.testing.assert_allclose(freq, want, atol=0.03)
  greedy = mod.apply(
    v,
    emb[:3],
    None,
    None,
    ctx._replace(greedy=True),
    method="decode",
    rngs={"sample": jax.random.key(4)},
  ).sample
  assert np.all(np.asarray(greedy) == 2)


def test_record_model_with_categories_trains_and_generates_valid_values():
  root = sc.parse_schema(Shop, CATEGORICAL)
  train = _shops()
  spec = codec.build_spec(root, train)
  x, _ = codec.encode(root, spec, train[:8])
  cfg = records_task.model_config(
    spec, ml_collections.ConfigDict(dict(latent_dim=8, char_dim=4, tuple_type="tuple"))
  )
  assert dict(cfg.categories) == {"kind": 4, "town": 4, "district": 3, "tags.[]": 3}
  model = RecordModel(root, cfg, p_tuple=optax.constant_schedule(0.5))
  v = jax.jit(model.init)(jax.random.key(0), x)

  def loss(params):
    vv = {**v, "params": params}
    q, aux = model.encode(vv, x)
    return jnp.mean(model.recon(vv, x, q.mean, aux, key=jax.random.key(1)).loss)

  labels = model.partition(v["params"])["body"]["kids_2"]  # town: read by the encoder only
  assert labels["value_embedding"]["embedding"] == "encoder"
  assert labels["logits"]["kernel"] == "decoder"
  value, grads = jax.jit(jax.value_and_grad(loss))(v["params"])
  assert np.isfinite(value)
  g_town = grads["body"]["kids_2"]["logits"]["kernel"]
  assert float(jnp.abs(g_town).sum()) > 0  # the town's softmax is trained
  out = jax.jit(lambda v, z, k: model.decode(v, z, k))(
    v, jax.random.normal(jax.random.key(5), (50, 8)), jax.random.key(6)
  )
  recs = codec.decode(root, spec, out)
  assert {r.town for r in recs} <= set(spec.categories["town"])
  assert {r.kind for r in recs} <= {"bakery", "butcher", "grocer"}
  assert {t for r in recs for t in r.tags} <= {"x", "yy"}


def test_record_task_chooses_categories_and_reloads_them_from_the_spec(tmp_path):
  c = base_config.smoke(base_config.base_config())
  c.data.num_synthetic = 300
  c.data.categorical = "auto"
  c.data.categorical_max_share = 0.2
  task = records_task.RecordTask.from_config(c)
  chosen = {sc.path_name(p) for p in sc.category_paths(task.root)}
  assert {"city", "postcode", "unit"} <= chosen and "street" not in chosen
  assert "categorical fields (auto" in task.notes()[0]
  task.save(str(tmp_path))
  c2 = base_config.smoke(base_config.base_config())  # categorical '' in the config: spec wins
  again = records_task.RecordTask.without_data(c2, str(tmp_path))
  assert again.root == task.root and again.spec == task.spec
  with pytest.raises(sc.SchemaError, match="Address.*lat.*only str fields"):
    c.data.categorical = "lat"
    records_task.RecordTask.from_config(c)
