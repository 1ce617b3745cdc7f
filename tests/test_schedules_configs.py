import glob
import importlib.util
import os

import numpy as np
import pytest

from alala_jax.objectives import schedules

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "experiments", "configs")


def test_linear_beta_warmup():
  f = schedules.beta_schedule("linear", 1000, beta_start=0.0, beta_end=0.384)
  np.testing.assert_allclose([f(0), f(500), f(1000), f(5000)], [0, 0.192, 0.384, 0.384],
                             rtol=1e-6)


def test_warmup_then_cooldown():
  # augmented training (Sec 5): 0 -> 0.64 over the first half, then cool-down to 0.128
  f = schedules.beta_schedule("warmup_cooldown", 1000, 0.0, 0.64, 0.128, 0.5, 0.5)
  np.testing.assert_allclose([f(0), f(250), f(500), f(750), f(1000)],
                             [0, 0.32, 0.64, 0.384, 0.128], rtol=1e-6)


def test_constant_and_unknown():
  assert float(schedules.beta_schedule("constant", 10, beta_end=0.5)(7)) == 0.5
  with pytest.raises(ValueError, match="unknown beta schedule"):
    schedules.beta_schedule("cosine", 10)


@pytest.mark.parametrize("scheme, expected", [("TF", [1, 1, 1]), ("AS", [0, 0, 0]),
                                              ("SS", [1, 0.5, 0])])
def test_teacher_schedules(scheme, expected):
  f = schedules.teacher_schedule(scheme, 100)
  np.testing.assert_allclose([f(0), f(50), f(100)], expected)
  with pytest.raises(ValueError, match="unknown sampling scheme"):
    schedules.teacher_schedule("XX", 100)


def _load(path):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


CONFIGS = sorted(p for p in glob.glob(os.path.join(CONFIG_DIR, "*.py"))
                 if not os.path.basename(p).startswith("_"))


@pytest.mark.parametrize("path", CONFIGS, ids=[os.path.basename(p) for p in CONFIGS])
def test_every_config_loads_and_smokes(path):
  mod = _load(path)
  full, smoke = mod.get_config(), mod.get_config("smoke")
  assert full.objective.tuple_scheme in schedules.SCHEMES
  assert full.objective.string_scheme in schedules.SCHEMES
  assert "Command" in mod.__doc__ or "tests" in mod.__doc__
  if "test.py" not in path:
    assert smoke.train.num_steps < full.train.num_steps
    with pytest.raises(ValueError, match="unknown config argument"):
      mod.get_config("nonsense")


def test_table1_schemes_are_the_papers():
  got = {os.path.basename(p): (_load(p).get_config().objective.tuple_scheme,
                               _load(p).get_config().objective.string_scheme) for p in CONFIGS}
  assert got["tuple_ss_string_tf.py"] == ("SS", "TF")
  assert got["tuple_as_string_tf.py"] == ("AS", "TF")
  assert got["always_sampling.py"] == ("AS", "AS")
  assert got["scheduled_sampling.py"] == ("SS", "SS")
  assert got["teacher_forcing.py"] == ("TF", "TF")
