"""Flax modules of the hierarchical VAEs of paper 002 (BIVA, Maaløe et al. 2019): LVAE, LVAE+,
BIVA, in dense form for flattened binary images (`alala_jax.models.hierarchical` wraps them in
the core's model interface and states the factorisations).

Building blocks follow both reference codes (the authors' TensorFlow `models/biva.py` and
`layers/_neural.py`, and the PyTorch port `biva/model/stage.py`), with dense layers in place of
convolutions:

  Linear        a dense layer with weight normalisation (App A: "Weight normalization ... in
                all neural network layers") and the data-dependent initialisation of Salimans &
                Kingma (the TF reference's `init` pass): at `init`, every layer's outputs on the
                example batch get zero mean and standard deviation init_scale (0.01 as the
                reference's `init_scale`)
  GatedDense    the reference's `gated_resnet` as a dense layer:
                  h = act(W_in act(x) [+ W_aux act(aux)]);  h = dropout(h)
                  a, g = split(W_out h);  y = a * sigmoid(g)  [+ x if residual]
  Block         M GatedDense layers (App A: "a ResNet block with M layers"); every layer j may
                take an auxiliary input: one array for all layers (the inference skips) or the
                j-th hidden of the block above (the generative skip path, App A Eq 5)
  GaussianHead  mean = W_mu act(h), log-variance = softplus(W_v act(h)) (the references'
                `_stochastic` / `DenseNormal`; softplus optional: with it sigma >= 1)

`HierarchicalNet` holds every parameter of one variant; its methods are pure passes used by the
model: `infer` (the inference network, sampling or teacher-forced), `generate` (the generative
model's conditionals at given latents and the Bernoulli logits), `prior_sample` (ancestral
sampling). Latents are one flat array z [B, D]: the slots of `slots(config)` concatenated in
order. Top-level parameter names start with 'q_' (inference network, phi) or 'p_' (generative
model, theta): the model's encoder / decoder partition.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

VARIANTS = ("lvae", "lvae+", "biva")
KL_ESTIMATORS = ("sample", "analytic")
_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
  "elu": jax.nn.elu,
  "relu": jax.nn.relu,
  "tanh": jnp.tanh,
  "gelu": jax.nn.gelu,
  "silu": jax.nn.silu,
  "softplus": jax.nn.softplus,
}


def activation_fn(name: str) -> Callable[[jax.Array], jax.Array]:
  if name not in _ACTIVATIONS:
    raise ValueError(f"unknown activation {name!r}: expected one of {tuple(_ACTIVATIONS)}")
  return _ACTIVATIONS[name]


@dataclasses.dataclass(frozen=True)
class HierarchicalConfig:
  """Hyper-parameters of the dense LVAE / LVAE+ / BIVA (defaults: paper 002 App C's binary-image
  model where it has one; `alala_jax.models.hierarchical` lists each default's source)."""

  num_pixels: int  # P = H * W (784 for MNIST)
  variant: str = "biva"  # 'lvae' | 'lvae+' | 'biva' (VARIANTS)
  latent_dims: tuple[int, ...] = (48, 40, 32, 24, 16, 8)  # z_1..z_L (App C: L = 6); in BIVA
  # each of z_i^BU and z_i^TD (i < L) has latent_dims[i - 1] units
  hidden: int = 64  # units of every deterministic layer (App C: 64 kernels)
  block_layers: int = 3  # M, GatedDense layers per block (App C: M = 3)
  activation: str = "elu"  # both reference codes
  q_dropout: float = 0.5  # inference blocks (App C binary images: 0.5)
  p_dropout: float = 0.5  # generative blocks and the q TD merges (App C: 0.5)
  softplus_logvar: bool = True  # log-variance = softplus(raw): sigma >= 1 (both references)
  weight_norm: bool = True  # App A
  data_init: bool = True  # data-dependent initialisation of every layer (the TF reference's
  # `init` pass; `Linear`): needs an init batch of >= 2 rows
  init_scale: float = 0.01  # the std of every layer's outputs on the init batch (the TF
  # reference's `init_scale = .01` in dense / conv2d / deconv2d)
  kl_estimator: str = "sample"  # 'sample': log q - log p at the sampled z (both references);
  # 'analytic': the closed-form Gaussian KL where it is unbiased (models/hierarchical.py)

  def __post_init__(self):
    object.__setattr__(self, "latent_dims", tuple(int(d) for d in self.latent_dims))
    if self.variant not in VARIANTS:
      raise ValueError(f"unknown variant {self.variant!r}: expected one of {VARIANTS}")
    if len(self.latent_dims) < 2 or min(self.latent_dims) < 1:
      raise ValueError(f"latent_dims needs L >= 2 positive sizes, got {self.latent_dims}")
    if self.num_pixels < 1 or self.hidden < 1 or self.block_layers < 1:
      raise ValueError(
        f"num_pixels ({self.num_pixels}), hidden ({self.hidden}) and block_layers "
        f"({self.block_layers}) must be positive"
      )
    for name in ("q_dropout", "p_dropout"):
      rate = getattr(self, name)
      if not 0.0 <= rate < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {rate}")
    if not self.init_scale > 0:
      raise ValueError(f"init_scale must be positive, got {self.init_scale}")
    if self.kl_estimator not in KL_ESTIMATORS:
      raise ValueError(f"unknown kl_estimator {self.kl_estimator!r}: expected {KL_ESTIMATORS}")
    activation_fn(self.activation)

  @property
  def num_layers(self) -> int:
    """L, the stochastic layers of the generative hierarchy."""
    return len(self.latent_dims)

  @property
  def skip(self) -> bool:
    """Whether the generative model has the deterministic top-down skip path (LVAE+, BIVA)."""
    return self.variant != "lvae"


class Slot(NamedTuple):
  """One stochastic variable of the flat latent: name, paper layer i, part, units, offset."""

  name: str  # 'z3', or 'z3_bu' / 'z3_td' in BIVA
  layer: int  # i in 1..L
  part: str  # 'z' (LVAE, LVAE+, BIVA's top), 'bu' or 'td'
  size: int
  start: int  # offset in the flat latent


def slots(config: HierarchicalConfig) -> tuple[Slot, ...]:
  """The stochastic variables in flat-latent (and KL-row) order: z_1..z_L (LVAE, LVAE+), or
  z_1^BU, z_1^TD, ..., z_{L-1}^BU, z_{L-1}^TD, z_L (BIVA; the TF reference's order)."""
  out, start = [], 0
  last = config.num_layers
  for i, size in enumerate(config.latent_dims, start=1):
    parts = ("bu", "td") if (config.variant == "biva" and i < last) else ("z",)
    for part in parts:
      out.append(Slot(f"z{i}" if part == "z" else f"z{i}_{part}", i, part, size, start))
      start += size
  return tuple(out)


def latent_size(config: HierarchicalConfig) -> int:
  s = slots(config)[-1]
  return s.start + s.size


class Linear(nn.Module):
  """x @ w + b with w = scale * v / ||v||_column (weight normalisation), or a plain kernel.

  Data-dependent initialisation (Salimans & Kingma 2016, as the TF reference's `init` pass):
  at `init` with a batch of >= 2 rows, scale and bias are set so that the layer's outputs on
  that batch have zero mean and standard deviation `init_scale` per unit (the reference's
  0.01; a plain kernel stores the same effective weights), so that every residual layer starts
  near the identity. Unit-variance outputs (init_scale 1) grew the activations of the default
  L = 6, M = 3 stack layer by layer: on held-out rows the top posterior's log-variance reached
  24 and the ancestral sample below overflowed. With one row, or init_scale 0 (off):
  w = v (scale = ||v||), bias 0."""

  features: int
  weight_norm: bool = True
  init_scale: float = 0.01

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    shape = (x.shape[-1], self.features)
    v0 = g0 = b0 = None
    if self.is_initializing():
      v0 = nn.initializers.lecun_normal()(self.make_rng("params"), shape, jnp.float32)
      unit = v0 * jax.lax.rsqrt(jnp.sum(v0**2, 0) + 1e-12)
      rows = x.reshape(-1, x.shape[-1])
      if self.init_scale > 0 and rows.shape[0] > 1:
        t = rows @ unit
        g0 = self.init_scale * jax.lax.rsqrt(jnp.var(t, 0) + 1e-10)  # the reference's eps
        b0 = -jnp.mean(t, 0) * g0
      else:
        g0, b0 = jnp.sqrt(jnp.sum(v0**2, 0)), jnp.zeros((self.features,), jnp.float32)
      if not self.weight_norm:
        v0 = unit * g0
    kernel = self.param("kernel", lambda _: v0)
    bias = self.param("bias", lambda _: b0)
    if self.weight_norm:
      scale = self.param("scale", lambda _: g0)
      kernel = kernel * (scale * jax.lax.rsqrt(jnp.sum(kernel**2, 0) + 1e-12))
    return x @ kernel + bias


class GatedDense(nn.Module):
  """The reference's gated residual layer, dense (module doc)."""

  features: int
  activation: str
  dropout: float
  residual: bool
  weight_norm: bool
  init_scale: float  # data-dependent init's output std; 0: off (`Linear`)

  @nn.compact
  def __call__(
    self, x: jax.Array, aux: jax.Array | None = None, *, deterministic: bool = True
  ) -> jax.Array:
    act = activation_fn(self.activation)
    linear = lambda n, name: Linear(n, self.weight_norm, self.init_scale, name=name)
    h = linear(self.features, "in")(act(x))
    if aux is not None:
      h = h + linear(self.features, "aux")(act(aux))
    h = act(h)
    if self.dropout > 0:
      h = nn.Dropout(self.dropout)(h, deterministic=deterministic)
    a, g = jnp.split(linear(2 * self.features, "out")(h), 2, axis=-1)
    y = a * jax.nn.sigmoid(g)
    return x + y if self.residual else y


class Block(nn.Module):
  """M GatedDense layers; returns (output, the M layer outputs)."""

  features: int
  layers: int
  activation: str
  dropout: float
  weight_norm: bool
  init_scale: float  # data-dependent init's output std; 0: off (`Linear`)
  first_residual: bool  # False where the input's width is not `features` (x, a z projection)

  @nn.compact
  def __call__(
    self,
    h: jax.Array,
    aux: jax.Array | Sequence[jax.Array] | None = None,
    *,
    deterministic: bool = True,
  ) -> tuple[jax.Array, list[jax.Array]]:
    hiddens = []
    for j in range(self.layers):
      a = aux[j] if isinstance(aux, (list, tuple)) else aux
      residual = self.first_residual if j == 0 else True
      h = GatedDense(
        self.features,
        self.activation,
        self.dropout,
        residual,
        self.weight_norm,
        self.init_scale,
        name=f"layer_{j}",
      )(h, a, deterministic=deterministic)
      hiddens.append(h)
    return h, hiddens


class GaussianHead(nn.Module):
  """(mean, log-variance) [B, size] of a diagonal Gaussian from features h."""

  size: int
  activation: str
  softplus_logvar: bool
  weight_norm: bool
  init_scale: float  # data-dependent init's output std; 0: off (`Linear`)

  @nn.compact
  def __call__(self, h: jax.Array) -> tuple[jax.Array, jax.Array]:
    h = activation_fn(self.activation)(h)
    mean = Linear(self.size, self.weight_norm, self.init_scale, name="mean")(h)
    raw = Linear(self.size, self.weight_norm, self.init_scale, name="logvar")(h)
    return mean, (jax.nn.softplus(raw) if self.softplus_logvar else raw)


class Stats(NamedTuple):
  """Per-slot Gaussian parameters (lists in `slots` order; None where a slot has none)."""

  mean: list[Any]
  logvar: list[Any]


def _split(flat: jax.Array, config: HierarchicalConfig) -> dict[str, jax.Array]:
  return {s.name: flat[..., s.start : s.start + s.size] for s in slots(config)}


class HierarchicalNet(nn.Module):
  """Every parameter of one variant and its passes (module doc). Indices: paper layers i = 1..L;
  list entry k of a per-layer module belongs to layer k + 1, except `p_in` / `p_block`, whose
  entry i is the generative block G_i that reads z_{i+1} and produces d_i (G_0 feeds p(x | .))."""

  config: HierarchicalConfig

  def setup(self):
    c = self.config
    L = c.num_layers
    wn, di = c.weight_norm, (c.init_scale if c.data_init else 0.0)
    block = lambda dropout, first_residual: Block(
      c.hidden, c.block_layers, c.activation, dropout, wn, di, first_residual
    )
    gated = lambda dropout, residual: GatedDense(c.hidden, c.activation, dropout, residual, wn, di)
    head = lambda size: GaussianHead(size, c.activation, c.softplus_logvar, wn, di)
    dims = c.latent_dims
    # generative model (theta): G_i reads z_{i+1} through p_in[i], i = 0..L-1
    self.p_in = [Linear(c.hidden, wn, di) for _ in range(L)]
    self.p_block = [block(c.p_dropout, False) for _ in range(L)]
    self.p_out = Linear(c.num_pixels, wn, di)
    if c.variant == "biva":
      self.p_bu_head = [head(dims[k]) for k in range(L - 1)]
      self.p_td_head = [head(dims[k]) for k in range(L - 1)]
      # inference (phi): deterministic BU path u~_i (z^BU_{i-1} in through q_bu_in) and the
      # TD inference path t~_i, both bottom-up; the merge of t~_L and u~_L for z_L
      self.q_bu_path = [block(c.q_dropout, k > 0) for k in range(L)]
      self.q_bu_in = [Linear(c.hidden, wn, di) for _ in range(L - 1)]
      self.q_td_path = [block(c.q_dropout, k > 0) for k in range(L)]
      self.q_top = gated(c.q_dropout, False)
      self.q_bu_head = [head(dims[k]) for k in range(L - 1)]
      self.q_top_head = head(dims[L - 1])
      self.q_td_merge = [gated(c.p_dropout, True) for _ in range(L - 1)]
      self.q_td_head = [head(dims[k]) for k in range(L - 1)]
    else:
      self.p_head = [head(dims[k]) for k in range(L - 1)]
      self.q_path = [block(c.q_dropout, k > 0) for k in range(L)]
      self.q_merge = [gated(c.p_dropout, True) for _ in range(L - 1)]
      self.q_head = [head(dims[k]) for k in range(L)]

  # ---------------------------------------------------------------- generative model --

  def _g_block(self, i: int, z_above: jax.Array, skips, deterministic: bool):
    """G_i: d_i and its layer outputs from z_{i+1} (and the skips d_{i+1,j} from above when the
    variant has the deterministic top-down path; the top block G_{L-1} has none)."""
    aux = skips if (self.config.skip and skips is not None) else None
    return self.p_block[i](self.p_in[i](z_above), aux, deterministic=deterministic)

  def _z_in(self, z: dict[str, jax.Array], i: int) -> jax.Array:
    """What G_{i-1} reads of layer i: z_i, or (z_i^TD, z_i^BU) concatenated (BIVA, i < L)."""
    if self.config.variant == "biva" and i < self.config.num_layers:
      return jnp.concatenate([z[f"z{i}_td"], z[f"z{i}_bu"]], -1)
    return z[f"z{i}"]

  def _prior_heads(self, i: int, d: jax.Array) -> dict[str, tuple[jax.Array, jax.Array]]:
    if self.config.variant == "biva":
      return {f"z{i}_bu": self.p_bu_head[i - 1](d), f"z{i}_td": self.p_td_head[i - 1](d)}
    return {f"z{i}": self.p_head[i - 1](d)}

  def generate(self, z_flat: jax.Array, deterministic: bool = True) -> tuple[Stats, jax.Array]:
    """The generative model at given latents: (p's per-slot Gaussians, None for the top's
    N(0, I); Bernoulli logits [B, P] of p(x | .))."""
    c = self.config
    z = _split(z_flat, c)
    p: dict[str, tuple[jax.Array, jax.Array]] = {}
    skips = None
    for i in range(c.num_layers - 1, -1, -1):  # G_{L-1} .. G_0
      d, skips = self._g_block(i, self._z_in(z, i + 1), skips, deterministic)
      if i > 0:
        p.update(self._prior_heads(i, d))
    logits = self.p_out(activation_fn(c.activation)(d))
    names = [s.name for s in slots(c)]
    return Stats(
      [p[n][0] if n in p else None for n in names], [p[n][1] if n in p else None for n in names]
    ), logits

  def prior_sample(
    self, eps_flat: jax.Array, z_above: jax.Array | None = None, k: int = 0
  ) -> jax.Array:
    """Ancestral sampling from standard normal noise [n, D] (no dropout): z ~ p(z), or, with
    z_above [n, D], the layers above k keep z_above's values and z_k..z_1 are drawn from
    p(z_i | z_{>i}) (paper 002 Eq 3's p(z_{<=k} | z_{>k}); every part of a BIVA layer alike)."""
    c = self.config
    L = c.num_layers
    eps = _split(eps_flat, c)
    keep = {} if z_above is None else _split(z_above, c)
    top = f"z{L}"
    z = {top: keep[top] if (keep and L > k) else eps[top]}
    skips = None
    for i in range(L - 1, 0, -1):
      d, skips = self._g_block(i, self._z_in(z, i + 1), skips, True)
      for name, (m, lv) in self._prior_heads(i, d).items():
        z[name] = keep[name] if (keep and i > k) else m + jnp.exp(0.5 * lv) * eps[name]
    return jnp.concatenate([z[s.name] for s in slots(c)], -1)

  # ----------------------------------------------------------------- inference network --

  def infer(
    self, x: jax.Array, values: jax.Array, given: bool, deterministic: bool = True
  ) -> tuple[jax.Array, Stats]:
    """The inference network q(z | x) (Sec 3.1, App A Eqs 4-10; model doc). `values` [B, D]:
    the latents themselves (given=True: teacher-forced, for log q at z) or standard normal noise
    (given=False: z = mean + sigma * noise; zeros give the mean path). Returns (z [B, D], q's
    per-slot Gaussians)."""
    c = self.config
    vals = _split(values, c)
    z: dict[str, jax.Array] = {}
    q: dict[str, tuple[jax.Array, jax.Array]] = {}

    def pick(name, mean, logvar):
      q[name] = (mean, logvar)
      z[name] = vals[name] if given else mean + jnp.exp(0.5 * logvar) * vals[name]

    L = c.num_layers
    det = deterministic
    if c.variant == "biva":
      u_in, t, skip, t_path = x, x, None, []
      for k in range(L):  # layer i = k + 1, bottom-up (App A Eqs 7-9)
        u, _ = self.q_bu_path[k](u_in, skip, deterministic=det)
        t, _ = self.q_td_path[k](t, u, deterministic=det)
        t_path.append(t)
        if k < L - 1:
          pick(f"z{k + 1}_bu", *self.q_bu_head[k](u))
          u_in = self.q_bu_in[k](z[f"z{k + 1}_bu"])
          skip = jnp.concatenate([u, t], -1)
      h = self.q_top(jnp.concatenate([t, u], -1), deterministic=det)
      pick(f"z{L}", *self.q_top_head(h))
      skips = None
      for i in range(L - 1, 0, -1):  # top-down: z_i^TD (App A Eq 10)
        d, skips = self._g_block(i, self._z_in(z, i + 1), skips, det)
        h = self.q_td_merge[i - 1](t_path[i - 1], d, deterministic=det)
        pick(f"z{i}_td", *self.q_td_head[i - 1](h))
    else:
      e, e_path = x, []
      for k in range(L):  # deterministic bottom-up path d~_1..d~_L
        e, _ = self.q_path[k](e, deterministic=det)
        e_path.append(e)
      pick(f"z{L}", *self.q_head[L - 1](e))
      skips = None
      for i in range(L - 1, 0, -1):  # top-down: merge d~_i with the generative d_i
        d, skips = self._g_block(i, self._z_in(z, i + 1), skips, det)
        h = self.q_merge[i - 1](e_path[i - 1], d, deterministic=det)
        pick(f"z{i}", *self.q_head[i - 1](h))
    names = [s.name for s in slots(c)]
    flat = jnp.concatenate([z[n] for n in names], -1)
    return flat, Stats([q[n][0] for n in names], [q[n][1] for n in names])

  def __call__(self, x: jax.Array) -> jax.Array:
    """Touches every parameter (for `init`): the logits at a posterior sample [B, P]. At init the
    latents are sampled (noise from the 'params' stream), so that the data-dependent
    initialisation sees the inputs training gives each layer: calibrated on the mean path
    alone (at init_scale 1), the BU path's sampled z^BU (sigma >= 1) overflowed by z_4^BU
    (L = 6, MNIST)."""
    shape = (x.shape[0], latent_size(self.config))
    if self.is_initializing():
      eps = jax.random.normal(self.make_rng("params"), shape, x.dtype)
    else:
      eps = jnp.zeros(shape, x.dtype)
    z, _ = self.infer(x, eps, given=False)
    return self.generate(z)[1]
