"""Conditional generation by inference: records with some fields fixed, no rejection loop.

For each distinct condition ``{field: value, ...}``:

1. The fixed fields x_F are encoded once (the other fields get placeholders nothing reads).
2. M latent candidates z_1..z_M are drawn from the generation prior: the run's fitted prior
   (`alala_jax.latent_priors`, e.g. the aggregate posterior at temperature τ) or the model's
   tracked Gaussian.
3. Each candidate is weighted by the decoder's likelihood of the fixed fields,
   w_m ∝ p(x_F | z_m) (`RecordModel.field_nll`: generation's decoding, under which the fields
   are conditionally independent given z). Sampling-importance-resampling draws each record's
   z from the candidates with probability w_m; as M grows this is a draw from p(z | x_F) under
   the generation prior.
4. The free fields are decoded from z and the fixed fields are set to the conditions. The
   Tuple decoder never feeds a child's sample into the next field (it feeds back its own
   emitted embedding, paper 000 App B.3), so this is the decoder's own p(x_free | z): the same
   as teacher-forcing the fixed fields.

Every returned record satisfies its condition by construction. The effective sample size
(Σw)² / Σw² of each condition's candidates is reported: a small one means the condition is
rare under the model and its records share few latents (raise `candidates`).

Conditions name top-level str, Literal/category and Optional fields of the schema. Float fields
cannot be fixed yet: the decoder's float likelihood is the training surrogate, a unit-variance
Gaussian in whitened units (about one data standard deviation wide), far too wide a kernel to
condition on. Anything else, or a value the model cannot represent (a character outside the
vocabulary, a value outside a category field's values, a string longer than any training
value), raises `ConditionError` naming the column.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from alala_jax import latent_priors, refine
from alala_jax import schema as sc
from alala_jax.data import codec


class ConditionError(ValueError):
  """A condition the model cannot generate from; the message names the column."""

  def __init__(self, column: str, message: str):
    super().__init__(f"condition on {column!r}: {message}")
    self.column = column


@dataclasses.dataclass
class ConditionalReport:
  """What conditional sampling did."""

  groups: int  # distinct conditions
  candidates: int  # latent candidates scored per condition
  min_ess: float  # smallest effective sample size over the conditions
  mean_ess: float
  seconds: float

  def summary(self) -> str:
    return (
      f"{self.groups} distinct condition(s), {self.candidates} latent candidates each, "
      f"effective sample size min {self.min_ess:.1f} / mean {self.mean_ess:.1f}, "
      f"{self.seconds:.1f} s"
    )


def _leaf_kind(node: sc.Node) -> sc.Node:
  return node.child if isinstance(node, sc.OptionalNode) else node


def nll_keys(node: sc.Node) -> list[str]:
  """The `field_nll` names of a node's fields (as `alala_jax.nn.tree` names them)."""
  name = sc.path_name(node.path)
  if isinstance(node, sc.LEAF_STRINGS):
    return [name]
  if isinstance(node, sc.FloatsNode):
    prefix = sc.path_name(node.path[:-1])
    return [("" if prefix == "<root>" else prefix + ".") + "(" + ",".join(node.names) + ")"]
  if isinstance(node, sc.OptionalNode):
    return nll_keys(node.child) + [name + "?"]
  if isinstance(node, sc.ListNode):
    return nll_keys(node.child) + [name + "#"]
  return [k for c in node.children for k in nll_keys(c)]


