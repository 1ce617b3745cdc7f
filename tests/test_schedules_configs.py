import glob
import importlib.util
import os

import numpy as np
import pytest

from alala_jax.objectives import schedules
from alala_jax.train import state
from experiments.configs import paper

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
                 if not os.path.basename(p).startswith("_")
                 and os.path.basename(p) != "paper.py")     # the row registry: tested below


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


PAPER_ROWS = [(t, r.name) for t, rows in paper.TABLES.items() for r in rows]


@pytest.mark.parametrize("table,row", PAPER_ROWS, ids=[f"{t}/{r}" for t, r in PAPER_ROWS])
def test_every_paper_row_builds_and_resolves(table, row):
  """Each row's full-budget, Vermont and smoke configs pass the objective's validation."""
  for kw in ({}, {"vermont": True}, {"smoke": True}):
    c = paper.get_config(",".join([f"{table}/{row}"] + [k for k in kw]))
    setup = state.resolve_objective(c)
    assert c.objective.tuple_scheme in schedules.SCHEMES
    if kw.get("vermont"):
      assert c.data.csv.endswith("alala_addresses_proto.valid.csv")
    if kw.get("smoke"):
      assert c.train.num_steps < paper.BUDGET["num_steps"]
    elif c.objective.multiscale.n_levels > 1:
      assert setup.levels.n == 32 and setup.levels.per_level_batch(c.train.batch_size) == 4
  assert paper.find(table, row).paper[0] is not None


def test_paper_rows_follow_the_paper():
  ms = paper.get_config("repro/multiscale")
  assert (ms.objective.beta_start, ms.objective.beta_end) == (1.28, 0.64)   # beta_max 1.28->0.64
  assert ms.objective.warmup_fraction == 0.5 and ms.objective.ss_fraction == 0.5
  np.testing.assert_allclose(state.resolve_objective(ms).levels.multipliers[:2],
                             [1 / 32, 2 / 32])
  aug = paper.get_config("repro/augmented")
  assert aug.objective.beta_schedule == "warmup_cooldown"
  assert (aug.objective.beta_mid, aug.objective.beta_end) == (0.64, 0.128)
  assert aug.objective.augmented.p_sampled == 0.2
  msa = state.resolve_objective(paper.get_config("repro/multiscale_augmented,steps=1000"))
  assert msa.gen_start_step == 500 and msa.aug.n_augmented == 4
  t13 = state.resolve_objective(paper.get_config("t13/sstf_gen0.5_lin0.2_1"))
  np.testing.assert_allclose(t13.level_p[[0, 1, 31]], [0.225, 0.25, 1.0], rtol=1e-6)
  assert paper.get_config("t8/tf_0.384").model.tuple_type == "simple"
  assert state.resolve_objective(paper.get_config("baselines/wae")).mode == "wae"
  a = state.resolve_objective(paper.get_config("baselines/aae"))
  assert a.mode == "aae" and a.adv is not None and float(a.sched.beta(0)) == 1.0
  assert state.resolve_objective(paper.get_config("t9/r0.9_1.28_0.64")).mode == "inverted"
  for bad, msg in [("t6", "expected TABLE/ROW"), ("t99/x", "unknown table"),
                   ("t6/nope", "unknown row"), ("t6/ss_1.28_0.64,fast", "unknown option"),
                   (None, "name a row")]:
    with pytest.raises(ValueError, match=msg):
      paper.get_config(bad)


def test_objective_validation_errors():
  c = paper.get_config("repro/multiscale")
  c.train.batch_size = 100
  with pytest.raises(ValueError, match="does not split evenly over 32 levels"):
    state.resolve_objective(c)
  c = paper.get_config("t9/r0.9_1.28_0.64")
  c.objective.beta_start = 0.0
  with pytest.raises(ValueError, match="inverted"):
    state.resolve_objective(c)
  c = paper.get_config("baselines/wae")
  c.objective.augmented.enabled = True
  with pytest.raises(ValueError, match="WAE"):
    state.resolve_objective(c)
  c = paper.get_config("repro/multiscale_augmented")
  c.objective.augmented.n_augmented = 256
  with pytest.raises(ValueError, match="exceed the 4 real rows"):
    state.resolve_objective(c)
