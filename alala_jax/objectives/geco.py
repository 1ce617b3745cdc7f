"""GECO (paper 003, Rezende & Viola 2018, Algorithm 1) as an optax-style objective triple.

GECO minimises the KL subject to expectation constraints on reconstruction terms,

  min KL(q(z | x) || p(z))   s.t.   E[C_k(x, x_hat)] <= 0,   k = 1..K,

through the Lagrangian KL + sum_k lambda_k C_k, minimised over the model parameters and
maximised over lambda_k >= 0. Algorithm 1 of the paper, which this module implements and
names "Algorithm 1" (not Sonnet's softplus^2 multiplier ascended by the model's optimiser, nor
the beta-form update with clamps of later re-implementations):

  C_hat_t = batch mean of C                                               [K]
  C_ma_t  = C_hat_t                                 if t = 0 (first batch)
          = alpha C_ma_{t-1} + (1 - alpha) C_hat_t  otherwise             (alpha = 0.99)
  C_t     = C_hat_t + stop_gradient(C_ma_t - C_hat_t)    value C_ma_t, gradient C_hat_t's
  loss    = KL + sum_k lambda_{t-1,k} C_t,k              with the CURRENT lambda (constant)
  after the optimiser step:
  lambda_t = lambda_{t-1} exp(nu C_ma_t)                 "lambda_t <- lambda_{t-1} exp(prop.
                                                          to C_ma)" (positive by construction)

`loss` computes C_ma_t from the state it is given and does not store it; `update` recomputes
it from the same (stop-gradient) terms, so both see the same value, then moves lambda and
stores C_ma_t with count + 1. `update` must get the terms the loss saw (the train step's
forward pass), not terms recomputed with the new parameters.

Constraints. A `Constraint` names one per-example term of `terms.recon`: a key of
`recon.fields`, or 'loss' (`recon.loss`) or 'nll' (`recon.nll`), which take precedence over a
field of the same name. C = mean_B(term) - tolerance ('le', the paper's E[C] <= 0 form). The
tolerance is on the scale of the term EXACTLY as the model returns it: for the paper's RE
constraint ||x - x_hat||^2 - kappa^2 it is kappa^2 when the term is the squared error summed
over the dimensions of x, kappa^2 / dim(x) when the model returns a mean. For the record VAE
(paper 000) a field term is that field's weighted reconstruction (string cross-entropy in nats
weighted 1 per field, whitened squared error summed over a float group such as '(lat,long)'),
'loss' is the field-weighted reconstruction / num_fields, 'nll' is -log p(x | z) in nats.
The batch mean is over all rows, real and augmented (as in objectives/beta.py): under augmented
training the decoded variants count as data, as they do in the ELBO of that scheme.

KL. The paper minimises the KL itself: the loss uses KL in nats summed over stochastic layers
(`terms.kl_total()`), batch-averaged, times `kl_weight` (1: the paper), NOT the model's
`kl_scale`. With one constraint on 'loss', KL + lambda (loss - tol) is proportional to
loss + kl_weight / lambda KL, so GECO's lambda maps to our beta (beta * kl_scale * KL in the
beta-ELBO) by beta = kl_weight / (lambda * kl_scale): for the record VAE (kl_scale =
1 / latent_dim) beta = latent_dim / lambda, e.g. beta = 0.384 at D = 128 is lambda = 333. GECO
has no beta schedule: `Level.beta_scale` (multiscale) is unused; under multiscale each level
has its own multipliers (its state gets a leading level axis).

nu (not in the paper, which only says "proportional to"). log lambda integrates nu C_ma, and
C_ma lags C_hat with time constant tau = 1 / (1 - alpha) = 100 steps. Linearising the
constraint around its solution, C ~ -g (log lambda - log lambda*) with g = -dC / dlog lambda,
gives the damped oscillator x'' + x' / tau + (nu g / tau) x = 0, critically damped at
nu = 1 / (4 tau g) = (1 - alpha) / (4 g). g is of the order of the constrained term itself
(a linear-Gaussian model has R = n / (2 lambda), so g = R), hence the default nu = 1e-2: damped
(zeta >= 0.5) for terms up to ~1 (record fields, per-field nats, mean squared errors), and
log lambda moves by 0.01 C_ma per step (a factor e in 100 / C_ma steps). For terms summed
over many dimensions (pixel squared errors ~10-100) pick nu ~ (1 - alpha) / (4 tolerance).

Clamp. log lambda is clipped to [log_lambda_min, log_lambda_max] = [-10, 10] by default
(lambda in [4.5e-5, 2.2e4]) after every update: a constraint that is slack for long
(C_ma < 0) would otherwise drive lambda towards 0 without bound and take unboundedly long to
recover when the constraint binds again (from the floor, -log_lambda_min / (nu C_ma) steps);
the ceiling keeps the loss finite in float32. For the record VAE (D = 128) the clamp allows
beta = D / lambda in [0.0058, 2.8e6], which holds paper 000's betas (0.01-1.28).
lambda_init (the paper's lambda_0 = 1) must lie inside the clamp.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from alala_jax.objectives import base

SPECIAL_TERMS = ("loss", "nll")  # Constraint.field values that name Recon.loss / Recon.nll
KINDS = ("le",)


class GECOState(NamedTuple):
  lagrange: jax.Array  # [K] multipliers lambda (one per constraint), > 0
  c_ma: jax.Array  # [K] moving average of the batch-mean constraint
  count: jax.Array  # [] int32 steps seen (0: C_ma not initialised)


@dataclasses.dataclass(frozen=True)
class Constraint:
  """E[term] <= tolerance on one per-example reconstruction term (module doc: scale).

  Attributes:
    name: the name in metrics ('geco/lambda/<name>').
    field: a key of `terms.recon.fields`, or 'loss' / 'nll' for `recon.loss` / `recon.nll`.
    tolerance: the bound on the batch mean of the term, on the term's own scale (kappa^2 for
      an RE constraint on a summed squared error).
    kind: 'le': C = mean_B(term) - tolerance <= 0.
  """

  name: str
  field: str
  tolerance: float
  kind: str = "le"

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f"constraint {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
    if not math.isfinite(self.tolerance):
      raise ValueError(f"constraint {self.name!r}: tolerance {self.tolerance!r} is not finite")


def _term(terms: base.Terms, c: Constraint) -> jax.Array:
  """The per-example term [B] constraint c reads (a clear KeyError at trace time)."""
  if c.field == "loss":
    return terms.recon.loss
  if c.field == "nll":
    return terms.recon.nll
  fields = terms.recon.fields
  if c.field not in fields:
    raise KeyError(
      f"GECO constraint {c.name!r}: field {c.field!r} is not a reconstruction "
      f"field of this model; available fields: {sorted(fields)} (or "
      f"{' / '.join(repr(s) for s in SPECIAL_TERMS)} for recon.loss / recon.nll)"
    )
  return fields[c.field]


def batch_constraints(constraints: Sequence[Constraint], terms: base.Terms) -> jax.Array:
  """C_hat [K]: batch mean of each constrained term minus its tolerance (float32).

  The mean is over the real rows (`terms.row_mask`) when the batch holds generated variants
  (augmented training): a constraint is on the data, not on the model's own samples."""
  w = None if terms.row_mask is None else terms.row_mask.astype(jnp.float32)

  def mean(v):
    v = v.astype(jnp.float32)
    return jnp.mean(v) if w is None else jnp.sum(w * v) / jnp.maximum(jnp.sum(w), 1.0)

  return jnp.stack([mean(_term(terms, c)) - jnp.float32(c.tolerance) for c in constraints])


