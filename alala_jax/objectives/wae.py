"""The WAE baseline's latent loss (paper 000 App I): squared 2-Wasserstein distance between a
Gaussian fit N(m, Sigma) of the batch of latents and the prior N(0, I),

  W2(N(m, Sigma), N(0, I))^2 = ||m||^2 + ||Sigma^(1/2) - I||_F^2
                             = ||m||^2 + sum_i (sqrt(lambda_i) - 1)^2,

lambda_i the eigenvalues of Sigma (Sigma^(1/2) and I commute, so the Frobenius norm is over the
eigenvalues). Sigma is the sample covariance (ddof = 1). The paper weighs it 0.128 "per latent
dimension": loss = recon + 0.128 W2^2 / D, the same convention as beta (the model's kl_scale;
objectives/beta.py). Registered as 'wae'; the encoder is deterministic (z = mu).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from alala_jax.nn.moments import weighted_moments
from alala_jax.objectives.base import Objective, Terms, no_state, register
from alala_jax.objectives.beta import beta_from_config

EIG_FLOOR = 1e-6  # sqrt'(0) is infinite: eigenvalues are floored (a rank-deficient batch)


def w2_squared_standard_normal(z: jax.Array, w: jax.Array | None = None) -> jax.Array:
  """W2^2 between the Gaussian fit of z [N, D] (rows weighted by w) and N(0, I)."""
  mean, cov, _ = weighted_moments(z, w)
  lam = jnp.linalg.eigvalsh(0.5 * (cov + cov.T))
  return jnp.sum(mean**2) + jnp.sum((jnp.sqrt(jnp.maximum(lam, EIG_FLOOR)) - 1.0) ** 2)


def gaussian_w2_squared(m1, s1, m2, s2) -> jax.Array:
  """W2^2 between N(m1, S1) and N(m2, S2) (general form; for tests and analysis):
  ||m1 - m2||^2 + tr(S1 + S2 - 2 (S2^(1/2) S1 S2^(1/2))^(1/2))."""

  def sqrtm(a):
    lam, v = jnp.linalg.eigh(0.5 * (a + a.T))
    return (v * jnp.sqrt(jnp.maximum(lam, 0.0))) @ v.T

  r2 = sqrtm(s2)
  return jnp.sum((m1 - m2) ** 2) + jnp.trace(s1 + s2 - 2.0 * sqrtm(r2 @ s1 @ r2))


@register("wae")
def make_wae(config, model) -> Objective:
  """recon + beta W2^2(batch of z, N(0, I)) * kl_scale, deterministic encoder (App I)."""
  del model
  beta = beta_from_config(config)

  def loss(state, terms: Terms, *, step, level):
    del state
    b = beta(step)
    w2 = w2_squared_standard_normal(terms.z, terms.row_mask) * terms.kl_scale
    return jnp.mean(terms.recon.loss) + b * level.beta_scale * w2, {"beta": b, "wae/w2": w2}

  return Objective(
    name="wae",
    init=no_state,
    loss=loss,
    deterministic=True,
    latent_label="wae/w2",
    single_level=True,
  )
