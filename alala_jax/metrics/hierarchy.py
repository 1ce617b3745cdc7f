"""Per-layer metrics of a hierarchical VAE (paper 002's figure of KL and active units per
layer): for every stochastic variable (slot) of `alala_jax.models.hierarchical.HierarchicalVAE`,

* the mean KL row of the model (`model.kl` at a posterior sample: the one-sample log q - log p
  by default, or the closed form where the model uses it), nats per example;
* the active units: dimensions whose posterior mean varies over the data, Var_x E_q[z_d] >= 0.01
  (Burda et al. 2016, `metrics.latent.au_from_means`), with E_q[z] taken as the model's mean
  path (each slot at its conditional mean given the means above: q is sequential, so this is
  the mean of the mean-field pass, not the exact marginal mean of a slot).

`l_above_k` evaluates paper 002's L^{>k} (Eq 3) per example for several k, the anomaly score of
its Sec 4 (Table 6: higher k leans on the top layers' semantics, not on pixel statistics), and
`anomaly_report` compares in- and out-of-distribution sets by it (ROC AUC per k).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from alala_jax.data import batching
from alala_jax.metrics.latent import au_from_means
from alala_jax.metrics.privacy import auc


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


def l_above_k(
  model,
  variables: dict,
  x: Any,
  key: jax.Array,
  ks: Sequence[int] | None = None,
  *,
  num_samples: int = 1,
  batch_size: int = 100,
) -> np.ndarray:
  """L^{>k} per example [len(ks), N] of inputs x (an array [N, ...] or a pytree of them, e.g.
  encoded records) (nats; default ks 0..L-1): the mean of `num_samples`
  one-sample estimates (`HierarchicalVAE.l_above_k`, an expectation: averaged, not
  log-mean-exp'd). Batch b's sample s uses key fold_in(fold_in(key, b), s) for every k."""
  n = batching.num_rows(x)
  ks = tuple(range(model.config.num_layers)) if ks is None else tuple(int(k) for k in ks)
  if num_samples < 1:
    raise ValueError(f"num_samples must be >= 1, got {num_samples}")

  @jax.jit
  def batch(xb, k):
    keys = jax.vmap(lambda s: jax.random.fold_in(k, s))(jnp.arange(num_samples))
    per_k = [jax.vmap(lambda kk, k_=k_: model.l_above_k(variables, xb, kk, k_))(keys) for k_ in ks]
    return jnp.stack([jnp.mean(v, 0) for v in per_k])  # [K, B]

  out = [
    np.asarray(batch(jax.tree.map(lambda a: a[i : i + batch_size], x), jax.random.fold_in(key, i)))
    for i in range(0, n, batch_size)
  ]
  return np.concatenate(out, 1)


def anomaly_report(
  scores_in: np.ndarray, scores_out: np.ndarray, ks: Sequence[int]
) -> dict[str, float]:
  """Per k: the mean L^{>k} of both sets (nats) and the ROC AUC of "in-distribution scores
  higher" (0.5: no separation; 1: every in-distribution example above every outlier)."""
  res: dict[str, float] = {}
  for row, k in enumerate(ks):
    res[f"l_above/{k}/in"] = float(np.mean(scores_in[row]))
    res[f"l_above/{k}/out"] = float(np.mean(scores_out[row]))
    res[f"l_above/{k}/auc"] = auc(scores_in[row], scores_out[row])
  return res
