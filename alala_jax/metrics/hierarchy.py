"""Per-layer metrics of a hierarchical VAE (paper 002's figure of KL and active units per
layer): for every stochastic variable (slot) of `alala_jax.models.hierarchical.HierarchicalVAE`,

* the mean KL row of the model (`model.kl` at a posterior sample: the one-sample log q - log p
  by default, or the closed form where the model uses it), nats per example;
* the active units: dimensions whose posterior mean varies over the data, Var_x E_q[z_d] >= 0.01
  (Burda et al. 2016, `metrics.latent.au_from_means`), with E_q[z] taken as the model's mean
  path (each slot at its conditional mean given the means above: q is sequential, so this is
  the mean of the mean-field pass, not the exact marginal mean of a slot).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from alala_jax.metrics.latent import au_from_means


def layer_report(
  model, variables: dict, x: Any, key: jax.Array, batch_size: int = 100, threshold: float = 0.01
) -> dict[str, float]:
  """{'kl/<slot>': mean KL, 'au/<slot>': active units, 'units/<slot>': its size} over x [N, P].

  Raises:
    ValueError: fewer than two examples (active units need a variance).
  """
  x = np.asarray(x)
  if x.shape[0] < 2:
    raise ValueError(f"layer_report needs at least 2 examples, got {x.shape[0]}")

  @jax.jit
  def batch(xb, k):
    post, _ = model.encode(variables, xb)
    z = model.reparameterize(variables, post, k)
    return post.mean, model.kl(post, z)

  means, kls = [], []
  for i in range(0, x.shape[0], batch_size):
    m, kl = batch(x[i : i + batch_size], jax.random.fold_in(key, i))
    means.append(np.asarray(m))
    kls.append(np.asarray(kl))
  means, kl = np.concatenate(means, 0), np.concatenate(kls, 1)  # [N, D], [L', N]
  out: dict[str, float] = {}
  for s, row in zip(model.slots, kl):
    out[f"kl/{s.name}"] = float(np.mean(row))
    out[f"au/{s.name}"] = float(
      au_from_means(means[:, s.start : s.start + s.size], threshold)["au"]
    )
    out[f"units/{s.name}"] = float(s.size)
  return out


def format_layers(res: dict[str, Any], prefix: str = "test/") -> list[str]:
  """One line per slot: KL and active units / units, top layer first."""
  names = [k[len(prefix) + 3 :] for k in res if k.startswith(prefix + "kl/")]
  return [
    f"    {n}: KL {res[f'{prefix}kl/{n}']:.3f} nats, active units "
    f"{int(res[f'{prefix}au/{n}'])} / {int(res[f'{prefix}units/{n}'])}"
    for n in reversed(names)
  ]
