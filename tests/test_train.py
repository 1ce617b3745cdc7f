"""Training: end to end on the tiny config, no recompilation, resume == uninterrupted,
non-finite loss handling. One compiled task (its Trainer) is shared by the whole module."""

import copy
import json
import os

import chex
import jax
import numpy as np
import pytest

from alala_jax import cli, generate, latent_priors
from alala_jax.data import batching, codec, csv_io
from alala_jax.train import loop
from experiments.configs import test as test_config


@pytest.fixture(scope="module")
def config():
  return test_config.get_config()


@pytest.fixture(scope="module")
def prepared(config):
  return loop.prepare(config)


def test_train_step_compiles_once(config, prepared):
  p = prepared.trainer
  state = p.create_state(0, batching.batch_at(prepared.train_arrays, 0, 16, 0))
  for s in range(3):
    state, m, _ = p.step_fn(s)(state, batching.batch_at(prepared.train_arrays, s, 16, 0))
  assert p.phase_step("train")._cache_size() == 1
  assert int(state.step) == 3 and int(state.data_position) == 3
  assert int(state.bad_step) == -1
  assert np.isfinite(float(m["loss"]))


@pytest.mark.parametrize(
  "absent", [("strategy_state", "validation"), ("validation",)], ids=["pre_strategy", "pre_val"]
)
def test_restores_a_checkpoint_written_before_optional_fields_existed(
  absent, config, prepared, tmp_path
):
  import dataclasses

  import orbax.checkpoint as ocp

  p = prepared.trainer
  state = p.create_state(1, batching.batch_at(prepared.train_arrays, 0, 16, 0))
  assert state.strategy_state is None and state.validation is None  # plain, no rule
  old = {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}
  for f in absent:  # the TrainState layout of runs before the strategies / validation rules
    del old[f]
  mngr = loop.checkpoint_manager(str(tmp_path), 2)
  mngr.save(7, args=ocp.args.StandardSave(old))
  mngr.wait_until_finished()
  template = p.create_state(0, batching.batch_at(prepared.train_arrays, 0, 16, 0))
  back = loop.restore_latest(loop.checkpoint_manager(str(tmp_path), 2), template)
  chex.assert_trees_all_equal(back.params, state.params)
  chex.assert_trees_all_equal(back.opt_state, state.opt_state)
  assert back.strategy_state is None and back.validation is None
  assert int(back.step) == int(state.step)


def test_resume_after_interrupt_equals_uninterrupted(config, prepared, tmp_path):
  straight, _ = loop.train(config, str(tmp_path / "a"), prepared)
  # an uninterrupted run, plain and augmented steps: each step program compiled once
  steps = prepared.trainer.compiled_phases()
  assert set(steps) == {"train", "augmented"}
  assert all(f._cache_size() == 1 for f in steps.values())
  loop.train(config, str(tmp_path / "b"), prepared, stop_at=3)  # "killed" after step 3
  logs = []
  resumed, _ = loop.train(config, str(tmp_path / "b"), prepared, log=logs.append)
  assert any("resumed from checkpoint at step 3" in s for s in logs)
  assert int(straight.step) == int(resumed.step) == config.train.num_steps
  assert int(straight.data_position) == int(resumed.data_position) == config.train.num_steps
  chex.assert_trees_all_equal(straight.params, resumed.params)
  chex.assert_trees_all_equal(straight.model_state, resumed.model_state)
  chex.assert_trees_all_equal(straight.opt_state, resumed.opt_state)
  chex.assert_trees_all_equal(straight.objective_state, resumed.objective_state)  # z_aug
  # restored (committed) arrays reuse the compiled steps: no compilation after a resume
  assert all(f._cache_size() == 1 for f in prepared.trainer.compiled_phases().values())


def test_non_finite_loss_skips_the_update_and_stops_the_run(config, prepared, tmp_path):
  p = prepared.trainer
  batch = batching.batch_at(prepared.train_arrays, 0, 16, 0)
  state = p.create_state(0, batch)
  before = jax.tree.map(np.array, (state.params, state.model_state, state.objective_state))
  bad = jax.tree.map(lambda a: a, batch)
  bad["__floats__"] = np.full_like(batch["__floats__"], np.nan)
  state, _, _ = p.phase_step("train")(state, bad)
  # nothing was applied: parameters, statistics, objective states; the skip is counted
  chex.assert_trees_all_equal(
    jax.tree.map(np.asarray, (state.params, state.model_state, state.objective_state)), before
  )
  assert int(state.bad_step) == 0 and int(state.opt_state.total_notfinite) == 1
  state, _, _ = p.phase_step("train")(state, batch)  # a finite step after it applies again
  assert int(state.bad_step) == 0 and int(state.step) == 2
  assert int(state.opt_state.total_notfinite) == 1
  assert not np.allclose(jax.tree.leaves(state.params)[0], jax.tree.leaves(before[0])[0])

  broken = copy.copy(prepared)
  broken.train_arrays = jax.tree.map(lambda a: a, prepared.train_arrays)
  broken.train_arrays["__floats__"] = np.full_like(prepared.train_arrays["__floats__"], np.inf)
  with pytest.raises(loop.NonFiniteLossError, match=r"step 0.*Last good checkpoint: step None"):
    loop.train(config, str(tmp_path / "nan"), broken)
  assert not os.path.exists(tmp_path / "nan" / "checkpoints" / "3")


