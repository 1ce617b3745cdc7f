"""The 'images' task end to end through the generic loop: train, resume-free evaluation with
the ELBO and the importance-weighted NLL, a PNG of samples, and reloading the state."""

import json
import os

import numpy as np
import pytest

from alala_jax.train import loop
from experiments.configs import images as images_config


@pytest.mark.slow
def test_images_smoke_config_trains_and_evaluates(tmp_path):
  config = images_config.get_config("smoke,ema")
  workdir = str(tmp_path / "img")
  logs = []
  res = loop.train_and_evaluate(config, workdir, log=logs.append)
  assert res["params"] == "ema" and res["test/num_examples"] == 30  # 10 % of 300
  for k in ("test/elbo", "test/iw_nll", "test/kl", "test/recon"):
    assert np.isfinite(res[k]), k
  # IW-NLL is a tighter bound than -ELBO (up to Monte Carlo noise at k = 20)
  assert res["test/iw_nll"] <= -res["test/elbo"] + 0.5
  assert os.path.getsize(res["samples_png"]) > 1000
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  assert {r["split"] for r in rows} == {"train", "eval", "final"}
  assert any("test/iw_nll" in s for s in logs[-1:]) or "IW-NLL" in logs[-1]
  state, task = loop.load_trained(workdir, config)
  assert int(state.step) == config.train.num_steps and state.ema_params is not None


@pytest.mark.parametrize("variant", ["lvae", "lvae+", "biva"])
def test_hierarchical_configs_build_paper_002s_setting(variant):
  from alala_jax.models.hierarchical import HierarchicalVAE
  from alala_jax.tasks.images import ImageTask

  config = images_config.get_config(f"smoke,{variant}")
  task = ImageTask.from_config(config)
  assert isinstance(task.model, HierarchicalVAE) and task.model.config.variant == variant
  assert task.model.config.latent_dims == (6, 4, 2)  # smoke sizes whatever the order
  assert (config.objective.name, config.objective.free_bits) == ("free_bits", 2.0)
  assert (config.optim.name, config.optim.learning_rate, config.train.batch_size) == (
    "adamax",
    2e-3,
    48,
  )
  assert f"hierarchical VAE ({variant} L=3" in task.notes()[1]
  full = images_config.get_config(variant)
  assert full.model.latent_dims == (48, 40, 32, 24, 16, 8) and full.optim.ema_decay == 0.9995
  with pytest.raises(ValueError, match="model.kind"):
    bad = images_config.get_config("smoke")
    bad.model.kind = "conv"
    ImageTask.from_config(bad)


@pytest.mark.slow
def test_hierarchical_smoke_config_trains_and_evaluates(tmp_path):
  """BIVA's smoke config end to end with the paper's EMA (0.9995: ~the initial model after 20
  steps, whose held-out ELBO was NaN before the reference's data-init scale): finite test ELBO,
  IW-NLL, per-layer KL / active units and L^{>k} for every k, with L^{>0} the one-sample ELBO."""
  config = images_config.get_config("smoke,biva")
  config.train.batch_size = 20
  assert config.optim.ema_decay == 0.9995
  logs = []
  res = loop.train_and_evaluate(config, str(tmp_path / "biva"), log=logs.append)
  for k in ("test/elbo", "test/iw_nll", *(f"test/l_above/{k}" for k in range(3))):
    assert np.isfinite(res[k]), (k, res[k])
  assert res["test/iw_nll"] <= -res["test/elbo"] + 1.0
  # L^{>0} is the ELBO (other draws: Monte Carlo noise); the deeper prior draws fit x worse
  assert abs(res["test/l_above/0"] - res["test/elbo"]) < 0.05 * abs(res["test/elbo"])
  assert {f"test/kl/{n}" for n in ("z1_bu", "z1_td", "z2_bu", "z2_td", "z3")} <= set(res)
  assert "L^{>k}" in logs[-1] and "z1_bu" in logs[-1]