def check_conditions(
  root: sc.RecordNode, spec: codec.DataSpec, conditions: Mapping[str, Any]
) -> list[sc.Node]:
  """Validates one condition; returns the schema nodes it fixes.

  Raises:
    ConditionError: naming the column, for an unknown column, a nested or list field, a float
      without its partner floats, a value of the wrong type, characters outside the
      vocabulary, a string longer than any training value, or a category value never seen.
  """
  by_key = {c.key: c for c in root.children if not isinstance(c, sc.FloatsNode)}
  floats = next((c for c in root.children if isinstance(c, sc.FloatsNode)), None)
  float_names = floats.names if floats is not None else ()
  names = [f.name for f in dataclasses.fields(root.cls)]
  fixed: list[sc.Node] = []
  for col, value in conditions.items():
    if col in float_names:
      raise ConditionError(
        col,
        "float fields cannot be fixed yet (the decoder's float likelihood is a unit-variance "
        "Gaussian in whitened units, too wide to condition on); fix str fields",
      )
    if col not in by_key:
      raise ConditionError(col, f"unknown column; the record's fields are {names}")
    node = by_key[col]
    leaf = _leaf_kind(node)
    if not isinstance(leaf, sc.LEAF_STRINGS):
      raise ConditionError(
        col, f"conditions on {type(leaf).__name__} fields are not supported (str fields only)"
      )
    if value is None:
      if not isinstance(node, sc.OptionalNode):
        raise ConditionError(col, "None is only a value of Optional fields")
    elif not isinstance(value, str):
      raise ConditionError(col, f"expected a string, got {type(value).__name__} {value!r}")
    elif isinstance(leaf, sc.CategoryNode):
      values = spec.categories[sc.path_name(leaf.path)]
      if value not in values:
        raise ConditionError(
          col, f"{value!r} is not one of the field's {len(values)} values (e.g. {values[:3]})"
        )
    else:
      outside = sorted(set(value) - set(spec.chars))
      if outside:
        raise ConditionError(col, f"characters {outside} are outside the model's vocabulary")
      max_len = spec.max_len[sc.path_name(leaf.path)]
      if len(value) > max_len:
        raise ConditionError(
          col, f"{len(value)} characters, longer than any training value ({max_len})"
        )
    fixed.append(node)
  return fixed


def _template(root: sc.RecordNode, conditions: Mapping[str, Any]) -> dict[str, Any]:
  """A record (as a dict) with the conditions and placeholders for every other field."""
  rec: dict[str, Any] = {}
  for c in root.children:
    if isinstance(c, sc.FloatsNode):
      rec.update({f: float(conditions.get(f, 0.0)) for f in c.names})
    else:
      rec[c.key] = conditions.get(c.key)
  return rec


def _pad(a: jax.Array, n: int) -> jax.Array:
  return jnp.concatenate([a, jnp.zeros((n - a.shape[0],) + a.shape[1:], a.dtype)], 0)


def generation_prior(
  task, variables, prior: latent_priors.Prior | None, temperature: float
) -> tuple[latent_priors.Prior, float]:
  """`(prior, temperature)`, or the model's tracked Gaussian at temperature 1 when `prior` is
  None (as unconditional generation samples it)."""
  if prior is not None:
    return prior, temperature
  mean, cov = task.prior_moments(variables)
  return latent_priors.gaussian(mean, cov), 1.0


def _score(task, variables, x1: Any, keys: list[str], z: jax.Array, key, chunk: int) -> jax.Array:
  """-sum of the fixed fields' nll for each candidate z [M, D] (x1: a batch of 1)."""
  xb = jax.tree.map(lambda a: jnp.repeat(jnp.asarray(a), chunk, 0), x1)
  out = []
  for i in range(0, z.shape[0], chunk):
    zc = z[i : i + chunk]
    nll = task.field_nll(variables, xb, _pad(zc, chunk), jax.random.fold_in(key, i))
    out.append(-sum(nll[k] for k in keys)[: zc.shape[0]])
  return jnp.concatenate(out)


DEFAULT_SVI = refine.SVIConfig(
  steps=20, lr=0.05, momentum=0.5, clip=5.0, mode="per_example", batch_scale=1, variant="svi"
)  # lr: of 0.002-0.2 on the Vermont model, 0.05 lowered the loss most in 20 steps (BUILD_NOTES)


@functools.lru_cache(maxsize=8)
def _refine_fn(model, svi: refine.SVIConfig):
  """jit (variables, x [B], fixed {nll name: 0/1}, lam0, prior, key) -> (lambda_K, losses [K]),
  compiled once per model, SVI config and shapes."""
  ref = refine.Refinement(svi)

  @jax.jit
  def run(variables, xb, fixed, lam0, prior, key):
    def example_loss(lam, variables, eps, k):  # -ELBO of the fixed fields under the prior
      q = refine.to_posterior(lam)
      z = q.mean + q.scale * eps
      nll = model.field_nll(variables, xb, z, k)
      log_q = jnp.sum(jax.scipy.stats.norm.logpdf(eps) - jnp.log(q.scale), -1)
      return sum(nll[name] * fixed[name] for name in nll) + log_q - prior.log_prob(z)

    return ref.svi(
      None,
      variables,
      None,
      None,
      lam0,
      key,
      kl_weight=1.0,
      train=False,
      through=False,
      example_loss=example_loss,
    )

  return run


