"""beta and decoding schedules; every experiment config and paper-table row loads, builds its
objective (`objectives.build` with a RecordModel) and its Setup, and resolves to the paper's
objective, levels and augmented settings."""

import functools
import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alala_jax import config as base
from alala_jax import objectives
from alala_jax import schema as sc
from alala_jax.data import codec, datasets
from alala_jax.models.base import DiagGaussian, Recon
from alala_jax.models.record import RecordModel
from alala_jax.objectives import augmented as augmented_lib
from alala_jax.objectives import geco as geco_lib
from alala_jax.objectives import schedules
from alala_jax.objectives.base import AUGMENTED, TRAIN, Level, Terms
from alala_jax.tasks import records
from alala_jax.train import loop, state
from experiments.configs import paper, rows_001_004

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "experiments", "configs")


def test_linear_beta_warmup():
  f = schedules.beta_schedule("linear", 1000, beta_start=0.0, beta_end=0.384)
  np.testing.assert_allclose([f(0), f(500), f(1000), f(5000)], [0, 0.192, 0.384, 0.384], rtol=1e-6)


def test_warmup_then_cooldown():
  # augmented training (Sec 5): 0 -> 0.64 over the first half, then cool-down to 0.128
  f = schedules.beta_schedule("warmup_cooldown", 1000, 0.0, 0.64, 0.128, 0.5, 0.5)
  np.testing.assert_allclose(
    [f(0), f(250), f(500), f(750), f(1000)], [0, 0.32, 0.64, 0.384, 0.128], rtol=1e-6
  )


def test_beta_extremes():
  c = base.base_config().objective
  c.beta_schedule, c.beta_start, c.beta_mid, c.beta_end = "constant", 0.1, 0.2, 0.3
  assert schedules.beta_extremes(c) == (0.3,)
  c.beta_schedule = "linear"
  assert schedules.beta_extremes(c) == (0.1, 0.3)
  c.beta_schedule = "warmup_cooldown"
  assert schedules.beta_extremes(c) == (0.1, 0.2, 0.3)


def test_constant_and_unknown():
  assert float(schedules.beta_schedule("constant", 10, beta_end=0.5)(7)) == 0.5
  with pytest.raises(ValueError, match="unknown beta schedule"):
    schedules.beta_schedule("cosine", 10)


@pytest.mark.parametrize(
  "scheme, expected", [("TF", [1, 1, 1]), ("AS", [0, 0, 0]), ("SS", [1, 0.5, 0])]
)
def test_teacher_schedules(scheme, expected):
  f = schedules.teacher_schedule(scheme, 100)
  np.testing.assert_allclose([f(0), f(50), f(100)], expected)
  with pytest.raises(ValueError, match="unknown sampling scheme"):
    schedules.teacher_schedule("XX", 100)


_load = base.config_file_module


CONFIGS = sorted(
  p
  for p in glob.glob(os.path.join(CONFIG_DIR, "*.py"))
  if not os.path.basename(p).startswith("_")
  and os.path.basename(p) not in ("paper.py", "rows_001_004.py")
)  # the row registries: tested below


@pytest.mark.parametrize("path", CONFIGS, ids=[os.path.basename(p) for p in CONFIGS])
def test_every_config_loads_and_smokes(path):
  mod = _load(path)
  full, smoke = mod.get_config(), mod.get_config("smoke")
  if full.get("task", "records") == "records":
    for c in (full, smoke):
      _build(c)
  else:  # another task builds its own model: through `loop.prepare` (no compilation)
    assert loop.prepare(smoke).trainer.objective.name == smoke.objective.name
  assert full.objective.tuple_scheme in schedules.SCHEMES
  assert full.objective.string_scheme in schedules.SCHEMES
  # the docstring says how to run it (or that it is the tests' config)
  assert any(w in mod.__doc__ for w in ("Command", "python -m experiments.train", "tests"))
  if "test.py" not in path:
    assert smoke.train.num_steps < full.train.num_steps
    with pytest.raises(ValueError, match="unknown config argument"):
      mod.get_config("nonsense")


