"""Standard-deviation network sigma(mu) (paper 000, App B.4).

3 dense CELU layers (H -> H), then a sigmoid layer initialised with zero weights and bias -5, so
sigma starts near sigmoid(-5) = 0.0067 and stays in (0, 1).
"""

from __future__ import annotations

import flax.linen as nn
import jax

from alala_jax.nn import layers


class SigmaNet(nn.Module):
  features: int = 128
  hidden_layers: int = 3
  out_bias: float = -5.0

  @nn.compact
  def __call__(self, mu: jax.Array) -> jax.Array:
    """mu [..., H] -> sigma [..., H] in (0, 1)."""
    h = mu
    for _ in range(self.hidden_layers):
      h = layers.CeluDense(self.features)(h)
    return jax.nn.sigmoid(
      nn.Dense(
        self.features,
        kernel_init=nn.initializers.zeros,
        bias_init=nn.initializers.constant(self.out_bias),
      )(h)
    )