def refine_latents(
  task,
  variables,
  x1: Any,
  keys: Sequence[str],
  z0: jax.Array,
  prior: latent_priors.Prior,
  temperature: float,
  key: jax.Array,
  svi: refine.SVIConfig = DEFAULT_SVI,
  init_scale: float | jax.Array | None = None,
  chunk: int = 512,
) -> tuple[jax.Array, np.ndarray]:
  """K steps of SVI from each latent z0 [n, D] (the core's refinement hook, `alala_jax.refine`,
  with this loss): q_lambda = N(mu, diag sigma^2) is fitted to p(z | x_F) ∝ p_gen(z) p(x_F | z),
  minimising E_q[-log p(x_F | z) - log p_gen(z) + log q(z)] by the hook's momentum SGD, from
  lambda_0 = (z0, log init_scale^2) (init_scale: [D] or [n, D]; `infer_latents` passes the
  spread of the prior component each z0 was drawn from; default: per dimension, the median
  spread of the prior's components); p_gen is the generation prior at `temperature`
  (`latent_priors.tempered`). Returns (z ~ q_lambda_K [n, D], the loss per record at each step
  [K], nats; a last chunk is padded with copies of its last row): each record gets its own
  draw, so records that SIR gave the same candidate differ."""
  if svi.mode != "per_example":
    raise ValueError(
      "conditional SVI needs refine.SVIConfig(mode='per_example'): in 'reference' mode the "
      "batch-wide clip and step couple the records (and the padding rows)"
    )
  prior_t = latent_priors.tempered(prior, temperature)
  if init_scale is None:  # per dimension, the median spread of the tempered prior's components
    spread = prior_t.scales if isinstance(prior_t, latent_priors.Aggregate) else None
    if spread is None:
      spread = jnp.sqrt(jnp.sum(prior_t.chols**2, -1))  # [K, D]: sqrt of the diagonal of cov
    init_scale = jnp.median(spread, axis=0)
  log_var0 = jnp.broadcast_to(2.0 * jnp.log(jnp.asarray(init_scale)), z0.shape)
  run = _refine_fn(task.model, svi)
  n = z0.shape[0]
  chunk = min(chunk, 1 << max(3, (n - 1).bit_length()))  # a small group: a small batch
  xb = jax.tree.map(lambda a: jnp.repeat(jnp.asarray(a), chunk, 0), x1)
  fixed = {name: jnp.float32(name in keys) for name in nll_keys(task.root)}
  out, losses = [], []
  for i in range(0, z0.shape[0], chunk):
    edge = lambda a: jnp.pad(a, ((0, chunk - a.shape[0]), (0, 0)), mode="edge")
    lam0 = (edge(z0[i : i + chunk]), edge(log_var0[i : i + chunk]))
    k_svi, k_z = jax.random.split(jax.random.fold_in(key, i))
    lam, ell = run(variables, xb, fixed, lam0, prior_t, k_svi)
    q = refine.to_posterior(lam)
    z = q.mean + q.scale * jax.random.normal(k_z, q.mean.shape)
    rows = min(chunk, n - i)
    out.append(z[:rows])
    # the step's loss is sum / batch_scale over the chunk (padding copies included)
    losses.append(rows * np.asarray(ell) * svi.batch_scale / chunk)
  return jnp.concatenate(out), np.sum(losses, 0) / n


def infer_latents(
  task,
  variables,
  conditions: Mapping[str, Any],
  n: int,
  key: jax.Array,
  prior: latent_priors.Prior,
  temperature: float = 1.0,
  candidates: int = 4096,
  chunk: int = 512,
  svi: refine.SVIConfig | None = None,
) -> tuple[jax.Array, float]:
  """n latents for one condition by sampling-importance-resampling, then (`svi`) K steps of SVI
  from each (`refine_latents`); returns (z [n, D], ESS of the candidates)."""
  fixed = check_conditions(task.root, task.spec, conditions)
  keys = [k for node in fixed for k in nll_keys(node)]
  x1, _ = codec.encode(task.root, task.spec, [_template(task.root, conditions)])
  k_z, k_s, k_r, k_svi = jax.random.split(key, 4)
  z = prior.sample(k_z, candidates, temperature)
  logw = _score(task, variables, x1, keys, z, k_s, chunk)
  w = jax.nn.softmax(logw)
  ess = float(1.0 / jnp.sum(w**2))
  idx = jax.random.categorical(k_r, logw, shape=(n,))
  z = z[idx]
  if svi is not None and svi.steps:  # q_0 = the prior component each latent was drawn from
    scales = prior.component_scales(k_z, candidates, temperature)[idx]
    z, _ = refine_latents(
      task, variables, x1, keys, z, prior, temperature, k_svi, svi, scales, chunk
    )
  return z, ess