@pytest.mark.parametrize("name", sorted(rows_001_004.ROWS))
def test_every_001_004_row_builds_smokes_and_is_documented(name):
  """Each row of papers 001/004 builds (full and smoke, the smoke shorter) by name, and the
  module docstring lists it in its table's section with the command that ran it."""
  row = rows_001_004.ROWS[name]
  (arg, full), (sarg, smoke) = row.build(False), row.build(True)
  assert "smoke" in sarg and "smoke" not in arg
  assert rows_001_004.get_config(name).to_json() == full.to_json()
  assert rows_001_004.get_config(name + ",smoke").to_json() == smoke.to_json()
  assert 0 < smoke.train.num_steps < full.train.num_steps or full.train.num_steps == 0
  table, short = name.split("/")
  doc = rows_001_004.__doc__
  section = doc[doc.index(f"\n{table} (") :].split("\n\n")[0]
  assert f"\n  {short} " in section and "python3 -m experiments." in section
  with pytest.raises(ValueError, match="only 'smoke'"):
    rows_001_004.get_config(name + ",bogus")


def test_001_004_rows_refuse_unknown_names():
  with pytest.raises(ValueError, match="name a row"):
    rows_001_004.get_config("004_synthetic/nonsense")
  with pytest.raises(ValueError, match="unknown row"):
    rows_001_004.synthetic004("oracle/nonsense")
  with pytest.raises(ValueError, match="unknown row"):
    rows_001_004.ptb("nonsense")


def test_table1_schemes_are_the_papers():
  got = {
    os.path.basename(p): (
      _load(p).get_config().objective.tuple_scheme,
      _load(p).get_config().objective.string_scheme,
    )
    for p in CONFIGS
  }
  assert got["tuple_ss_string_tf.py"] == ("SS", "TF")
  assert got["tuple_as_string_tf.py"] == ("AS", "TF")
  assert got["always_sampling.py"] == ("AS", "AS")
  assert got["scheduled_sampling.py"] == ("SS", "SS")
  assert got["teacher_forcing.py"] == ("TF", "TF")


@functools.cache
def _schema_and_spec(fmt: str):
  """A schema and a small data spec for `data.format` fmt (the objective needs the model's
  latent size and beta units, not the data; Vermont rows use the synthetic spec)."""
  d = base.base_config().data
  d.num_synthetic, d.format = 60, fmt
  data = datasets.load(d)
  root = sc.parse_schema(data.cls)
  return root, codec.build_spec(root, data.train)


def _build(c):
  """(model, objective, Setup) of a config, as `RecordTask` builds them."""
  root, spec = _schema_and_spec(c.data.format)
  model = records.make_model(root, spec, c)
  obj = objectives.build(c, model)
  return model, obj, state.make_setup(model, obj, c)


def _expected_name(table: str, c) -> str:
  name = {"t9": "inverted", "t11": "capacity"}.get(table, "beta")
  if table == "baselines":
    name = c.objective.name  # aae / wae: checked against the row name below
  return name + ("+augmented" if c.objective.augmented.enabled else "")


PAPER_ROWS = [(t, r.name) for t, rows in paper.TABLES.items() for r in rows]


@pytest.mark.parametrize("table,row", PAPER_ROWS, ids=[f"{t}/{r}" for t, r in PAPER_ROWS])
def test_every_paper_row_builds_and_resolves(table, row):
  """Each row's full-budget, Vermont and smoke configs build their objective and Setup."""
  for kw in ({}, {"vermont": True}, {"smoke": True}):
    c = paper.get_config(",".join([f"{table}/{row}"] + [k for k in kw]))
    model, obj, setup = _build(c)
    assert isinstance(model, RecordModel) and model.latent_dim == c.model.latent_dim
    assert obj.name == _expected_name(table, c)
    assert c.objective.name in objectives.names()
    assert setup.objective is obj and setup.levels.n == c.objective.multiscale.n_levels
    assert c.objective.tuple_scheme in schedules.SCHEMES
    if table == "baselines":
      assert obj.name == row and obj.deterministic
    if kw.get("vermont"):
      assert c.data.csv.endswith("alala_addresses_proto.valid.csv")
    if kw.get("smoke"):
      assert c.train.num_steps < paper.BUDGET["num_steps"]
      assert setup.levels.n in (1, 4)
    elif c.objective.multiscale.n_levels > 1:
      assert setup.levels.n == 32 and setup.levels.per_level_batch(c.train.batch_size) == 4
    if c.objective.augmented.enabled:
      n_aug = (c.objective.augmented.n_augmented or c.train.batch_size) // setup.levels.n
      z = obj.init(jax.random.key(0))[augmented_lib.NAME].z
      assert z.shape == (n_aug, c.model.latent_dim)
  assert paper.find(table, row).paper[0] is not None


