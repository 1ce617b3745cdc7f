"""Activations and initialisers shared by every Alala module (paper 000, App B).

CELU with alpha=3 is the default activation; the GRU candidate uses min(CELU(x, 3), 6). Both are
`jax.custom_jvp` functions whose derivative is computed from the *output*, so the backward pass
keeps only the output (DESIGN §5: 55 -> 30 ms for a B256/H128 GRU step on this CPU).
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

ALPHA = 3.0
CAP = 6.0

# TF's variance_scaling_initializer(scale=1.0): fan_in, normal truncated at 2 std (App B).
default_kernel_init = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")


@jax.custom_jvp
def celu(x: jax.Array) -> jax.Array:
  """CELU(x, alpha=3) = max(0, x) + min(0, 3 (exp(x / 3) - 1))."""
  return jnp.where(x > 0, x, ALPHA * jnp.expm1(jnp.minimum(x, 0.0) / ALPHA))


@celu.defjvp
def _celu_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  y = celu(x)
  return y, jnp.where(y > 0, 1.0, y / ALPHA + 1.0) * t


@jax.custom_jvp
def celu6(x: jax.Array) -> jax.Array:
  """min(CELU(x, 3), 6): the GRU candidate activation of App B.1."""
  return jnp.minimum(celu(x), CAP)


@celu6.defjvp
def _celu6_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  y = celu6(x)
  return y, jnp.where(y >= CAP, 0.0, jnp.where(y > 0, 1.0, y / ALPHA + 1.0)) * t


Dense = functools.partial(
  nn.Dense, kernel_init=default_kernel_init, bias_init=nn.initializers.zeros
)


class CeluDense(nn.Module):
  """Dense layer followed by CELU(3): the default embedding/state-producing layer."""

  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return celu(Dense(self.features)(x))