def geco(
  constraints: Sequence[Constraint],
  *,
  alpha: float = 0.99,
  nu: float = 1e-2,
  lambda_init: float = 1.0,
  log_lambda_clamp: tuple[float, float] = (-10.0, 10.0),
  kl_weight: float = 1.0,
) -> base.Objective:
  """GECO, paper 003 Algorithm 1 (module doc), over K constraints.

  Args:
    constraints: the K constraints (distinct names).
    alpha: the moving average's decay (the paper's 0.99).
    nu: the multiplier's rate, lambda <- lambda exp(nu C_ma) (module doc: the default).
    lambda_init: lambda_0 for every constraint (the paper's 1).
    log_lambda_clamp: (min, max) of log lambda after every update.
    kl_weight: weight of the batch-mean KL (nats, summed over layers) in the loss.

  Returns:
    An `Objective` named 'geco' whose state is {'geco': GECOState}.
  """
  constraints = tuple(constraints)
  if not constraints:
    raise ValueError("GECO needs at least one constraint")
  names = [c.name for c in constraints]
  if len(set(names)) != len(names):
    raise ValueError(f"GECO constraint names must be distinct: {names}")
  if not 0.0 <= alpha < 1.0:
    raise ValueError(f"GECO alpha must be in [0, 1): {alpha}")
  if not nu > 0.0:
    raise ValueError(f"GECO nu must be positive: {nu}")
  lo, hi = (float(v) for v in log_lambda_clamp)
  if not lo < hi:
    raise ValueError(f"GECO log_lambda_clamp must be (min, max) with min < max: {(lo, hi)}")
  if not (lambda_init > 0.0 and lo <= math.log(lambda_init) <= hi):
    raise ValueError(f"GECO lambda_init {lambda_init} must be positive with log in [{lo}, {hi}]")
  k = len(constraints)

  def init(key: jax.Array) -> dict:
    del key
    return {
      "geco": GECOState(
        lagrange=jnp.full((k,), lambda_init, jnp.float32),
        c_ma=jnp.zeros((k,), jnp.float32),
        count=jnp.zeros((), jnp.int32),
      )
    }

  def moving_average(s: GECOState, c_hat: jax.Array) -> jax.Array:
    """C_ma_t [K] from the stored C_ma_{t-1}: the first batch's C_hat when count == 0."""
    return jnp.where(s.count == 0, c_hat, alpha * s.c_ma + (1.0 - alpha) * c_hat)

  def loss(state: dict, terms: base.Terms, *, step, level=base.Level()):
    del step, level  # no schedule and no beta: Level.beta_scale is unused
    s = state["geco"]
    c_hat = batch_constraints(constraints, terms)  # [K]
    c_ma = moving_average(s, jax.lax.stop_gradient(c_hat))  # [K]
    c_t = c_hat + jax.lax.stop_gradient(c_ma - c_hat)  # value C_ma, grad C_hat
    lam = jax.lax.stop_gradient(s.lagrange)  # [K]
    kl = jnp.mean(terms.kl_total().astype(jnp.float32))
    total = kl_weight * kl + jnp.sum(lam * c_t)
    metrics = {"geco/kl_nats": kl}
    for i, c in enumerate(constraints):
      metrics[f"geco/lambda/{c.name}"] = lam[i]
      metrics[f"geco/c_ma/{c.name}"] = c_ma[i]
      metrics[f"geco/c/{c.name}"] = c_hat[i]
    return total, metrics

  def update(state: dict, terms: base.Terms, *, step, key, phase, level=base.Level()):
    del step, key, phase, level
    s = state["geco"]
    c_hat = jax.lax.stop_gradient(batch_constraints(constraints, terms))
    c_ma = moving_average(s, c_hat)
    log_lam = jnp.clip(jnp.log(s.lagrange) + nu * c_ma, lo, hi)
    new = GECOState(lagrange=jnp.exp(log_lam), c_ma=c_ma, count=s.count + 1)
    return {**state, "geco": new}, {}

  return base.Objective(
    name="geco", init=init, loss=loss, update=update, latent_label="geco/kl_nats"
  )