def _dummy_terms(d):
  z = jnp.zeros((2, d))
  return Terms(
    recon=Recon(nll=jnp.zeros(2), loss=jnp.zeros(2), fields={}),
    kl=jnp.zeros(2),
    z=z,
    posterior=DiagGaussian(z, jnp.ones_like(z)),
    row_mask=None,
    kl_scale=1.0 / d,
  )


def test_paper_rows_follow_the_paper():
  ms = paper.get_config("repro/multiscale")
  assert (ms.objective.beta_start, ms.objective.beta_end) == (1.28, 0.64)  # beta_max 1.28->0.64
  assert ms.objective.warmup_fraction == 0.5 and ms.objective.ss_fraction == 0.5
  np.testing.assert_allclose(_build(ms)[2].levels.multipliers[:2], [1 / 32, 2 / 32])
  aug = paper.get_config("repro/augmented")
  assert aug.objective.beta_schedule == "warmup_cooldown"
  assert (aug.objective.beta_mid, aug.objective.beta_end) == (0.64, 0.128)
  assert aug.objective.augmented.p_sampled == 0.2
  _, msa, msa_setup = _build(paper.get_config("repro/multiscale_augmented,steps=1000"))
  assert (msa.phase_at(499), msa.phase_at(500)) == (TRAIN, AUGMENTED)  # gen_start_step 500
  assert msa.init(jax.random.key(0))[augmented_lib.NAME].z.shape[0] == 4
  assert msa_setup.levels.p_sampled == pytest.approx((0.2,) * 32)
  t13 = _build(paper.get_config("t13/sstf_gen0.5_lin0.2_1"))[2]
  np.testing.assert_allclose(
    np.asarray(t13.levels.p_sampled)[[0, 1, 31]], [0.225, 0.25, 1.0], rtol=1e-6
  )
  t14 = _build(paper.get_config("t14/ss_geo0.2_1"))[2]
  np.testing.assert_allclose(t14.levels.p_sampled[-1], 1.0, rtol=1e-6)
  assert t14.levels.p_sampled[0] < t14.levels.p_sampled[-1]
  assert paper.get_config("t8/tf_0.384").model.tuple_type == "simple"
  assert _build(paper.get_config("baselines/wae"))[1].name == "wae"
  model, a, _ = _build(paper.get_config("baselines/aae"))
  assert a.name == "aae" and a.deterministic
  st = a.init(jax.random.key(0))
  assert set(st) == {"aae"}
  _, m = a.loss(st, _dummy_terms(model.latent_dim), step=0, level=Level())
  assert float(m["beta"]) == 1.0  # weight 1, like the reconstruction
  _, inv, inv_setup = _build(paper.get_config("t9/r0.9_1.28_0.64"))
  assert inv.name == "inverted"
  np.testing.assert_allclose(inv_setup.levels.multipliers[0], 0.9**31, rtol=1e-5)
  _, cap, cap_setup = _build(paper.get_config("t11/c10_0.5"))
  assert cap.name == "capacity"
  np.testing.assert_allclose(cap_setup.levels.capacities[:2], [10.0, 10.5])
  for bad, msg in [
    ("t6", "expected TABLE/ROW"),
    ("t99/x", "unknown table"),
    ("t6/nope", "unknown row"),
    ("t6/ss_1.28_0.64,fast", "unknown option"),
    (None, "name a row"),
  ]:
    with pytest.raises(ValueError, match=msg):
      paper.get_config(bad)


