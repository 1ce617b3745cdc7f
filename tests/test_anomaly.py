"""Paper 002's anomaly score on sets (metrics.hierarchy.l_above_k / anomaly_report) and the
Omniglot-as-MNIST out-of-distribution set (data.images.load_omniglot_28)."""

import os

import jax
import numpy as np
import pytest

from alala_jax.data import images
from alala_jax.metrics import hierarchy
from alala_jax.models.hierarchical import HierarchicalConfig, HierarchicalVAE


def test_area_resize_matrix_averages_exactly():
  w = images.area_resize_matrix(105, 28)
  np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-12)
  np.testing.assert_allclose(w.sum(0), 28 / 105, atol=1e-12)  # every input pixel counted once
  img = np.random.default_rng(0).random((105, 105))
  got = w @ img @ w.T
  # output pixel (0, 0) covers [0, 3.75)^2: 3 whole columns and rows plus 3/4 of the 4th
  r = np.array([1, 1, 1, 0.75])
  np.testing.assert_allclose(got[0, 0], (r[:, None] * r[None, :] * img[:4, :4]).sum() / 3.75**2)
  np.testing.assert_allclose(images.area_resize_matrix(8, 4) @ np.arange(8.0), [0.5, 2.5, 4.5, 6.5])


@pytest.mark.skipif(
  not os.path.exists(os.path.join(images.DEFAULT_OMNIGLOT_DIR, "images_evaluation.npz")),
  reason=f"no Omniglot in {images.DEFAULT_OMNIGLOT_DIR} (../shared/data)",
)
def test_omniglot_28_is_binary_strokes_on_background():
  x = images.load_omniglot_28(limit=200, seed=0)
  assert x.shape == (200, 784) and x.dtype == np.float32 and set(np.unique(x)) <= {0.0, 1.0}
  assert 0.03 < x.mean() < 0.3  # strokes are 1 and sparse, like MNIST's digits
  np.testing.assert_array_equal(x, images.load_omniglot_28(limit=200, seed=0))
  assert not np.array_equal(x, images.load_omniglot_28(limit=200, seed=1))
  with pytest.raises(ValueError, match="split"):
    images.load_omniglot_28(split="test")
  with pytest.raises(FileNotFoundError, match="nowhere"):
    images.load_omniglot_28("/nowhere")


def test_l_above_k_batches_and_anomaly_auc():
  """Per-example scores do not depend on the batching of the set beyond the keys (same batch
  size, same values; one batch equals the model method at the fold_in key averaged over
  samples), and the AUC report follows the rank definition."""
  model = HierarchicalVAE(
    HierarchicalConfig(num_pixels=16, variant="lvae+", latent_dims=(3, 2), hidden=6, block_layers=1)
  )
  x = (np.random.default_rng(0).random((10, 16)) < 0.3).astype(np.float32)
  v = model.init(jax.random.key(0), x)
  key = jax.random.key(1)
  got = hierarchy.l_above_k(model, v, x, key, num_samples=3, batch_size=4)
  assert got.shape == (2, 10) and np.all(np.isfinite(got))
  bkey = jax.random.fold_in(key, 4)  # the second batch: rows 4..7
  want = np.mean(
    [np.asarray(model.l_above_k(v, x[4:8], jax.random.fold_in(bkey, s), 1)) for s in range(3)], 0
  )
  np.testing.assert_allclose(got[1, 4:8], want, rtol=1e-5, atol=1e-4)
  rep = hierarchy.anomaly_report(got, got - 1.0, (0, 1))
  assert rep["l_above/0/auc"] > 0.5 and rep["l_above/1/in"] == pytest.approx(got[1].mean())
  same = hierarchy.anomaly_report(got, got, (0, 1))
  assert same["l_above/0/auc"] == pytest.approx(0.5)


def test_probe_overrides_parse_and_apply():
  from experiments import overrides
  from experiments.configs import images as images_config

  c = images_config.get_config("biva")
  overrides.apply_overrides(
    c, "model.q_dropout=0,model.latent_dims=32-16,optim.name=adam,model.weight_norm=false"
  )
  assert c.model.q_dropout == 0 and c.model.latent_dims == (32, 16)
  assert c.optim.name == "adam" and c.model.weight_norm is False
  assert overrides.parse_value("1e-3") == 1e-3
