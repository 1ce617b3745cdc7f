"""Augmented training (paper 000 Sec 5): re-initialisation statistics, sampled latents."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alala_jax.objectives import augmented


def test_reinitialisation_statistics_match_p_sampled():
  b, n, d, p = 64, 32, 3, 0.2
  aug = augmented.augmented(n, p)
  z_real = jnp.arange(1, b + 1, dtype=jnp.float32)[:, None] * jnp.ones((1, d))      # > 0
  z_var = -jnp.arange(1, n + 1, dtype=jnp.float32)[:, None] * jnp.ones((1, d))      # < 0
  keys = jax.random.split(jax.random.key(0), 4000)
  z = jax.vmap(lambda k: aug.update(aug.init(d), z_real, z_var, k).z)(keys)          # [K, n, d]
  from_real = np.asarray(z[..., 0] > 0)
  share = from_real.mean()
  sd = np.sqrt(p * (1 - p) / from_real.size)
  assert abs(share - p) < 5 * sd, (share, p)
  # a row not re-initialised keeps the latent of ITS OWN variant
  np.testing.assert_array_equal(np.asarray(z[..., 0])[~from_real],
                                np.broadcast_to(-np.arange(1, n + 1), z.shape[:2])[~from_real])
  # real examples are drawn without replacement within a step
  for k in range(200):
    picked = np.asarray(z[k, :, 0])[from_real[k]]
    assert len(set(picked)) == len(picked)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_reinitialisation_extremes(p):
  aug = augmented.augmented(4, p)
  z = aug.update(aug.init(2), jnp.ones((8, 2)), -jnp.ones((4, 2)), jax.random.key(1)).z
  assert bool(jnp.all(z > 0)) == (p == 1.0)


def test_bad_arguments():
  with pytest.raises(ValueError, match="n_augmented must be"):
    augmented.augmented(0)
  with pytest.raises(ValueError, match="p_sampled"):
    augmented.augmented(4, 1.5)
  aug = augmented.augmented(8)
  with pytest.raises(ValueError, match="exceeds the batch size"):
    aug.update(aug.init(2), jnp.ones((4, 2)), jnp.ones((8, 2)), jax.random.key(0))