def test_objective_validation_errors():
  c = paper.get_config("repro/multiscale")
  c.train.batch_size = 100
  # the level split of the configured batch is refused (Levels.split, at the step's trace)
  with pytest.raises(ValueError, match="does not split evenly over 32 levels"):
    _build(c)[2].levels.per_level_batch(c.train.batch_size)
  c = paper.get_config("t9/r0.9_1.28_0.64")
  c.objective.beta_start = 0.0
  with pytest.raises(ValueError, match="inverted"):
    _build(c)
  c = paper.get_config("baselines/wae")
  c.objective.augmented.enabled = True
  with pytest.raises(ValueError, match="WAE"):
    _build(c)
  c = paper.get_config("baselines/aae")
  c.objective.multiscale.n_levels = 2
  with pytest.raises(ValueError, match="AAE"):
    _build(c)
  c = paper.get_config("repro/multiscale_augmented")
  c.objective.augmented.n_augmented = 256
  with pytest.raises(ValueError, match="exceed the 4 real rows"):
    _build(c)
  c = paper.get_config("repro/beta_vae")
  c.objective.name = "elbo"
  with pytest.raises(ValueError, match="unknown objective 'elbo'"):
    _build(c)


def test_prepare_builds_the_test_config_task():
  """`loop.prepare` on the tiny test config: a record task whose trainer holds the 2-level
  multiscale + augmented objective (no compilation)."""
  from experiments.configs import test as test_config

  c = test_config.get_config()
  task = loop.prepare(c)
  t = task.trainer
  assert task.name == "records" and isinstance(t.model, RecordModel)
  assert t.objective.name == "beta+augmented" and t.levels.n == 2
  np.testing.assert_allclose(t.levels.p_sampled, [0.15, 0.2], rtol=1e-6)
  assert (t.phase_at(2), t.phase_at(3)) == (TRAIN, AUGMENTED)


def test_default_job_is_geco_with_the_beta_vae_as_an_option():
  mod = _load(os.path.join(CONFIG_DIR, "default.py"))
  geco, beta = mod.get_config(), mod.get_config("beta")
  assert geco.objective.name == "geco" and beta.objective.name == "beta"
  cons = geco_lib.parse_constraints(geco.objective.geco.constraints)
  assert [c.tolerance for c in cons] == [0.1, 0.02, 0.02]
  both = mod.get_config("beta,smoke")
  assert both.objective.name == "beta" and both.train.num_steps < beta.train.num_steps
  assert geco.eval.generation_prior.split(",")[0] == "aggregate"
  assert geco.data.categorical == "auto" and beta.data.categorical == ""  # beta: the paper's
  _build(mod.get_config("smoke"))


def test_records_recipe_is_the_beta_vae_row_with_geco_and_categories():
  mod = _load(os.path.join(CONFIG_DIR, "records.py"))
  c = mod.get_config("vermont,seed=1")
  row = paper.get_config("repro/beta_vae,vermont,seed=1")
  assert c.objective.name == "geco" and c.data.categorical == "auto"
  assert (c.seed, c.data.csv, c.train.num_steps) == (1, row.data.csv, 6000)
  assert c.model.to_dict() == row.model.to_dict()
  assert mod.get_config("steps=10").train.num_steps == 10
  cons = geco_lib.parse_constraints(c.objective.geco.constraints)
  assert [t.tolerance for t in cons] == [0.2, 0.005, 0.02]
  old = mod.get_config("vermont,coord=0.02").objective.geco.constraints
  assert old == "loss<=0.2,(lat,long)<=0.02,postcode<=0.02"  # the rows measured before
  with pytest.raises(ValueError, match="coord"):
    mod.get_config("coord=2")


def test_records_lagging_rows_differ_only_in_the_method():
  mod = _load(os.path.join(CONFIG_DIR, "records_lagging.py"))
  vae, agg, sa = (mod.get_config(f"{m},seed=2") for m in ("vae", "aggressive", "savae"))
  assert (vae.train.strategy, agg.train.strategy, sa.train.strategy) == (
    "plain",
    "aggressive",
    "plain",
  )
  assert (vae.refine.name, agg.refine.name, sa.refine.name) == ("none", "none", "svi")
  assert vae.model.to_dict() == sa.model.to_dict() and vae.optim.decay_rate == 1.0
  assert (sa.refine.steps, sa.refine.lr) == (20, 1.0)  # paper 004's reference defaults
  assert sa.refine.backward_clip == 5.0  # the reference's backward clip
  tuned = mod.get_config("savae,k=5,svi_lr=30,bclip=0")
  assert (tuned.refine.steps, tuned.refine.lr, tuned.refine.backward_clip) == (5, 30.0, 0.0)
