"""The GRU variant used everywhere in Alala (paper 000, App B.1).

  z = sigmoid(W_z x + U_z h + b_z)          update gate: zero weights, bias 1
  r = sigmoid(W_r x + U_r h + b_r)          reset gate: default init
  c = min(CELU(W_h x + U_h (r * h) + b_h, 3), 6)
  h' = z * h + (1 - z) * c

Each gate's kernel acts on the concatenation [x, h] (TF's concatenated kernel), so the variance
scaling fan-in counts input + state.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from alala_jax.nn import layers


class GRUCell(nn.Module):
  """Alala GRU cell. Call as ``h_new = cell(h, x)``.

  Attributes:
    features: state size H.
  """

  features: int

  @nn.compact
  def __call__(self, h: jax.Array, x: jax.Array) -> jax.Array:
    """Args: h [..., H], x [..., I]. Returns: h' [..., H]."""
    xh = jnp.concatenate([x, h], axis=-1)
    z = jax.nn.sigmoid(
      nn.Dense(
        self.features,
        kernel_init=nn.initializers.zeros,
        bias_init=nn.initializers.ones,
        name="update",
      )(xh)
    )
    r = jax.nn.sigmoid(layers.Dense(self.features, name="reset")(xh))
    c = layers.celu6(
      layers.Dense(self.features, name="candidate")(jnp.concatenate([x, r * h], axis=-1))
    )
    return z * h + (1.0 - z) * c


REMAT_POLICIES = {
  "none": None,
  # keep the matmul outputs, recompute the gates' elementwise work in the backward pass
  "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
  # keep nothing but the carry: recompute the whole cell (1/3 more matmul FLOPs)
  "full": jax.checkpoint_policies.nothing_saveable,
}


def cell_class(remat: str = "none") -> type[nn.Module]:
  """`GRUCell`, or `GRUCell` under `nn.remat` with one of `REMAT_POLICIES` (same parameters).

  Inside a scan, every residual the backward pass needs is stacked over time; saving only the
  matmul outputs ('dots') cuts those stacked buffers (and XLA's copies of them) without more
  FLOPs. Measured in BUILD_NOTES ("Performance work").
  """
  if remat not in REMAT_POLICIES:
    raise ValueError(f"gru_remat must be one of {sorted(REMAT_POLICIES)}, got {remat!r}")
  if remat == "none":
    return GRUCell
  return nn.remat(GRUCell, policy=REMAT_POLICIES[remat])


def gru_reference(params: dict, h, x):
  """Plain numpy-style reference of one GRU step from a `GRUCell` param dict (for tests)."""
  import numpy as np

  xh = np.concatenate([x, h], -1)
  sig = lambda v: 1 / (1 + np.exp(-v))
  z = sig(xh @ params["update"]["kernel"] + params["update"]["bias"])
  r = sig(xh @ params["reset"]["kernel"] + params["reset"]["bias"])
  pre = np.concatenate([x, r * h], -1) @ params["candidate"]["kernel"] + params["candidate"]["bias"]
  celu = np.where(pre > 0, pre, 3 * np.expm1(np.minimum(pre, 0) / 3))
  return z * h + (1 - z) * np.minimum(celu, 6)