@pytest.mark.slow
def test_end_to_end_train_and_evaluate(config, prepared, tmp_path):
  workdir = str(tmp_path / "run")
  config = copy.deepcopy(config)  # evaluation settings only: the prepared trainer still fits
  config.eval.generation_prior = "aggregate,tracked,gmm"
  config.eval.prior_records, config.eval.gmm_components, config.eval.gmm_iters = 60, "1,2", 5
  res = loop.train_and_evaluate(config, workdir, log=lambda s: None, task=prepared)
  for k in (
    "pvalue/mean",
    "prior/tracked/pvalue/mean",
    "prior/gmm/pvalue/mean",
    "prior_heldout_log_prob/aggregate",
    "prior_heldout_log_prob/tracked",
    "ks_stat",
    "blank_share",
    "in_train/street",
    "pair_in_train/city+postcode",
    "prior/tracked/exact_copy_rate",
    "dcr/share_closer_to_train",
    "dcr/generated_to_train_median",
    "prior/tracked/dcr/share_closer_to_train",
    "mia/auc",
    "pvalue/median",
    "pvalue/std",
    "d_lev",
    "train/loss",
    "test/loss",
    "generated/loss",
    "generated/bpc",
    "exact_copy_rate",
    "recon_acc/street",
  ):
    assert k in res and np.isfinite(res[k]), k
  assert 0.0 <= res["pvalue/mean"] <= 1.0 and res["d_lev"] >= 0
  assert res["data_position"] == res["step"] == config.train.num_steps  # plain: one batch each
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  assert {r["split"] for r in rows} == {"train", "eval", "final"}
  assert [r["step"] for r in rows if r["split"] == "train"] == [3, 6]
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["3", "6"]
  state, prep = loop.load_trained(workdir, config)
  assert int(state.step) == 6
  chex.assert_trees_all_equal(cli.load_workdir_config(workdir).to_dict(), config.to_dict())
  # what experiments/generate.py does: restore without data, sample, write CSV, read it back
  state2, task2 = loop.load_model(workdir, config)
  assert task2.data is None
  chex.assert_trees_all_equal(state2.params, state.params)
  recs = generate.generate_records(task2, state2, 40, jax.random.key(0), 32)
  assert len(recs) == 40
  # the headline prior was fitted on q(z|x) of 54 training records and saved for generation
  assert res["generation_prior"] == "aggregate" and res["prior_fit_records"] == 54
  prior, meta = latent_priors.load_with_meta(os.path.join(workdir, "generation_prior.npz"))
  assert meta == {"step": 6.0, "temperature": config.eval.prior_temperature}
  assert isinstance(prior, latent_priors.Aggregate) and prior.means.shape == (
    54,
    config.model.latent_dim,
  )
  from_prior = generate.generate_records(task2, state2, 40, jax.random.key(0), 32, prior=prior)
  assert len(from_prior) == 40 and from_prior != recs
  assert "generation prior: aggregate at temperature" in prep.summary(res)
  prep.save(workdir)  # what training does first: the prior of the old model must go
  assert not os.path.exists(os.path.join(workdir, "generation_prior.npz"))
  path = str(tmp_path / "gen.csv")
  csv_io.write_csv(path, recs, prep.data.cls)
  back, report = csv_io.read_csv(path, prep.data.cls)
  assert report.rows_read == 40
  assert [(r.street, r.postcode) for r in back] == [(r.street, r.postcode) for r in recs]


