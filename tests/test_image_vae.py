"""DenseImageVAE (models/image.py) against numpy references; the PNG grid (image_grid.py)."""

import dataclasses
import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from alala_jax import image_grid
from alala_jax.data import images
from alala_jax.models import base
from alala_jax.models.image import DenseImageVAE, ImageVAEConfig

P, D, HIDDEN, B = 64, 4, (16, 12), 5  # distinct widths: the decoder must mirror the encoder


@pytest.fixture(scope="module")
def model_and_vars():
  model = DenseImageVAE(ImageVAEConfig(num_pixels=P, latent_dim=D, hidden=HIDDEN))
  variables = model.init(jax.random.key(0), jnp.zeros((2, P)))
  return model, variables


def _binary(seed, n=B):
  return (np.random.default_rng(seed).random((n, P)) < 0.3).astype(np.float32)


def _dense(p, h):
  return h @ np.asarray(p["kernel"], np.float64) + np.asarray(p["bias"], np.float64)


def np_encode(params, x):
  """float64 reference: (mean, logvar) [B, D]."""
  h = np.asarray(x, np.float64)
  for i in range(len(HIDDEN)):
    h = np.tanh(_dense(params["encoder"][f"hidden_{i}"], h))
  return _dense(params["encoder"]["mean"], h), _dense(params["encoder_scale"], h)


def np_logits(params, z):
  """float64 reference decoder: z [n, D] -> logits [n, P]."""
  h = np.asarray(z, np.float64)
  for i in range(len(HIDDEN)):
    h = np.tanh(_dense(params["decoder"][f"hidden_{i}"], h))
  return _dense(params["decoder"]["logits"], h)


def np_bernoulli_nll(logits, x):
  """-sum_p [x log sigmoid(l) + (1 - x) log(1 - sigmoid(l))], stably, float64."""
  log_p1 = -np.logaddexp(0.0, -logits)  # log sigmoid(l)
  log_p0 = -np.logaddexp(0.0, logits)  # log (1 - sigmoid(l))
  return -np.sum(x * log_p1 + (1 - x) * log_p0, -1)


def test_parameter_and_output_shapes(model_and_vars):
  model, v = model_and_vars
  p = v["params"]
  assert set(v) == {"params"}
  assert set(p) == {"encoder", "encoder_scale", "decoder"}
  chex.assert_shape(p["encoder"]["hidden_0"]["kernel"], (P, 16))
  chex.assert_shape(p["encoder"]["hidden_1"]["kernel"], (16, 12))
  chex.assert_shape(p["encoder"]["mean"]["kernel"], (12, D))
  chex.assert_shape(p["encoder_scale"]["kernel"], (12, D))
  chex.assert_shape(p["decoder"]["hidden_0"]["kernel"], (D, 12))
  chex.assert_shape(p["decoder"]["hidden_1"]["kernel"], (12, 16))
  chex.assert_shape(p["decoder"]["logits"]["kernel"], (16, P))
  x = _binary(1)
  q, aux = model.encode(v, x)
  assert aux is None and isinstance(q, base.DiagGaussian)
  chex.assert_shape([q.mean, q.scale], (B, D))
  z = model.reparameterize(v, q, jax.random.key(1))
  rec = model.recon(v, x, z, aux, key=None)
  chex.assert_shape([rec.nll, rec.loss, rec.fields["pixels"]], (B,))
  chex.assert_shape(model.kl(q, z), (B,))
  chex.assert_shape(model.decode(v, z, jax.random.key(2)), (B, P))
  chex.assert_shape(model.sample(v, jax.random.key(3), 7), (7, P))
  assert model.latent_dim == D and model.kl_scale == 1.0


def test_iwae_defaults():
  c = ImageVAEConfig(num_pixels=784)
  assert (c.latent_dim, c.hidden, c.activation) == (50, (200, 200), "tanh")