def sample(
  task,
  state,
  conditions: Mapping[str, Any] | Sequence[Mapping[str, Any]],
  key: jax.Array,
  n: int | None = None,
  prior: latent_priors.Prior | None = None,
  temperature: float = 1.0,
  candidates: int = 4096,
  chunk: int = 512,
  greedy: bool = False,
  as_dict: bool = False,
  svi: refine.SVIConfig | None = None,
) -> tuple[list[Any], ConditionalReport]:
  """Records that satisfy `conditions`, generated by inference (module docstring).

  Args:
    task: a `RecordTask` (data not needed).
    state: the trained state.
    conditions: one condition for all `n` records, or one per record (then `n` is their count).
    key: PRNG key.
    n: number of records for a single condition.
    prior: the generation prior (None: the model's tracked Gaussian).
    temperature: the prior's temperature (the run's `eval.prior_temperature`).
    candidates: latent candidates scored per distinct condition.
    chunk: decoder batch size.
    greedy: argmax decoding of the free fields.
    as_dict: return dicts instead of dataclass instances.
    svi: refine each drawn latent by K steps of SVI (`refine_latents`; e.g. `DEFAULT_SVI`);
      None: importance sampling alone.

  Returns:
    ``(records, report)`` in the order of `conditions`.
  """
  t0 = time.time()
  if svi is not None and svi.steps and prior is not None and temperature <= 0:
    raise ValueError("SVI refinement needs a prior temperature > 0")
  if isinstance(conditions, Mapping):
    if n is None:
      raise ValueError("give n with a single condition")
    conditions = [conditions] * n
  conditions = [dict(c) for c in conditions]
  variables = task.variables(state)
  prior, temperature = generation_prior(task, variables, prior, temperature)
  groups: dict[tuple, list[int]] = {}
  for i, c in enumerate(conditions):
    groups.setdefault(tuple(sorted(c.items(), key=lambda kv: kv[0])), []).append(i)
  d = task.model.latent_dim
  z_all = np.zeros((len(conditions), d), np.float32)
  ess = []
  for g, (cond, rows) in enumerate(groups.items()):
    z, e = infer_latents(
      task,
      variables,
      dict(cond),
      len(rows),
      jax.random.fold_in(key, g),
      prior,
      temperature,
      candidates,
      chunk,
      svi,
    )
    z_all[rows] = np.asarray(z)
    ess.append(e)
  out: list[Any] = []
  k_dec = jax.random.fold_in(key, len(groups))
  for i in range(0, len(conditions), chunk):
    zc = jnp.asarray(z_all[i : i + chunk])
    arrays = task.decode_latents(variables, _pad(zc, chunk), jax.random.fold_in(k_dec, i), greedy)
    recs = codec.decode(task.root, task.spec, jax.device_get(arrays), as_dict)[: zc.shape[0]]
    for r, c in zip(recs, conditions[i : i + chunk]):
      out.append({**r, **c} if as_dict else dataclasses.replace(r, **c))
  report = ConditionalReport(
    len(groups), candidates, float(min(ess)), float(np.mean(ess)), time.time() - t0
  )
  return out, report


@dataclasses.dataclass
class RejectionReport:
  accepted: int
  generated: int
  seconds: float

  @property
  def acceptance(self) -> float:
    return self.accepted / max(self.generated, 1)


def rejection_sample(
  task,
  state,
  conditions: Mapping[str, Any],
  n: int,
  key: jax.Array,
  prior: latent_priors.Prior | None = None,
  temperature: float = 1.0,
  chunk: int = 1000,
  max_generated: int = 1_000_000,
) -> tuple[list[Any], RejectionReport]:
  """The baseline (SDV's method): generate unconditionally and keep the records whose fields
  equal the conditions, until n are kept or `max_generated` records were tried (then fewer
  than n are returned; the report says how many)."""
  from alala_jax import generate  # generate imports evaluate's dependencies; keep this light

  t0 = time.time()
  check_conditions(task.root, task.spec, conditions)
  if prior is None:
    temperature = 1.0  # generate_records samples the tracked Gaussian itself
  kept: list[Any] = []
  tried = 0
  i = 0
  while len(kept) < n and tried < max_generated:
    recs = generate.generate_records(
      task, state, chunk, jax.random.fold_in(key, i), chunk, prior=prior, temperature=temperature
    )
    tried += len(recs)
    kept.extend(r for r in recs if all(getattr(r, f) == v for f, v in conditions.items()))
    i += 1
  return kept[:n], RejectionReport(min(len(kept), n), tried, time.time() - t0)
