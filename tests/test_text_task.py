"""The 'text' task end to end on the smoke configs: training, every final metric (named MI
estimators, AU, PPL from the IW-NLL), SA-VAE refinement in training and evaluation, and the
posterior-collapse experiment script's smoke run."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from alala_jax.train import loop
from experiments.configs import text as text_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
@pytest.mark.parametrize("arg", ["smoke", "smoke,savae", "smoke,vae_svi_kl,anneal"])
def test_train_and_evaluate(arg, tmp_path):
  config = text_config.get_config(arg)
  logs = []
  res = loop.train_and_evaluate(config, str(tmp_path), log=logs.append)
  assert res["step"] == config.train.num_steps
  for k in ("elbo", "iw_nll", "kl", "mi_dataset", "mi_minibatch", "ppl_iw", "ppl_elbo"):
    assert np.isfinite(res[f"test/{k}"]), k
  # PPL is exp(total IW-NLL / tokens incl. </s>)
  np.testing.assert_allclose(
    res["test/ppl_iw"],
    np.exp(res["test/iw_nll"] * res["test/num_examples"] / res["test/num_tokens"]),
    rtol=1e-6,
  )
  assert res["test/mi_minibatch_cap"] == pytest.approx(np.log(config.eval.batch_size))
  summary = logs[-1]
  assert "whole test set" in summary and "reference minibatch" in summary
  assert os.path.exists(tmp_path / "samples.txt")
  rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  train = [r for r in rows if r["split"] == "train"]
  if "savae" in arg or "vae_svi" in arg:
    assert "svi/loss_last" in train[-1]
  if "vae_svi_kl" in arg:
    assert "encoder_loss" in train[-1]
  if "anneal" in arg:
    assert train[0]["beta"] < 1.0
  if arg == "smoke,savae":  # re-evaluated in batches of 4 by the CLI, from the workdir alone
    cmd = [sys.executable, "-m", "experiments.evaluate", f"--workdir={tmp_path}"]
    subprocess.run([*cmd, "--eval_batch_size=4"], check=True, capture_output=True, cwd=ROOT)
    with open(tmp_path / "eval_metrics_batch4.json") as f:
      b4 = json.load(f)
    assert b4["test/batch_size"] == 4 and b4["step"] == res["step"]
    assert b4["test/mi_minibatch_cap"] == pytest.approx(np.log(4))
    assert np.isfinite(b4["test/iw_nll"]) and b4["test/iw_nll"] != res["test/iw_nll"]
    # the amortization gap at two SVI learning rates: the same lambda_0 (its loss does not
    # depend on the lr, same batches and keys), a different lambda_K
    stem = str(tmp_path / "gap")
    cmd = [sys.executable, "-m", "experiments.amortization_gap", f"--workdir={tmp_path}"]
    subprocess.run(
      [*cmd, "--lrs=1,50", "--steps=3", "--batches=2", f"--results={stem}"],
      check=True,
      capture_output=True,
      cwd=ROOT,
    )
    with open(stem + ".json") as f:
      rows = json.load(f)["rows"]
    lr1, lr50 = rows["1.0"], rows["50.0"]
    assert lr1["steps"] == 3 and lr1["batches"] == 2
    assert lr1["loss_lambda0"] == lr50["loss_lambda0"]
    assert lr1["loss_lambdaK"] != lr50["loss_lambdaK"]
    assert lr1["gap"] == pytest.approx(lr1["loss_lambda0"] - lr1["loss_lambdaK"])


def test_unknown_argument_is_named():
  with pytest.raises(ValueError, match="bogus"):
    text_config.get_config("bogus")


def test_epochs_and_anneal_follow_the_data_size():
  c = text_config.get_config("synthetic,epochs=2,anneal")
  assert c.train.num_steps == 2 * 16000 // 32
  assert c.objective.beta_start == 0.1 and c.objective.warmup_fraction == 1.0
  c = text_config.get_config("synthetic,epochs=20,anneal")
  assert c.objective.warmup_fraction == pytest.approx(0.5)
