"""Refinement between encode and recon: semi-amortized inference (paper 004, Kim et al. 2018).

The core calls the run's `Refinement` (or none) after `model.encode` (`train/step.py`); it works
on every model with a diagonal-Gaussian posterior. With lambda = (mu, log sigma^2):

  lambda_0 = encoder(x)                          (SVI only: 0 in training, 0.1 N(0, 1) at eval)
  for k = 0..K-1, eps_k fixed per step (drawn once from the step's key):
      L_k(lambda) = recon(x, mu + exp(logvar / 2) eps_k).loss + w kl_scale KL(q_lambda || p)
      g_k = grad L_k(lambda_k), clipped (below)
      v_{k+1} = m v_k - g_k,   lambda_{k+1} = lambda_k + lr v_{k+1}       (v_0 = 0)
  the training loss is then the objective's at q_{lambda_K}, with a fresh eps.

w is the KL weight of the run's beta schedule at the step (paper 001/004's "+anneal" 0.1 -> 1
anneals inside SVI too: without it SA-VAE collapses), 1 in the likelihood metrics. Reference
code (harvardnlp/sa-vae `optim_n2n.py`, `train_text.py`): K = 20, lr 1, m = 0.5, clip 5,
dropout on inside SVI in training (the same mask for a step's gradient and its HVP).

Two gradient conventions (`mode`):
  'reference'    L_k is the batch MEAN (the reference's size-averaged criterion), so an
                 example's step is lr / B times its own gradient, and the clip rescales the
                 whole [B, D] gradient of mu (and of logvar) to norm <= clip: examples are
                 coupled, and lambda_K depends on the batch.
  'per_example'  each example takes lr / `batch_scale` times its own gradient, clipped to norm
                 <= clip per example (mu and logvar separately): lambda_K of an example does not
                 depend on the batch (batch_scale = 32, the reference's batch, so that the two
                 agree at B = 32 when no clip fires).

Variants (`variant`; paper 004's table):
  'savae'        end to end: the loss at lambda_K is differentiated THROUGH the K steps into the
                 encoder and the decoder (`gradient` 'exact': jax.grad through the unrolled
                 `lax.scan`, exact Hessian-vector products, each step under `jax.checkpoint`
                 so that memory does not grow with K; 'fd': the reference's one-sided finite
                 differences, (grad L_k(lambda_k + r p) - grad L_k(lambda_k)) / r with r = 1e-5,
                 as a `jax.custom_vjp`).
  'vae_svi'      the decoder trains on lambda_K (held fixed), the encoder on the ELBO at
                 lambda_0 with the decoder held fixed.
  'vae_svi_kl'   the decoder as in vae_svi, the encoder minimises KL(q_lambda_0 || q_lambda_K)
                 with lambda_K held fixed.
  'svi'          no encoder: lambda_0 = 0 in training, 0.1 N(0, 1) at evaluation.

The reference also clips its backward pass (`optim_n2n.backward_mom`): at every step k it caps
the adjoint of lambda_k (mu and logvar together) and the step's Hessian-vector share of the
decoder's gradient at svi_max_grad_norm = 5. `backward_clip` > 0 does the same in both gradient
modes: in 'exact' through identities whose cotangent is capped (`clip_cotangent`) on lambda_k
and on the parameters inside each step; in 'per_example' mode the adjoint cap is per example.
On by default (5): without it the exact backward through 20 steps at lr 1 exploded (gradient
norms 1e6-3e8 before the outer clip) and SA-VAE training on paper 004's learned-generator row
diverged (BUILD_NOTES #14); 0 turns it off (the rows recorded before 2026-12-07 ran so).

Deviation from the reference ('fd'): the reference's FD backward differences gradients that were
clipped in the forward pass against re-clipped perturbed ones and clips the HVPs again, mixing
clipped and unclipped quantities; ours differences the unclipped gradients. Exact autodiff
differentiates the clip itself. All three agree when no clip fires (tests/test_refine.py), and
the exact and 'fd' paths agree when only the backward clip fires.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from alala_jax.models import base

VARIANTS = ("savae", "vae_svi", "vae_svi_kl", "svi")
MODES = ("reference", "per_example")
GRADIENTS = ("exact", "fd")


@dataclasses.dataclass(frozen=True)
class SVIConfig:
  """Hyper-parameters of the refinement (defaults: paper 004's reference code)."""

  steps: int = 20  # K (paper 001's SA-VAE runs: 10)
  lr: float = 1.0
  momentum: float = 0.5
  clip: float = 5.0  # 0 = no clip
  mode: str = "reference"  # MODES
  batch_scale: int = 32  # per_example: the step is lr / batch_scale times the own gradient
  gradient: str = "exact"  # GRADIENTS (savae)
  fd_eps: float = 1e-5  # r of the finite-difference HVPs
  # The reference also clips its backward pass: each step's adjoint of lambda (mu and logvar
  # together) and each step's Hessian-vector contribution to the decoder's gradient, to this
  # norm. 0 = off (exact gradients through the clipped forward steps).
  backward_clip: float = 5.0
  variant: str = "savae"  # VARIANTS
  at_eval: bool = True  # the K steps also run in evaluation (and the likelihood metrics)
  remat: bool = True  # jax.checkpoint around each step (memory flat in K)

  def __post_init__(self):
    if (
      self.steps < 0
      or self.lr <= 0
      or not 0 <= self.momentum < 1
      or self.clip < 0
      or self.backward_clip < 0
    ):
      raise ValueError(f"bad SVI hyper-parameters: {self}")
    for name, allowed in (("mode", MODES), ("gradient", GRADIENTS), ("variant", VARIANTS)):
      if getattr(self, name) not in allowed:
        raise ValueError(f"refine.{name} must be one of {allowed}, got {getattr(self, name)!r}")


def from_posterior(q: base.DiagGaussian) -> tuple[jax.Array, jax.Array]:
  """lambda = (mean, logvar) [B, D] each."""
  return q.mean, 2.0 * jnp.log(q.scale)


def to_posterior(lam) -> base.DiagGaussian:
  mean, logvar = lam
  return base.DiagGaussian(mean, jnp.exp(0.5 * logvar))


def _clip_joint(tree, clip: float, rows: bool):
  """tree scaled to joint norm <= clip (the reference's clip_grad_norm, +1e-6): one norm over
  all leaves, or (`rows`) one per example (row b of every [B, ...] leaf)."""
  leaves = jax.tree.leaves(tree)
  if rows:
    sq = sum(jnp.sum(jnp.reshape(a, (a.shape[0], -1)) ** 2, -1) for a in leaves)
    scale = jnp.minimum(1.0, clip / (jnp.sqrt(sq) + 1e-6))
    return jax.tree.map(lambda a: a * jnp.reshape(scale, (-1,) + (1,) * (a.ndim - 1)), tree)
  norm = jnp.sqrt(sum(jnp.sum(a**2) for a in leaves))
  scale = jnp.minimum(1.0, clip / (norm + 1e-6))
  return jax.tree.map(lambda a: a * scale, tree)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def clip_cotangent(clip: float, rows: bool, tree):
  """The identity, whose cotangent is clipped to joint norm <= clip (`_clip_joint`)."""
  del clip, rows
  return tree


def _clip_cotangent_fwd(clip, rows, tree):
  del clip, rows
  return tree, None


def _clip_cotangent_bwd(clip, rows, res, g):
  del res
  return (_clip_joint(g, clip, rows),)


clip_cotangent.defvjp(_clip_cotangent_fwd, _clip_cotangent_bwd)


def per_example_loss(
  model, variables, x, aux, lam, eps, kl_weight, *, key, train, step=0
) -> jax.Array:
  """L_k per example [B]: recon(x, mu + sigma eps).loss + w kl_scale KL(q_lambda || N(0, I))
  (the decoder's schedules at the training `step`)."""
  q = to_posterior(lam)
  z = q.mean + q.scale * eps
  rec = model.recon(variables, x, z, aux, key=key, step=step, train=train)
  kl = model.kl(q, z)
  kl = kl if kl.ndim == 1 else jnp.sum(kl, 0)
  return rec.loss + kl_weight * model.kl_scale * kl


ExampleLoss = Callable[[Any, Any, jax.Array, jax.Array], jax.Array]


class _Problem:
  """The SVI objective of one batch: L_k(lambda, params) and its gradients."""

  def __init__(
    self,
    model,
    variables,
    x,
    aux,
    kl_weight,
    cfg: SVIConfig,
    train: bool,
    step=0,
    example_loss: ExampleLoss | None = None,
  ):
    self.model, self.x, self.aux, self.w, self.cfg = model, x, aux, kl_weight, cfg
    self.train, self.step, self.example_loss = train, step, example_loss
    self.rest = base.non_params(variables)

  def loss(self, lam, params, eps, key):
    """The scalar whose gradient the step follows (module doc: batch mean or scaled sum)."""
    variables = {"params": params, **self.rest}
    if self.example_loss is not None:
      ell = self.example_loss(lam, variables, eps, key)
    else:
      ell = per_example_loss(
        self.model,
        variables,
        self.x,
        self.aux,
        lam,
        eps,
        self.w,
        key=key,
        train=self.train,
        step=self.step,
      )
    if self.cfg.mode == "reference":
      return jnp.mean(ell)
    return jnp.sum(ell) / self.cfg.batch_scale

  def clip(self, g):
    if not self.cfg.clip:
      return g
    rows = self.cfg.mode == "per_example"
    return tuple(_clip_joint(gi, self.cfg.clip, rows) for gi in g)  # mu, logvar separately


def _step_inputs(key, shape, steps):
  """(eps [K, B, D], decoder keys [K]) of the K steps."""
  k_eps, k_dec = jax.random.split(key)
  eps = jax.random.normal(k_eps, (steps,) + shape)
  return eps, jax.random.split(k_dec, steps)


def _forward(problem: _Problem, lam0, params, eps, keys):
  """K momentum steps under lax.scan: (lambda_K, per-step losses [K], lambdas [K])."""
  cfg = problem.cfg

  def step(carry, inp):
    lam, v = carry
    e, k = inp
    p = params
    if cfg.backward_clip:  # the adjoints of lambda_k and this step's share of params'
      lam = clip_cotangent(cfg.backward_clip, cfg.mode == "per_example", lam)
      p = clip_cotangent(cfg.backward_clip, False, params)
    loss, g = jax.value_and_grad(problem.loss)(lam, p, e, k)
    g = problem.clip(g)
    v = tuple(cfg.momentum * vi - gi for vi, gi in zip(v, g))
    new = tuple(li + cfg.lr * vi for li, vi in zip(lam, v))
    return (new, v), (loss, lam)

  if cfg.remat:
    step = jax.checkpoint(step)
  zeros = tuple(jnp.zeros_like(li) for li in lam0)
  (lam, _), (losses, lams) = jax.lax.scan(step, (lam0, zeros), (eps, keys))
  return lam, losses, lams


def _zero_cotangent(tree):
  def z(a):
    a = jnp.asarray(a)
    if jnp.issubdtype(a.dtype, jnp.inexact):
      return jnp.zeros_like(a)
    return np.zeros(a.shape, jax.dtypes.float0)

  return jax.tree.map(z, tree)


def _fd_refine(problem: _Problem, lam0, params, eps, keys):
  """lambda_K with the reference's finite-difference backward (module doc)."""
  cfg = problem.cfg

  @jax.custom_vjp
  def run(lam0, params, eps, keys):
    return _forward(problem, lam0, params, eps, keys)[0]

  def fwd(lam0, params, eps, keys):
    lam, _, lams = _forward(problem, lam0, params, eps, keys)
    return lam, (lams, params, eps, keys)

  def bwd(res, lam_bar):
    lams, params, eps, keys = res
    grad = jax.grad(problem.loss, argnums=(0, 1))
    r = cfg.fd_eps

    def back(carry, inp):
      lam_bar, p, params_bar = carry
      lam_k, e, k = inp
      p = tuple(pi + cfg.lr * li for pi, li in zip(p, lam_bar))
      g_lam, g_par = grad(lam_k, params, e, k)
      g_lam_r, g_par_r = grad(tuple(li + r * pi for li, pi in zip(lam_k, p)), params, e, k)
      lam_bar = tuple(lb - (a - b) / r for lb, a, b in zip(lam_bar, g_lam_r, g_lam))
      hvp = jax.tree.map(lambda a, b: (a - b) / r, g_par_r, g_par)
      if cfg.backward_clip:  # as in the exact path (the reference's order: HVP, then adjoint)
        hvp = _clip_joint(hvp, cfg.backward_clip, False)
        lam_bar = _clip_joint(lam_bar, cfg.backward_clip, cfg.mode == "per_example")
      params_bar = jax.tree.map(lambda pb, h: pb - h, params_bar, hvp)
      p = tuple(cfg.momentum * pi for pi in p)
      return (lam_bar, p, params_bar), None

    init = (
      lam_bar,
      tuple(jnp.zeros_like(li) for li in lam_bar),
      jax.tree.map(jnp.zeros_like, params),
    )
    (lam0_bar, _, params_bar), _ = jax.lax.scan(back, init, (lams, eps, keys), reverse=True)
    return lam0_bar, params_bar, _zero_cotangent(eps), _zero_cotangent(keys)

  run.defvjp(fwd, bwd)
  return run(lam0, params, eps, keys)


@dataclasses.dataclass(frozen=True)
class Refinement:
  """The run's refinement: `SVIConfig` and the KL weight schedule w(step) of SVI's objective."""

  config: SVIConfig
  kl_weight: Callable[[Any], Any] = lambda step: 1.0

  def svi(
    self,
    model,
    variables,
    x,
    aux,
    lam0,
    key,
    *,
    kl_weight,
    train,
    through=True,
    step=0,
    example_loss: ExampleLoss | None = None,
  ):
    """(lambda_K, per-step losses [K]); `through`: gradients flow through the K steps.

    `example_loss(lam, variables, eps, key) -> [B]` replaces L_k's per-example loss (then
    `model`, `x`, `aux` and `kl_weight` are unused): conditional generation
    (`alala_jax.conditional`) fits q_lambda to p(z | fixed fields) with it."""
    cfg = self.config
    problem = _Problem(model, variables, x, aux, kl_weight, cfg, train, step, example_loss)
    params = variables["params"]
    eps, keys = _step_inputs(key, lam0[0].shape, cfg.steps)
    if not through:
      lam0, params = jax.lax.stop_gradient((lam0, params))
    if cfg.gradient == "fd" and through:
      if aux is not None:
        raise ValueError(
          "refine.gradient 'fd' needs a model whose encoder passes no aux to the decoder (the "
          "finite-difference backward does not carry gradients through aux); use 'exact'"
        )
      losses = jax.lax.stop_gradient(_forward(problem, lam0, params, eps, keys)[1])
      return _fd_refine(problem, lam0, params, eps, keys), losses
    lam, losses, _ = _forward(problem, lam0, params, eps, keys)
    return lam, losses

  def initial(self, q0: base.DiagGaussian, key, *, train: bool):
    """lambda_0: the encoder's, or for 'svi' zeros (train) / 0.1 N(0, 1) (evaluation)."""
    if self.config.variant != "svi":
      return from_posterior(q0)
    if train:
      return (jnp.zeros_like(q0.mean), jnp.zeros_like(q0.mean))
    k1, k2 = jax.random.split(key)
    return (
      0.1 * jax.random.normal(k1, q0.mean.shape),
      0.1 * jax.random.normal(k2, q0.mean.shape),
    )

  def apply(self, model, variables, x, aux, q0, key, *, step, train: bool):
    """(q_K, encoder loss [B] or None, metrics) for the training step / evaluation.

    The encoder loss is what trains the encoder when the variant decouples it from lambda_K
    (vae_svi: the ELBO at lambda_0 with the decoder held fixed; vae_svi_kl: KL(q_0 || q_K));
    the step adds its batch mean to the objective's loss."""
    cfg = self.config
    k_init, k_svi, k_enc = jax.random.split(key, 3)
    w = self.kl_weight(step)
    if not train and not cfg.at_eval:
      return q0, None, {}
    lam0 = self.initial(q0, k_init, train=train)
    through = train and cfg.variant == "savae"
    lam, losses = self.svi(
      model, variables, x, aux, lam0, k_svi, kl_weight=w, train=train, through=through, step=step
    )
    if not through:
      lam = jax.lax.stop_gradient(lam)
    qk = to_posterior(lam)
    metrics = {"svi/loss_first": losses[0], "svi/loss_last": losses[-1]} if cfg.steps else {}
    enc_loss = None
    if train and cfg.variant == "vae_svi":
      frozen = _freeze_decoder(model, variables)
      z0 = q0.sample(k_enc)
      rec = model.recon(frozen, x, z0, aux, key=k_enc, step=step, train=True)
      kl = model.kl(q0, z0)
      kl = kl if kl.ndim == 1 else jnp.sum(kl, 0)
      enc_loss = rec.loss + w * model.kl_scale * kl
    elif train and cfg.variant == "vae_svi_kl":
      enc_loss = gaussian_kl(q0, qk)
    return qk, enc_loss, metrics


def gaussian_kl(q: base.DiagGaussian, p: base.DiagGaussian) -> jax.Array:
  """KL(q || p) of diagonal Gaussians, summed over dimensions: [B] nats."""
  vq, vp = q.scale**2, p.scale**2
  return 0.5 * jnp.sum(
    jnp.log(vp) - jnp.log(vq) + (vq + (q.mean - p.mean) ** 2) / vp - 1.0, axis=-1
  )


def _freeze_decoder(model, variables):
  """variables with stop_gradient on the decoder half of the parameters."""
  params = variables["params"]
  labels = model.partition(params)
  frozen = jax.tree.map(
    lambda p, lab: jax.lax.stop_gradient(p) if lab == base.DECODER else p, params, labels
  )
  return {**variables, "params": frozen}


def from_config(config) -> Refinement | None:
  """The refinement of `config.refine` (None when absent or `refine.name` is 'none'); its KL
  weight follows `config.objective`'s beta schedule."""
  rc = config.get("refine", None)
  if rc is None or rc.get("name", "none") == "none":
    return None
  if rc.name != "svi":
    raise ValueError(f"unknown refine.name {rc.name!r}: expected 'none' or 'svi'")
  fields = {f.name for f in dataclasses.fields(SVIConfig)}
  cfg = SVIConfig(**{k: v for k, v in rc.items() if k in fields})
  from alala_jax.objectives.beta import beta_from_config

  return Refinement(cfg, beta_from_config(config))


@dataclasses.dataclass(frozen=True)
class RefinedModel(base.VAEModel):
  """A model whose `encode` returns the refined posterior q_K (KL weight 1, deterministic
  decoder, fixed step keys): what the likelihood metrics (IW-NLL, MI, AU) evaluate when SVI
  runs at evaluation. Any proposal gives a valid importance-weighted bound; with the fixed keys
  q_K is a deterministic function of x (and, in 'reference' mode, of the batch)."""

  inner: base.VAEModel
  refinement: Refinement
  seed: int = 0

  @property
  def latent_dim(self):
    return self.inner.latent_dim

  @property
  def kl_scale(self):
    return self.inner.kl_scale

  def init(self, key, x):
    return self.inner.init(key, x)

  def encode(self, variables, x):
    return self.encode_at(variables, x, 0)

  def encode_at(self, variables, x, step):
    """`encode` with the decoder's schedules (a record VAE's scheduled sampling) at `step`
    inside the SVI objective, as the evaluation of a run at that step has them."""
    q0, aux = self.inner.encode(variables, x)
    key = jax.random.key(self.seed)
    ref = dataclasses.replace(self.refinement, kl_weight=_one)
    qk, _, _ = ref.apply(self.inner, variables, x, aux, q0, key, step=step, train=False)
    return qk, aux

  def recon(self, variables, x, z, aux, *, key, step=0, train=False):
    return self.inner.recon(variables, x, z, aux, key=key, step=step, train=train)

  def kl(self, posterior, z):
    return self.inner.kl(posterior, z)

  def decode(self, variables, z, key, *, greedy=False):
    return self.inner.decode(variables, z, key, greedy=greedy)

  def units(self, recon):
    return self.inner.units(recon)

  def partition(self, params):
    return self.inner.partition(params)


def _one(step):
  del step
  return 1.0


__all__ = [
  "GRADIENTS",
  "MODES",
  "RefinedModel",
  "Refinement",
  "SVIConfig",
  "VARIANTS",
  "from_config",
  "gaussian_kl",
  "per_example_loss",
]
