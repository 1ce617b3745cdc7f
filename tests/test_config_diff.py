"""`train.config_diff`: what a resumed run changed in its config (unit level; the refusal in
`loop.train` is tested in test_train.py)."""

import json

import ml_collections
import pytest

from alala_jax import config as config_lib
from alala_jax.train import config_diff


def _config(**train):
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.train = ml_collections.ConfigDict({"num_steps": 10, "log_every": 5, **train})
  c.model = ml_collections.ConfigDict({"sizes": (4, 8), "extra": {}})
  c.eval = ml_collections.ConfigDict({"num_generated": 100})
  return c


def test_flatten_names_every_leaf_by_its_path():
  assert config_diff.flatten({"a": {"b": {"c": 1}, "d": [1, 2]}, "e": {}, "f": None}) == {
    "a.b.c": 1,
    "a.d": [1, 2],
    "e": {},
    "f": None,
  }


def test_changes_compare_a_missing_key_with_the_library_default():
  saved = json.loads(_config().to_json())
  del saved["eval"]  # settings added after the run was trained: it ran with the defaults
  saved["model"]["gone"] = 3  # one the config no longer sets: not compared
  new = _config()
  new.model.sizes = (4, 16)  # a tuple against the JSON list of the saved file
  new.model.extra = {"x": 1}  # under an empty dict, and not a library setting: not compared
  new.eval.num_generated = 5
  default = config_lib.base_config().eval.num_generated
  assert config_diff.changes(saved, new) == [
    ("eval.num_generated", default, 5),
    ("model.sizes", [4, 8], [4, 16]),
  ]
  new.eval.num_generated = default  # the default itself is no change
  assert config_diff.changes(saved, new)[0][0] == "model.sizes"
  assert config_diff.changes(json.loads(_config().to_json()), _config()) == []
  v = json.loads(_config().to_json())  # a rule enabled on a run from before train.validation
  c = _config()
  c.train.validation = {"metric": "valid/bound"}
  assert config_diff.changes(v, c) == [("train.validation.metric", "", "valid/bound")]


@pytest.mark.parametrize(
  "key, ok",
  [
    ("train.num_steps", True),
    ("train.log_every", True),
    ("eval.num_generated", True),
    ("eval", False),  # only keys under eval.
    ("train.num_steps_extra", False),  # a prefix of a name is not the name
    ("train.batch_size", False),
    ("seed", False),
  ],
)
def test_resumable_keys(key, ok):
  assert config_diff.resumable(key) is ok


def test_check_logs_allowed_changes_and_refuses_the_rest(tmp_path):
  (tmp_path / "config.json").write_text(_config().to_json())
  logs = []
  config_diff.check(str(tmp_path), _config(num_steps=20), logs.append)
  assert logs == ["resuming with a changed config: train.num_steps: 10 -> 20"]
  with pytest.raises(config_diff.ConfigChangedError, match=r"train.batch_size: 1 -> 2"):
    (tmp_path / "config.json").write_text(_config(batch_size=1).to_json())
    config_diff.check(str(tmp_path), _config(batch_size=2), logs.append)
  logs.clear()
  config_diff.check(str(tmp_path), _config(batch_size=2, allow_config_change=True), logs.append)
  assert logs == [
    "resuming with a changed config: train.allow_config_change: False -> True",
    "resuming with a changed config: train.batch_size: 1 -> 2",
  ]


def test_check_without_a_record_passes_and_a_torn_one_is_named(tmp_path):
  config_diff.check(str(tmp_path), _config())  # no config.json: nothing to compare
  (tmp_path / "config.json").write_text('{"seed": 0,\n "train": {')
  with pytest.raises(config_diff.ConfigChangedError, match=r"config.json: line 2: not valid"):
    config_diff.check(str(tmp_path), _config())
