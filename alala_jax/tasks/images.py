"""The 'images' task: a dense Bernoulli VAE on binary images (`alala_jax.models.image`).

Data: `config.data` as described by `alala_jax.data.images.default_config()` (an embedded
synthetic set by default, or the static binarized MNIST of `../shared/data`); model
(`config.model.kind`): 'dense' (latent `config.model.latent_dim`, hidden layers
`config.model.hidden`) or 'hierarchical' (paper 002's LVAE / LVAE+ / BIVA,
`alala_jax.models.hierarchical`, the `HierarchicalConfig` fields from `config.model`); evaluators: the objective's
test loss every `eval_every` steps, and at the end the test-set ELBO, KL and importance-weighted
NLL (`config.eval.iw_samples` samples, `config.eval.iw_chunk` at a time, float32 log space)
with the EMA parameters when the run keeps them, plus a PNG grid of samples.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from alala_jax import image_grid, objectives
from alala_jax.data import images as image_data
from alala_jax.metrics import hierarchy, likelihood
from alala_jax.models.hierarchical import HierarchicalVAE, config_from_model_config
from alala_jax.models.image import DenseImageVAE, ImageVAEConfig
from alala_jax.tasks.base import Task
from alala_jax.train import state as state_lib
from alala_jax.train.trainer import Trainer

SAMPLES_PNG = "samples.png"


class ImageTask(Task):
  """Binary images: data, the dense VAE's trainer and the likelihood evaluators."""

  name = "images"

  def __init__(self, config, data: image_data.ImageData):
    self.config, self.data = config, data
    mc = config.model
    kind = mc.get("kind", "dense")
    if kind == "hierarchical":  # paper 002's LVAE / LVAE+ / BIVA (model.variant)
      self.model = HierarchicalVAE(config_from_model_config(mc, data.num_pixels))
    elif kind == "dense":
      self.model = DenseImageVAE(
        ImageVAEConfig(
          num_pixels=data.num_pixels,
          latent_dim=mc.latent_dim,
          hidden=tuple(int(h) for h in mc.get("hidden", (200, 200))),
          activation=mc.get("activation", "tanh"),
        )
      )
    else:
      raise ValueError(f"config.model.kind must be 'dense' or 'hierarchical', got {kind!r}")
    setup = state_lib.make_setup(
      self.model,
      objectives.build(config, self.model),
      config,
      steps_per_epoch=len(data.train) // config.train.batch_size,
    )
    self.trainer = Trainer(setup)
    self.train_arrays = np.asarray(data.train, np.float32)
    self.test_arrays = np.asarray(data.test, np.float32)
    self.workdir: str | None = None

  @classmethod
  def from_config(cls, config, workdir: str | None = None) -> "ImageTask":
    task = cls(config, image_data.load(config.data))
    task.workdir = workdir
    return task

  def notes(self) -> list[str]:
    d = self.data
    return [
      f"data: {d.source}: {d.notes}; train {len(d.train)}, test {len(d.test)} images of "
      f"{d.shape[0]}x{d.shape[1]}",
      f"model: {self.describe_model()}; objective {self.trainer.objective.name}",
    ]

  def describe_model(self) -> str:
    if isinstance(self.model, HierarchicalVAE):
      return f"hierarchical VAE ({self.model.describe()})"
    return f"dense Bernoulli VAE, latent {self.model.latent_dim}, hidden {self.model.config.hidden}"

  def save(self, workdir: str) -> None:
    self.workdir = workdir

  def periodic_eval(self, state, config) -> dict[str, float]:
    """Mean objective loss, -log p(x|z) and KL over `eval_batches` test batches."""
    return self.test_loss_means(state, config)

  def final_eval(self, state, config) -> dict[str, Any]:
    """Test-set ELBO and IW-NLL (nats per image), KL, and a PNG grid of samples; for a
    hierarchical VAE also KL and active units per stochastic layer and the mean L^{>k} for
    k = 0..L-1 (eval.l_above_samples one-sample estimates per image; 0: skip)."""
    ec = config.eval
    variables = self.trainer.variables(state)
    key = jax.random.key(config.seed + 7)
    res: dict[str, Any] = {
      "step": int(state.step),
      "params": "ema" if state.ema_params is not None else "raw",
    }
    n_test = int(ec.get("num_test", 0)) or len(self.test_arrays)
    res.update(
      {
        f"test/{k}": v
        for k, v in likelihood.evaluate_images(
          self.trainer.eval_model,
          variables,
          self.test_arrays[:n_test],
          jax.random.fold_in(key, 1),
          batch_size=int(ec.get("batch_size", 100)),
          num_samples=int(ec.get("iw_samples", 1000)),
          chunk=int(ec.get("iw_chunk", 100)),
        ).items()
      }
    )
    if isinstance(self.model, HierarchicalVAE):  # KL and active units per stochastic layer
      layers = hierarchy.layer_report(
        self.trainer.eval_model,
        variables,
        self.test_arrays[:n_test],
        jax.random.fold_in(key, 3),
        batch_size=int(ec.get("batch_size", 100)),
      )
      res.update({f"test/{k}": v for k, v in layers.items()})
      s = int(ec.get("l_above_samples", 1))
      if s > 0:  # paper 002 Eq 3 for k = 0..L-1: the mean over the test images
        scores = hierarchy.l_above_k(
          self.trainer.eval_model,
          variables,
          self.test_arrays[:n_test],
          jax.random.fold_in(key, 4),
          num_samples=s,
          batch_size=int(ec.get("batch_size", 100)),
        )
        res.update({f"test/l_above/{k}": float(np.mean(row)) for k, row in enumerate(scores)})
    if self.workdir:
      n = int(ec.get("num_samples_png", 100))
      imgs = np.asarray(self.trainer.generate(variables, jax.random.fold_in(key, 2), n, False))
      res["samples_png"] = image_grid.save_image_grid(
        imgs,
        self.data.shape,
        os.path.join(self.workdir, SAMPLES_PNG),
        title=f"samples at step {int(state.step)}",
      )
    return res

  def summary(self, res: dict[str, Any]) -> str:
    lines = [
      f"evaluation at step {res['step']} ({res['params']} parameters), "
      f"{res['test/num_examples']} test images",
      f"  test ELBO {res['test/elbo']:.3f} nats  (-log p(x|z) {res['test/recon']:.3f}, "
      f"KL {res['test/kl']:.3f})",
      f"  test IW-NLL (k = {res['test/num_samples']}) {res['test/iw_nll']:.3f} nats",
    ]
    layers = hierarchy.format_layers(res)
    if layers:
      lines.append("  per stochastic layer (top first):")
      lines.extend(layers)
    above = sorted((int(k.split("/")[-1]), v) for k, v in res.items() if "/l_above/" in k)
    if above:
      lines.append(
        "  L^{>k} (paper 002 Eq 3), nats: " + ", ".join(f"k={k} {v:.2f}" for k, v in above)
      )
    if "samples_png" in res:
      lines.append(f"  samples: {res['samples_png']}")
    return "\n".join(lines)
