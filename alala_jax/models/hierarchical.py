r"""The hierarchical VAEs of paper 002 (Maaløe et al., "BIVA: A Very Deep Hierarchy of Latent
Variables for Generative Modeling", NeurIPS 2019) on the core's model interface: LVAE, LVAE+ and
BIVA, dense, for flattened binary images x [B, P] in {0, 1} (modules: `alala_jax.nn.hierarchical`).

LVAE here is BIVA's ablation (Sec 4.1: "an LVAE with the exact same architecture as BIVA, but
without the BU variables and the deterministic top-down path"), NOT Sønderby et al.'s
precision-weighted LVAE: q combines the bottom-up and top-down information by a learned merge
layer on the concatenated features (both references: TF `qz_top_down_pz_merge`, PyTorch
`LvaeStage.merge`), never by a product of Gaussians.

Notation (App A): a generative block G_i (M gated dense layers, `Block`) reads z_{i+1} and
produces d_i = d_{i,M}, with layer outputs d_{i,j}; G_0 feeds p(x | .). Without the skip path
d_{i,j} = f_{i,j}(d_{i,j-1}); with it d_{i,j} = f_{i,j}(d_{i,j-1}, d_{i+1,j}) (App A Eq 5;
d_{L-1} has nothing above it). A Gaussian head turns features into (mean, log-variance).
The paper numbers the ELBO (Eq 1), its decomposition (Eq 2), L^{>k} (Eq 3) and the layer
computations of App A (Eqs 4-10); the factorisations below are displays without numbers in Sec 2
and Sec 3.1, cited by section.

LVAE (Sec 2, LVAE paragraph; Sec 4.1)
  p(x, z) = p(x | z_1) p(z_L) prod_{i<L} p(z_i | z_{i+1})        p(z_L) = N(0, I)
    p(z_i | z_{i+1}) = N(head^p_i(d_i)),  d_i = G_i(z_{i+1})      (no skip inputs)
    p(x | z_1)       = Bernoulli(sigmoid(W act(G_0(z_1))))
  q(z | x) = q(z_L | x) prod_{i<L} q(z_i | z_{i+1}, x)
    deterministic bottom-up path d~_i = B_i(d~_{i-1}), d~_0 = x
    q(z_L | x)           = N(head^q_L(d~_L))
    q(z_i | z_{i+1}, x)  = N(head^q_i(merge_i(d~_i, aux = d_i)))  d_i: the generative G_i (theta)
LVAE+ (Sec 4.1: LVAE + the deterministic top-down path in the generative model)
  The skip path: every layer j of G_i also reads layer j of G_{i+1} (App A Eq 5), i = 0..L-2,
  so d_i summarises all of z_{>i} (Sec 3.1: "d_i ... summarizes all the relevant information
  coming from the stochastic variables higher in the hierarchy, z_{>i}"). Hence
  p(x, z) = p(x | z) p(z_L) prod_{i<L} p(z_i | z_{>i})                  (Sec 4.1)
  q(z | x) = q(z_L | x) prod_{i<L} q(z_i | z_{>i}, x)     (q reads the same d_i through the merge)
BIVA (Sec 3.1; App A)
  z_i = (z_i^BU, z_i^TD) for i < L, each of latent_dims[i-1] units; z_L whole.
  p(x, z) = p(x | z) p(z_L) prod_{i<L} p(z_i^BU | z_{>i}) p(z_i^TD | z_{>i})   (Sec 3.1 display)
    both from the same d_i (two heads; the block is shared: Sec 3.1 "we share all the
    deterministic parameters going to the layer below"); G_i reads (z_{i+1}^TD, z_{i+1}^BU)
  q(z | x) = q(z_L | x, z^BU_{<L})
             prod_{i<L} q(z_i^BU | x, z^BU_{<i}) q(z_i^TD | x, z^BU_{<i}, z_{>i})  (Sec 3.1 display)
    BU path (App A Eqs 7-9): u~_i = B^BU_i(u~_{i,0}, aux = [u~_{i-1}, t~_{i-1}]) with
      u~_{1,0} = x, u~_{i,0} = W z^BU_{i-1}; z_i^BU ~ N(head^BU_i(u~_i))
    TD inference features: t~_i = B^TD_i(t~_{i-1}, aux = u~_i), t~_0 = x (depend on x, z^BU_{<i})
    q(z_L | .) = N(head_L(gated([t~_L, u~_L])))
    q(z_i^TD | .) = N(head^TD_i(merge_i(t~_i, aux = d_i))) (App A Eq 10): d_i is the generative
      path's (theta), so the TD inference path shares the generative model's parameters.

Model interface (models/base.py). The latent is one flat z [B, D]: the slots of
`nn.hierarchical.slots` in order (z_1..z_L; BIVA z_1^BU, z_1^TD, ..., z_{L-1}^BU, z_{L-1}^TD,
z_L). `encode` returns a `HierarchicalPosterior` (the variables, x and the mean path: q is
sequential, so its samples need the key `reparameterize` gets, and `kl` re-runs q teacher-forced
at the given z); `kl(posterior, z)` -> [L', B] nats, one row per slot
(L' = L, or 2L - 1 for BIVA: the BU and TD halves are separate rows, as the free-bits objective
of both references counts them), computed at the given z:
  kl_estimator 'sample' (default; both references, DESIGN §2 free bits): log q(z_s | .) -
    log p(z_s | .) at the sampled z;
  'analytic': KL(q_s || p_s) in closed form at the sampled conditioning values, for every slot
    whose conditioning is drawn before it in q (LVAE, LVAE+: all; BIVA: z_L and the TD halves).
    BIVA's BU rows keep the one-sample estimate: p(z_i^BU | z_{>i}) conditions on z_L and z^TD,
    which q draws after (and from) z_i^BU, so the closed form would bias the ELBO.
Sum over rows = log q(z | x) - log p(z) exactly ('sample'), so -(nll + sum kl) is the
one-sample ELBO and `log_density_ratio` gives importance weights.

Defaults and their sources (config: `HierarchicalConfig`):
  latent_dims (48, 40, 32, 24, 16, 8)  App C binary images, L = 6 ("densely connected layers")
  block_layers M = 3, hidden 64        App C (M = 3 layers of 64 kernels per block); a dense
                                       64-unit layer holds far less than a 64 x 14 x 14 map:
                                       raise `hidden` for MNIST runs
  activation elu                       both reference codes (tf.nn.elu, PyTorch 'elu')
  q_dropout = p_dropout = 0.5          App C ("0.5 for both the deterministic layers in the
                                       generative as well as the inference model"); placed as in
                                       the TF reference's gated_resnet: after the first layer's
                                       activation, in every inference block (q) and every
                                       generative block and q TD merge (p)
  softplus_logvar True                 both references (TF var = softplus + eps as log-variance;
                                       PyTorch log_var_act=Softplus): sigma >= 1; DESIGN §2
  weight_norm True                     App A
  data_init True, init_scale 0.01      the TF reference's data-dependent init pass (Salimans &
                                       Kingma) with its init_scale: `init` sets every layer's
                                       outputs on the example batch, with sampled latents, to
                                       mean 0 and std 0.01 (residual layers start near the
                                       identity); without it, or at std 1, the default L = 6,
                                       M = 3 stack overflows (NaN z^BU on MNIST, NaN held-out
                                       ELBO after the smoke run)
  kl_estimator 'sample'                both references (DESIGN §2)
  free bits lambda = 2 per row, Adamax 2e-3, batch 48, EMA 0.9995: training config (Sec 4,
  App C; DESIGN §2), through the core's 'free_bits' objective and optimiser settings.

Dropout and the interface. `encode`, `reparameterize` and `kl` receive no `train` flag nor key
for dropout, so through them q and the p(z) conditionals run without dropout; `recon(train=True,
key=...)` applies p_dropout to the generative blocks of p(x | z). `fused_terms` is the complete
path (dropout in every block as in the references: q's pass and p's pass with independent masks,
as the TF reference recomputes the generative path) for a core that calls one model method per
training batch.

Units: `Recon.nll` = `Recon.loss` = -log p(x | z) summed over pixels (nats); kl_scale = 1.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from alala_jax.models import base
from alala_jax.models.image import bernoulli_nll
from alala_jax.nn.hierarchical import (
  KL_ESTIMATORS,
  VARIANTS,
  HierarchicalConfig,
  HierarchicalNet,
  Slot,
  Stats,
  latent_size,
  slots,
)

__all__ = [
  "KL_ESTIMATORS",
  "VARIANTS",
  "HierarchicalConfig",
  "HierarchicalPosterior",
  "HierarchicalVAE",
  "config_from_model_config",
  "gaussian_log_prob",
  "gaussian_kl",
]

_LOG_2PI = math.log(2.0 * math.pi)


def gaussian_log_prob(z: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
  """log N(z; mean, exp(logvar)) summed over the last axis."""
  return -0.5 * jnp.sum((z - mean) ** 2 * jnp.exp(-logvar) + logvar + _LOG_2PI, -1)


def gaussian_kl(m_q, lv_q, m_p, lv_p) -> jax.Array:
  """KL(N(m_q, exp lv_q) || N(m_p, exp lv_p)) summed over the last axis."""
  return 0.5 * jnp.sum(lv_p - lv_q + (jnp.exp(lv_q) + (m_q - m_p) ** 2) * jnp.exp(-lv_p) - 1.0, -1)


def config_from_model_config(mc, num_pixels: int) -> HierarchicalConfig:
  """A HierarchicalConfig from a `config.model` ConfigDict (keys as the dataclass fields; absent
  keys keep the defaults): what an image task needs to build these models."""
  fields = {f.name for f in dataclasses.fields(HierarchicalConfig)} - {"num_pixels"}
  kw = {k: mc[k] for k in fields if k in mc}
  if "latent_dims" in kw:
    kw["latent_dims"] = tuple(int(d) for d in kw["latent_dims"])
  return HierarchicalConfig(num_pixels=num_pixels, **kw)


@struct.dataclass
class HierarchicalPosterior:
  """q(z | x) of a hierarchical model: the model's variables and the inputs x [B, P].

  q is sequential (z_i's Gaussian depends on sampled latents), so it is kept as the inputs of
  its pass: `sample(key)` runs it top-down with fresh noise, `log_prob(z)` teacher-forces it.
  `mean` is the mean path (every slot at its conditional mean given the means above), computed
  on access: a deterministic inference pass that a training step does not pay for unless it
  reads it. Posteriors stacked over a leading axis (multiscale levels: x [n, B, P]) give
  [n, B, D]."""

  variables: Any
  x: jax.Array
  model: "HierarchicalVAE" = struct.field(pytree_node=False)

  @property
  def mean(self) -> jax.Array:
    """The mean path [B, D] (class doc)."""
    if self.x.ndim == 3:
      return jax.vmap(self.model.mean_path)(self.variables, self.x)
    return self.model.mean_path(self.variables, self.x)

  def sample(self, key: jax.Array) -> jax.Array:
    """z ~ q(z | x): [B, D]."""
    eps = jax.random.normal(key, (self.x.shape[0], self.model.latent_dim), self.x.dtype)
    return self.model.infer(self.variables, self.x, eps, given=False)[0]

  def log_prob(self, z: jax.Array) -> jax.Array:
    """log q(z | x) summed over every slot: [B] for z [B, D], [K, B] for z [K, B, D]."""
    if z.ndim == 3:
      return jax.vmap(self.log_prob)(z)
    _, q = self.model.infer(self.variables, self.x, z, given=True)
    return sum(
      gaussian_log_prob(z[..., s.start : s.start + s.size], m, lv)
      for s, m, lv in zip(self.model.slots, q.mean, q.logvar)
    )


@dataclasses.dataclass(frozen=True)
class HierarchicalVAE(base.VAEModel):
  """LVAE / LVAE+ / BIVA of paper 002 on the model interface (module doc); immutable and
  hashable by `config` (a valid static argument of `jax.jit`)."""

  config: HierarchicalConfig
  net: HierarchicalNet = dataclasses.field(init=False, repr=False, compare=False)

  kl_scale = 1.0

  def __post_init__(self):
    object.__setattr__(self, "net", HierarchicalNet(self.config))

  # ------------------------------------------------------------------------ layout --

  @property
  def latent_dim(self) -> int:
    """D: the flat latent's size (every slot)."""
    return latent_size(self.config)

  @property
  def num_pixels(self) -> int:
    return self.config.num_pixels

  @property
  def slots(self) -> tuple[Slot, ...]:
    return slots(self.config)

  @property
  def kl_rows(self) -> tuple[str, ...]:
    """The names of `kl`'s rows: 'z1'..'zL', or 'z1_bu', 'z1_td', ..., 'zL' (BIVA)."""
    return tuple(s.name for s in self.slots)

  def describe(self) -> str:
    c = self.config
    return (
      f"{c.variant} L={c.num_layers} latents {c.latent_dims} (flat {self.latent_dim}), "
      f"hidden {c.hidden} x M={c.block_layers}, dropout q {c.q_dropout} / p {c.p_dropout}, "
      f"KL {c.kl_estimator}, softplus log-variance {c.softplus_logvar}"
    )

  def _check_x(self, x: Any) -> jax.Array:
    x = jnp.asarray(x, jnp.float32)
    if x.ndim != 2 or x.shape[-1] != self.config.num_pixels:
      raise ValueError(
        f"images must be [B, {self.config.num_pixels}] (flattened), got shape {x.shape}"
      )
    return x

  # The observation model's hooks. Images: the hierarchy reads the pixels and p(x | .) is a
  # Bernoulli on the logits `p_out` gives. `HierarchicalRecordVAE` (models/hierarchical_record.py)
  # overrides them: the record encoder's embedding in, the record decoder out.

  def _hvars(self, variables: dict) -> dict:
    """The hierarchy's variables (`HierarchicalNet`) within the model's."""
    return variables

  def _features(self, variables: dict, x: Any) -> tuple[jax.Array, Any]:
    """(what the hierarchy's inference network reads [B, num_pixels], aux for `_likelihood`)."""
    del variables
    return self._check_x(x), None

  def _likelihood(
    self, variables: dict, x: Any, out: jax.Array, aux: Any, *, key, step, train: bool
  ) -> base.Recon:
    """The Recon of x given the generative path's output [B, num_pixels] (here logits)."""
    del variables, aux, key, step, train
    nll = bernoulli_nll(out, self._check_x(x))
    return base.Recon(nll=nll, loss=nll, fields={"pixels": nll})

  def _decode_out(self, variables: dict, out: jax.Array, key: jax.Array, greedy: bool):
    """Inputs drawn from p(x | .) given the generative path's output."""
    del variables
    if greedy:
      return (out > 0).astype(jnp.float32)
    return jax.random.bernoulli(key, jax.nn.sigmoid(out)).astype(jnp.float32)

  def _check_z(self, z: jax.Array) -> jax.Array:
    if z.ndim != 2 or z.shape[-1] != self.latent_dim:
      raise ValueError(f"latents must be [B, {self.latent_dim}], got shape {z.shape}")
    return z

  # ---------------------------------------------------------------------- passes --

  def infer(
    self,
    variables: dict,
    x: Any,
    values: jax.Array,
    *,
    given: bool,
    dropout_key: jax.Array | None = None,
  ) -> tuple[jax.Array, Stats]:
    """The inference pass (`HierarchicalNet.infer`): (z [B, D], q's per-slot Gaussians);
    dropout (q_dropout / p_dropout) only with a dropout_key."""
    rngs = {} if dropout_key is None else {"dropout": dropout_key}
    return self.net.apply(
      variables,
      self._check_x(x),
      self._check_z(values),
      given,
      dropout_key is None,
      method=HierarchicalNet.infer,
      rngs=rngs,
    )

  def generate(
    self, variables: dict, z: jax.Array, *, dropout_key: jax.Array | None = None
  ) -> tuple[Stats, jax.Array]:
    """The generative model at z [B, D]: (p's per-slot Gaussians, None for the top slot's
    N(0, I); Bernoulli logits [B, P])."""
    rngs = {} if dropout_key is None else {"dropout": dropout_key}
    return self.net.apply(
      variables,
      self._check_z(z),
      dropout_key is None,
      method=HierarchicalNet.generate,
      rngs=rngs,
    )

  def layer_stats(self, variables: dict, x: Any, z: jax.Array) -> dict[str, dict[str, Any]]:
    """Per slot name: q's and p's Gaussian at the given z (no dropout):
    {'q_mean', 'q_logvar', 'p_mean', 'p_logvar'} ([B, size]; p None for the top slot)."""
    hv = self._hvars(variables)
    _, q = self.infer(hv, self._features(variables, x)[0], z, given=True)
    p, _ = self.generate(hv, z)
    return {
      s.name: {
        "q_mean": q.mean[k],
        "q_logvar": q.logvar[k],
        "p_mean": p.mean[k],
        "p_logvar": p.logvar[k],
      }
      for k, s in enumerate(self.slots)
    }

  def _kl_rows(self, z: jax.Array, q: Stats, p: Stats, analytic: bool | None = None) -> jax.Array:
    """[L', B]: per slot log q - log p at z, or the closed form (module doc) if analytic
    (default: the config's kl_estimator)."""
    rows = []
    if analytic is None:
      analytic = self.config.kl_estimator == "analytic"
    for s, mq, lq, mp, lp in zip(self.slots, q.mean, q.logvar, p.mean, p.logvar):
      zs = z[..., s.start : s.start + s.size]
      if mp is None:  # the top: p(z_L) = N(0, I)
        mp, lp = jnp.zeros_like(mq), jnp.zeros_like(lq)
      if analytic and s.part != "bu":
        rows.append(gaussian_kl(mq, lq, mp, lp))
      else:
        rows.append(gaussian_log_prob(zs, mq, lq) - gaussian_log_prob(zs, mp, lp))
    return jnp.stack(rows)

  # ---------------------------------------------------------------- the interface --

  def init(self, key: jax.Array, x: Any) -> dict:
    """{'params': {'q_...': inference network, 'p_...': generative model}} for images x."""
    return {"params": self.net.init(key, self._check_x(x))["params"]}

  def encode(self, variables: dict, x: Any) -> tuple[HierarchicalPosterior, Any]:
    """(q(z | x) as a HierarchicalPosterior, aux: None for images)."""
    feats, aux = self._features(variables, x)
    return self._posterior(self._hvars(variables), feats), aux

  def _posterior(self, variables: dict, x: jax.Array) -> HierarchicalPosterior:
    return HierarchicalPosterior(variables, x, self)

  def mean_path(self, variables: dict, x: jax.Array) -> jax.Array:
    """q's mean path [B, D] of the (hierarchy) variables and inputs x: z at zero noise."""
    zeros = jnp.zeros((x.shape[0], self.latent_dim), x.dtype)
    return self.infer(variables, x, zeros, given=False)[0]

  def kl(self, posterior: HierarchicalPosterior, z: jax.Array) -> jax.Array:
    """Per-slot KL [L', B] nats at the sampled z (module doc: estimator, row order)."""
    _, q = self.infer(posterior.variables, posterior.x, z, given=True)
    p, _ = self.generate(posterior.variables, z)
    return self._kl_rows(z, q, p)

  def log_density_ratio(self, posterior: HierarchicalPosterior, z: jax.Array) -> jax.Array:
    """log p(z) - log q(z | x) [B] at z (one-sample, whatever kl_estimator): the latent part of
    an importance weight, what `metrics.likelihood.log_weights` computes for a N(0, I) prior."""
    _, q = self.infer(posterior.variables, posterior.x, z, given=True)
    p, _ = self.generate(posterior.variables, z)
    return -jnp.sum(self._kl_rows(z, q, p, analytic=False), 0)

  def logits(self, variables: dict, z: jax.Array, *, dropout_key: jax.Array | None = None):
    """The generative path's output at z [n, D]: [n, num_pixels] (images: Bernoulli logits)."""
    return self.generate(self._hvars(variables), z, dropout_key=dropout_key)[1]

  def recon(
    self,
    variables: dict,
    x: Any,
    z: jax.Array,
    aux: Any,
    *,
    key: jax.Array | None,
    step: jax.Array | int = 0,
    train: bool = False,
  ) -> base.Recon:
    """-log p(x | z) [B] (nats; images: summed over pixels, loss = nll, fields
    {'pixels': nll}); p_dropout in the generative blocks when train (with a key)."""
    drop = key if (train and key is not None and self.config.p_dropout > 0) else None
    out = self.logits(variables, z, dropout_key=drop)
    return self._likelihood(variables, x, out, aux, key=key, step=step, train=train)

  def fused_terms(
    self,
    variables: dict,
    x: Any,
    key: jax.Array,
    *,
    step: jax.Array | int = 0,
    train: bool = False,
  ) -> tuple[HierarchicalPosterior, jax.Array, base.Recon, jax.Array]:
    """(posterior, z, Recon, kl [L', B]) of one batch in one sampling inference pass and one
    generative pass, with the references' dropout in every
    block when `train` (module doc): what the core's `level_terms` builds from encode /
    reparameterize / recon / kl, for a core that lets a model compute them together. Without
    `train` it equals that sequence with z = posterior.sample(k_z), k_z = split(key)[0] (the
    latent key `level_terms` derives from the same key, and its reconstruction key
    split(key)[1])."""
    hv = self._hvars(variables)
    feats, aux = self._features(variables, x)
    k_z, k_drop = jax.random.split(key)
    k_q, k_p = jax.random.split(k_drop) if train else (None, None)
    eps = jax.random.normal(k_z, (feats.shape[0], self.latent_dim), feats.dtype)
    z, q = self.infer(hv, feats, eps, given=False, dropout_key=k_q)
    p, out = self.generate(hv, z, dropout_key=k_p)
    recon = self._likelihood(variables, x, out, aux, key=k_drop, step=step, train=train)
    return self._posterior(hv, feats), z, recon, self._kl_rows(z, q, p)

  def decode(
    self, variables: dict, z: jax.Array, key: jax.Array, *, greedy: bool = False
  ) -> jax.Array:
    """Inputs drawn from p(x | z) (images: binary [n, P] float32, Bernoulli samples, or
    logits > 0 if greedy)."""
    return self._decode_out(variables, self.logits(variables, z), key, greedy)

  def sample_latents(self, variables: dict, key: jax.Array, n: int) -> jax.Array:
    """z ~ p(z) by ancestral sampling: [n, D]."""
    eps = jax.random.normal(key, (n, self.latent_dim))
    return self.net.apply(self._hvars(variables), eps, method=HierarchicalNet.prior_sample)

  def l_above_k(self, variables: dict, x: Any, key: jax.Array, k: int) -> jax.Array:
    """One-sample estimate of paper 002's L^{>k} (Eq 3) per image [B], nats (higher: more
    likely; k = 0 is the one-sample ELBO with the same latent noise as `fused_terms`):

      L^{>k} = E_{p(z_<=k | z_>k) q(z_>k | x)} [log p(x | z) + log p(z_>k) - log q(z_>k | x)].

    z_{>k} is drawn from q (a whole posterior sample, its layers <= k discarded), z_{<=k} from
    the conditional prior given z_{>k} (`HierarchicalNet.prior_sample`). log q(z_{>k} | x) is
    the product of q's conditionals of the slots above k: exact for LVAE and LVAE+ (q is
    top-down there); for BIVA the BU slots above k condition on the discarded z^BU_{<=k}, so
    it is q's joint conditional at those draws (the marginal over them has no closed form),
    as in a one-sample estimate of the joint. k = L: every layer from the prior, the
    likelihood under prior samples."""
    c = self.config
    if not 0 <= k <= c.num_layers:
      raise ValueError(f"k must be in 0..{c.num_layers} (L), got {k}")
    hv = self._hvars(variables)
    feats, aux = self._features(variables, x)
    k_q, k_p = jax.random.split(key)
    eps = jax.random.normal(k_q, (feats.shape[0], self.latent_dim), feats.dtype)
    z_q, q = self.infer(hv, feats, eps, given=False)
    eps_p = jax.random.normal(k_p, z_q.shape, feats.dtype)
    z = self.net.apply(hv, eps_p, z_q, k, method=HierarchicalNet.prior_sample)
    p, gen_out = self.generate(hv, z)
    rec = self._likelihood(
      variables, x, gen_out, aux, key=jax.random.fold_in(key, 2), step=0, train=False
    )
    out = -rec.nll
    for s, mq, lq, mp, lp in zip(self.slots, q.mean, q.logvar, p.mean, p.logvar):
      if s.layer > k:
        zs = z[:, s.start : s.start + s.size]
        if mp is None:
          mp, lp = jnp.zeros_like(mq), jnp.zeros_like(lq)
        out = out + gaussian_log_prob(zs, mp, lp) - gaussian_log_prob(zs, mq, lq)
    return out

  def prior_moments(self, variables: dict):
    raise NotImplementedError(
      "the hierarchical prior p(z) is not one Gaussian: sample it with sample_latents"
    )

  def partition(self, params: Any) -> Any:
    """'encoder' under the inference network's entries ('q_...'), 'decoder' under the
    generative model's ('p_...'), which q's top-down path reads too."""
    return base.partition_by_top_level(params, {k for k in params if k.startswith("q_")})