def test_augmented_multiscale_step_trains_on_variants_and_keeps_sampled_latents(config, prepared):
  p, arrays = prepared.trainer, prepared.train_arrays
  n_lv = config.objective.multiscale.n_levels
  m, d = config.objective.augmented.n_augmented // n_lv, config.model.latent_dim
  b = 16 // n_lv
  assert p.phase_at(2) == "train" and p.phase_at(3) == "augmented"  # gen_start 0.5 x 6
  assert p.step_fn(3) is p.phase_step("augmented")
  np.testing.assert_allclose(p.levels.p_sampled, [0.15, 0.2])  # App K linear spacing
  state = p.create_state(0, batching.batch_at(arrays, 0, 16, 0))
  chex.assert_shape(state.objective_state["augmented"].z, (n_lv, m, d))
  chex.assert_shape(state.params["sigma_net"]["CeluDense_0"]["Dense_0"]["kernel"], (n_lv, d, d))
  k = state.params["sigma_net"]["CeluDense_0"]["Dense_0"]["kernel"]
  assert not np.allclose(k[0], k[1])  # independent inits
  for s in range(3):  # plain steps seed z_aug from each level's batch
    state, _, aux = p.step_fn(s)(state, batching.batch_at(arrays, s, 16, 0))
  chex.assert_shape(aux["z"], (n_lv, b, d))
  chex.assert_trees_all_equal(state.objective_state["augmented"].z, aux["z"][:, :m])

  old = jax.tree.map(np.array, state.model_state["batch_stats"]["latent_moments"])
  state, metrics, aux = p.step_fn(3, means=True)(state, batching.batch_at(arrays, 3, 16, 0))
  assert np.isfinite(float(metrics["loss"]))
  assert {"kl/level0", "kl/level1"} <= set(metrics)
  chex.assert_shape(aux["z"], (n_lv, b + m, d))  # real + variants
  z_new, z, mu = (
    np.asarray(x) for x in (state.objective_state["augmented"].z, aux["z"], aux["mu"])
  )
  for lv in range(n_lv):
    for i in range(m):  # each new z_aug is a SAMPLED latent: of a real row or of its variant
      from_real = np.any(np.all(z_new[lv, i] == z[lv, :b], -1))
      assert from_real or np.all(z_new[lv, i] == z[lv, b + i])
      assert not np.any(np.all(np.isclose(z_new[lv, i], mu[lv], atol=1e-7), -1))
    # each level's latent moments were updated from its own real rows only
    new_mean = np.asarray(state.model_state["batch_stats"]["latent_moments"]["mean"][lv])
    real_only = 0.999 * old["mean"][lv] + 0.001 * z[lv, :b].mean(0)
    all_rows = 0.999 * old["mean"][lv] + 0.001 * z[lv].mean(0)
    assert np.abs(new_mean - real_only).max() < np.abs(new_mean - all_rows).max() / 10
  # generation and the logged eval losses use level gen_level's latent moments
  v = p.variables(state)
  chex.assert_trees_all_equal(
    v["batch_stats"]["latent_moments"],
    jax.tree.map(lambda a: a[0], state.model_state["batch_stats"]["latent_moments"]),
  )


def test_app_e_analyses_on_a_model(config, prepared, tmp_path):
  """Repeated encode/decode, per-round stats and interpolation (App D-E), plus their plots."""
  from alala_jax import analysis, viz

  p = prepared
  state = p.trainer.create_state(0, batching.batch_at(prepared.train_arrays, 0, 16, 0))
  train = prepared.data.train
  recs = train[:32]
  rounds = analysis.repeated_encode_decode(p, state, recs, 2, jax.random.key(0), chunk=32)
  assert len(rounds) == 3 and all(len(r) == 32 for r in rounds)
  assert rounds[0] == list(recs)
  assert rounds[1] != rounds[0]  # an untrained model does not reproduce its input
  stats = analysis.round_stats(rounds, train, "postcode", ("lat", "long"), "street")
  assert stats[0]["in_train"] == 1.0  # round 0 are training records
  assert 0.0 <= stats[2]["in_train"] <= 1.0 and stats[0]["pvalues"].shape == (32,)

  path, z = analysis.interpolate(p, state, train[0], train[1], 5, jax.random.key(1), greedy=True)
  arrays, _ = codec.encode(p.root, p.spec, [train[0], train[1]])
  mu = np.asarray(p.encode_mean(p.variables(state), arrays))
  np.testing.assert_allclose(z[0], mu[0], rtol=1e-6)
  np.testing.assert_allclose(z[-1], mu[1], rtol=1e-6)
  np.testing.assert_allclose(z[2], 0.5 * (mu[0] + mu[1]), rtol=1e-5, atol=1e-6)
  recon, _ = generate.reconstruct_records(p, state, [train[0]], jax.random.key(2), 32, greedy=True)
  assert path[0].street == recon[0].street and len(path) == 5

  viz.plot_repeated_encode_decode({"training": stats}, str(tmp_path / "r.png"))
  viz.plot_interpolation_map(
    [[r.lat, r.long] for r in train],
    [[r.lat, r.long] for r in path],
    [r.street for r in path],
    str(tmp_path / "i.png"),
  )
  assert (tmp_path / "r.png").stat().st_size > 1000 and (tmp_path / "i.png").stat().st_size > 1000


