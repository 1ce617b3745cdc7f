import pytest

from alala_jax import config as base
from alala_jax.data import datasets
from tests.conftest import Person


def _cfg(**data):
  c = base.base_config()
  for k, v in data.items():
    setattr(c.data, k, v)
  return c


def test_custom_schema_from_csv_with_deterministic_split(tmp_path):
  path = tmp_path / "people.csv"
  path.write_text("NAME,Height\n" + "".join(f"p{i},{1.5 + i / 100}\n" for i in range(50)))
  cfg = _cfg(schema="tests.conftest:Person", csv=str(path), columns="")
  a, b = datasets.load(cfg.data), datasets.load(cfg.data)
  assert a.cls is Person and len(a.train) == 45 and len(a.test) == 5
  assert a.test == b.test and a.train == b.train  # deterministic
  assert {p.name for p in a.train} | {p.name for p in a.test} == {f"p{i}" for i in range(50)}
  c = datasets.load(
    _cfg(schema="tests.conftest:Person", csv=str(path), columns="", split_seed=1).data
  )
  assert c.test != a.test


def test_synthetic_default_is_deterministic():
  cfg = _cfg(num_synthetic=200)
  assert datasets.load(cfg.data).train == datasets.load(cfg.data).train


@pytest.mark.parametrize(
  "schema, needle",
  [("nomodule", "must be 'module:ClassName'"), ("tests.conftest:Nope", "cannot import schema")],
)
def test_bad_schema_names(schema, needle):
  with pytest.raises(ValueError, match=needle):
    datasets.import_schema(schema)


def test_synthetic_data_needs_address_schema():
  with pytest.raises(ValueError, match="synthetic data set is for the Address schema"):
    datasets.load(_cfg(schema="tests.conftest:Person").data)