def test_encode_matches_numpy(model_and_vars):
  model, v = model_and_vars
  x = _binary(2)
  q, _ = model.encode(v, x)
  mean, logvar = np_encode(v["params"], x)
  np.testing.assert_allclose(q.mean, mean, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(q.scale, np.exp(0.5 * logvar), rtol=1e-5)


@pytest.mark.parametrize("weight_scale", [1.0, 40.0], ids=["plain", "saturated_logits"])
def test_recon_nll_matches_numpy_bernoulli(model_and_vars, weight_scale):
  model, v = model_and_vars
  # weight_scale 40 drives the logits to |l| ~ 100: a naive log(sigmoid) would give inf
  params = {
    **v["params"],
    "decoder": jax.tree.map(lambda a: a * weight_scale, v["params"]["decoder"]),
  }
  x = _binary(3)
  z = np.random.default_rng(4).normal(size=(B, D)).astype(np.float32)
  rec = model.recon({"params": params}, x, jnp.asarray(z), None, key=None)
  logits = np_logits(params, z)
  if weight_scale > 1:
    assert np.abs(logits).max() > 50
  want = np_bernoulli_nll(logits, x)
  assert np.all(np.isfinite(rec.nll))
  np.testing.assert_allclose(rec.nll, want, rtol=2e-5)
  np.testing.assert_array_equal(rec.loss, rec.nll)
  np.testing.assert_array_equal(rec.fields["pixels"], rec.nll)


def test_kl_matches_float64_closed_form(model_and_vars):
  model, v = model_and_vars
  params = {**v["params"], "encoder": jax.tree.map(lambda a: 3 * a, v["params"]["encoder"])}
  x = _binary(5)
  q, _ = model.encode({"params": params}, x)
  mean, logvar = np_encode(params, x)
  want = 0.5 * np.sum(mean**2 + np.exp(logvar) - 1.0 - logvar, -1)
  np.testing.assert_allclose(model.kl(q, None), want, rtol=1e-5, atol=1e-6)


def test_partition_labels_and_encoder_only_update(model_and_vars):
  model, v = model_and_vars
  labels = model.partition(v["params"])
  flat = {
    jax.tree_util.keystr(path): lab for path, lab in jax.tree_util.tree_leaves_with_path(labels)
  }
  assert flat and all(
    lab == ("decoder" if k.startswith("['decoder']") else "encoder") for k, lab in flat.items()
  )
  assert any(k.startswith("['encoder_scale']") for k in flat)
  # the labels drive optax.multi_transform: an encoder-only step leaves the decoder unchanged
  tx = optax.multi_transform({"encoder": optax.sgd(0.1), "decoder": optax.set_to_zero()}, labels)
  grads = jax.tree.map(jnp.ones_like, v["params"])
  updates, _ = tx.update(grads, tx.init(v["params"]), v["params"])
  new = optax.apply_updates(v["params"], updates)
  chex.assert_trees_all_equal(new["decoder"], v["params"]["decoder"])
  assert not np.allclose(new["encoder_scale"]["bias"], v["params"]["encoder_scale"]["bias"])


def test_level_collections_name_top_level_params(model_and_vars):
  model, v = model_and_vars
  assert dict(model.level_collections) == {"params": ("encoder_scale",)}
  for coll, names in model.level_collections.items():
    assert set(names) <= set(v[coll])


def test_decode_is_binary_and_samples_the_bernoulli(model_and_vars):
  model, v = model_and_vars
  n = 4000
  z = jnp.broadcast_to(jnp.asarray([[0.5, -1.0, 0.2, 1.5]]), (n, D))
  x = np.asarray(model.decode(v, z, jax.random.key(7)))
  greedy = np.asarray(model.decode(v, z[:3], jax.random.key(7), greedy=True))
  assert set(np.unique(x)) <= {0.0, 1.0} and set(np.unique(greedy)) <= {0.0, 1.0}
  logits = np_logits(v["params"], np.asarray(z[:1]))[0]
  np.testing.assert_array_equal(greedy, np.broadcast_to(logits > 0, (3, P)).astype(np.float32))
  p = 1 / (1 + np.exp(-logits))
  assert np.all(np.abs(x.mean(0) - p) < 5 * np.sqrt(p * (1 - p) / n) + 1e-3)


def test_model_is_immutable_and_a_static_jit_argument():
  a = DenseImageVAE(ImageVAEConfig(num_pixels=P, latent_dim=D, hidden=[16, 12]))
  b = DenseImageVAE(ImageVAEConfig(num_pixels=P, latent_dim=D, hidden=(16, 12)))
  assert a == b and hash(a) == hash(b)
  assert a != DenseImageVAE(ImageVAEConfig(num_pixels=P, latent_dim=D + 1, hidden=HIDDEN))
  with pytest.raises(dataclasses.FrozenInstanceError):
    a.config = b.config
  v = a.init(jax.random.key(0), jnp.zeros((1, P)))
  f = jax.jit(lambda m, v, z: m.logits(v, z), static_argnums=0)
  chex.assert_shape(f(a, v, jnp.zeros((3, D))), (3, P))


def test_bad_inputs_raise(model_and_vars):
  model, v = model_and_vars
  with pytest.raises(ValueError, match=r"\[B, 64\]"):
    model.encode(v, jnp.zeros((2, P + 1)))
  with pytest.raises(ValueError, match="latents"):
    model.decode(v, jnp.zeros((2, D + 1)), jax.random.key(0))
  with pytest.raises(ValueError, match="activation"):
    ImageVAEConfig(num_pixels=P, activation="swishy")


def test_adam_training_lowers_negative_elbo():
  data = images.synthetic_images(n=600, size=8, seed=0)
  model = DenseImageVAE(ImageVAEConfig(num_pixels=64, latent_dim=4, hidden=(32,)))
  params = model.init(jax.random.key(0), data.train[:2])["params"]
  tx = optax.adam(1e-2)

  def neg_elbo(params, x, key):
    v = {"params": params}
    q, aux = model.encode(v, x)
    z = model.reparameterize(v, q, key)
    return jnp.mean(model.recon(v, x, z, aux, key=None).loss + model.kl(q, z))

  @jax.jit
  def step(params, opt_state, x, key):
    loss, grads = jax.value_and_grad(neg_elbo)(params, x, key)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  eval_fn = jax.jit(
    lambda p: jnp.mean(
      jax.vmap(lambda k: neg_elbo(p, data.test, k))(jax.random.split(jax.random.key(99), 8))
    )
  )
  before = float(eval_fn(params))
  opt_state = tx.init(params)
  train = jnp.asarray(data.train)
  for i in range(200):
    idx = jax.random.randint(jax.random.key(i), (64,), 0, len(train))
    params, opt_state, _ = step(params, opt_state, train[idx], jax.random.key(1000 + i))
  after = float(eval_fn(params))
  assert np.isfinite(after)
  # measured: ~47 nats at init (64 pixels at p ~ 1/2), ~25 after the 200 steps
  assert after < before - 10.0, (before, after)


# ------------------------------------------------------------------------- PNG grid --


def test_save_image_grid_writes_png(tmp_path, model_and_vars):
  import matplotlib.image

  model, v = model_and_vars
  x = np.asarray(model.sample(v, jax.random.key(0), 23))
  path = image_grid.save_image_grid(
    x, (8, 8), str(tmp_path / "grid.png"), ncols=10, scale=4, title="samples"
  )
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert 200 < os.path.getsize(path) < 200_000
  img = matplotlib.image.imread(path)
  # 3 rows x 10 columns of 8x8 with 1-pixel padding: 26 x 89 image pixels, 4 screen pixels each
  assert img.shape[1] == 89 * 4 and img.shape[0] >= 26 * 4


def test_image_mosaic_layout():
  x = np.arange(3 * 6, dtype=np.float32).reshape(3, 6) / 18
  m = image_grid.image_mosaic(x, (2, 3), ncols=2, pad=1, pad_value=-1)
  chex.assert_shape(m, (5, 7))
  np.testing.assert_array_equal(m[:2, :3], x[0].reshape(2, 3))
  np.testing.assert_array_equal(m[:2, 4:], x[1].reshape(2, 3))
  np.testing.assert_array_equal(m[3:, :3], x[2].reshape(2, 3))
  assert np.all(m[3:, 4:] == -1) and np.all(m[2] == -1)


@pytest.mark.parametrize(
  "shape,arr",
  [((8, 8), np.zeros((4, 63))), ((8, 8), np.zeros(64)), ((7, 9), np.zeros((2, 64)))],
  ids=["wrong_width", "not_2d", "wrong_hw"],
)
def test_save_image_grid_rejects_wrong_shape(tmp_path, shape, arr):
  with pytest.raises(ValueError, match="images must be"):
    image_grid.save_image_grid(arr, shape, str(tmp_path / "x.png"))
  assert not (tmp_path / "x.png").exists()


def test_image_grid_import_leaves_matplotlib_alone():
  code = "import sys, alala_jax.image_grid; assert 'matplotlib' not in sys.modules"
  subprocess.run(
    [sys.executable, "-c", code],
    check=True,
    cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
  )