def test_older_workdir_config_gets_new_eval_defaults_only(config, tmp_path):
  saved = config.to_dict()
  del saved["eval"]["prior_records"]  # evaluation settings added after the run was trained
  del saved["eval"]["generation_prior"]
  saved["eval"]["num_generated"] = 123
  del saved["model"]["latent_dim"]
  with open(tmp_path / "config.json", "w") as f:
    json.dump(saved, f)
  back = cli.load_workdir_config(str(tmp_path))
  assert back.eval.prior_records == 20000 and back.eval.num_generated == 123
  assert back.eval.generation_prior == "tracked"  # what a run of that time generated from
  assert "latent_dim" not in back.model  # training settings are never filled in


def test_progress_bar_prints_a_line_per_report_when_not_a_terminal():
  import io

  buf = io.StringIO()
  p = loop.Progress(300, 0, stream=buf, latent_label="geco/kl_nats")
  p(100, {"loss": 1.0, "recon": 0.5, "kl": 3.0, "geco/kl_nats": 9.0})
  p(200, {"loss": 0.9, "recon": 0.4, "kl": 3.1, "geco/kl_nats": 8.0}, "  bpc 1.200")
  p.close()
  lines = buf.getvalue().splitlines()
  assert len(lines) == 2
  assert "100/300" in lines[0] and "geco/kl_nats 9.0000" in lines[0]
  assert "200/300" in lines[1] and "step/s" in lines[1] and lines[1].endswith("bpc 1.200]")


def test_coordinate_precision_stages_on_a_model(config, prepared):
  """Issue #13's precision study: every stage and split scored per row; g(mu(x)) equals the
  task's own reconstruction path (`reconstruct_records`), the ridge readout beats the mean."""
  from alala_jax import analysis
  from alala_jax.metrics import coords

  p = prepared
  state = p.trainer.create_state(0, batching.batch_at(p.train_arrays, 0, 16, 0))
  rows = 24
  res = analysis.coordinate_precision(
    p, state, p.train_arrays, p.test_arrays, jax.random.key(0), rows=rows, ridge=1e-6
  )
  assert res["fields"] == ("lat", "long") and res["order"][res["position"] - 1] == "__floats__"
  for name in analysis.COORD_STAGES:
    for split in ("train", "test"):
      chex.assert_shape([res[(name, split)]["sq"], res[(name, split)]["km"]], [(rows,)] * 2)
      assert np.all(np.isfinite(res[(name, split)]["sq"])), (name, split)
  originals = p.data.train[:rows]
  recon, _ = generate.reconstruct_records(p, state, originals, jax.random.key(1), rows, True)
  km = coords.km_error(
    np.array([[r.lat, r.long] for r in recon]),
    np.array([[r.lat, r.long] for r in originals]),
    ("lat", "long"),
  )
  np.testing.assert_allclose(res[("g(mu(x))", "train")]["km"], km, rtol=1e-3, atol=1e-3)
  # least squares on the training rows: no worse than predicting the whitened mean (~ k)
  readout = res[("linear readout of mu(x)", "train")]["sq"]
  assert np.mean(readout) <= 2.0 * (1 + 1e-3)
  chex.assert_shape([res["whitened_train_mean"], res["whitened_train_cov"]], [(2,), (2, 2)])


def test_resume_refuses_a_config_that_changes_the_run(config, prepared, tmp_path):
  wd = str(tmp_path)
  loop.train(config, wd, prepared, stop_at=3)
  recorded = open(os.path.join(wd, "config.json")).read()
  changed = copy.deepcopy(config)
  changed.seed = config.seed + 1
  changed.optim.learning_rate = 2 * config.optim.learning_rate
  with pytest.raises(loop.ConfigChangedError, match=r"(?s)optim.learning_rate: .* seed: 0 -> 1"):
    loop.train(changed, wd, prepared)
  assert open(os.path.join(wd, "config.json")).read() == recorded  # nothing rewritten

  # how long it runs, logs and is evaluated may change: logged, then resumed
  longer = copy.deepcopy(config)
  longer.train.log_every, longer.eval.num_generated = 1, 7
  logs = []
  state, _ = loop.train(longer, wd, prepared, log=logs.append, stop_at=4)
  assert int(state.step) == 4
  assert "resuming with a changed config: train.log_every: 3 -> 1" in logs
  assert "resuming with a changed config: eval.num_generated: " in "\n".join(logs)
  assert json.load(open(os.path.join(wd, "config.json")))["train"]["log_every"] == 1

  changed.train.allow_config_change = True  # forced: resumed, every change logged
  logs = []
  state, _ = loop.train(changed, wd, prepared, log=logs.append, stop_at=5)
  assert int(state.step) == 5 and "resuming with a changed config: seed: 0 -> 1" in logs