def _split_items(spec: str) -> list[str]:
  """Splits 'a<=1,(b,c)<=2' at the commas outside parentheses."""
  items, depth, cur = [], 0, []
  for ch in spec:
    if ch == "(":
      depth += 1
    elif ch == ")":
      depth -= 1
      if depth < 0:
        raise ValueError(f"GECO constraints {spec!r}: unbalanced ')' in {''.join(cur + [ch])!r}")
    if ch == "," and depth == 0:
      items.append("".join(cur))
      cur = []
    else:
      cur.append(ch)
  items.append("".join(cur))
  if depth != 0:
    raise ValueError(f"GECO constraints {spec!r}: unbalanced '(' in item {items[-1].strip()!r}")
  return items


def parse_constraints(spec: str) -> tuple[Constraint, ...]:
  """Constraints from 'name<=tolerance' items separated by commas outside parentheses.

  E.g. "postcode<=0.5,(lat,long)<=0.1" (the record VAE names its float group '(lat,long)') or
  "loss<=0.2". The name is the field (or 'loss' / 'nll').

  Raises:
    ValueError: naming the malformed item (no '<=', empty name, a tolerance that is not a finite
      number, a repeated name, or no item at all).
  """
  if not isinstance(spec, str) or not spec.strip():
    raise ValueError(f"GECO constraints must be a non-empty 'name<=tolerance,...' string: {spec!r}")
  out, seen = [], set()
  for raw in _split_items(spec):
    item = raw.strip()
    if item.count("<=") != 1:
      raise ValueError(
        f"GECO constraint item {item!r} (in {spec!r}) is not of the form 'name<=tolerance'"
      )
    name, tol = (p.strip() for p in item.split("<="))
    if not name:
      raise ValueError(f"GECO constraint item {item!r} (in {spec!r}) has an empty name")
    try:
      tolerance = float(tol)
    except ValueError:
      raise ValueError(
        f"GECO constraint item {item!r} (in {spec!r}): tolerance {tol!r} is not a number"
      ) from None
    if not math.isfinite(tolerance):
      raise ValueError(f"GECO constraint item {item!r} (in {spec!r}): tolerance is not finite")
    if name in seen:
      raise ValueError(f"GECO constraint item {item!r} (in {spec!r}) repeats the name {name!r}")
    seen.add(name)
    out.append(Constraint(name=name, field=name, tolerance=tolerance))
  return tuple(out)


@base.register("geco")
def make_geco(config, model) -> base.Objective:
  """GECO from `config.objective.geco`: constraints (a 'name<=tol,...' string,
  `parse_constraints`); alpha, nu, lambda_init, log_lambda_min, log_lambda_max, kl_weight
  (optional; the defaults of `geco`).

  Field names are checked when the loss is first traced (the model's fields are known then):
  a KeyError names the missing field and lists the available ones.
  """
  del model
  g = config.objective.geco
  return geco(
    parse_constraints(g.constraints),
    alpha=float(g.get("alpha", 0.99)),
    nu=float(g.get("nu", 1e-2)),
    lambda_init=float(g.get("lambda_init", 1.0)),
    log_lambda_clamp=(float(g.get("log_lambda_min", -10.0)), float(g.get("log_lambda_max", 10.0))),
    kl_weight=float(g.get("kl_weight", 1.0)),
  )
