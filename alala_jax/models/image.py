"""A dense Bernoulli VAE for binary images (the IWAE paper's one-stochastic-layer MNIST model).

Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders" (ICLR 2016), Sec 5 / App C:
one stochastic layer of 50 Gaussian units, encoder and decoder each two deterministic hidden
layers of 200 tanh units, Bernoulli pixels. Images are flattened to x [B, P] float32 in {0, 1}.

  q(z | x) = N(mean(x), diag(exp(logvar(x))))   scale = exp(0.5 * logvar)
  p(z)     = N(0, I)
  p(x | z) = prod_p Bernoulli(x_p; sigmoid(logits(z)_p))

Parameters (top-level entries of `variables['params']`):
  encoder        x -> hidden layers -> the posterior mean (Dense 'mean')
  encoder_scale  Dense(latent_dim) on the encoder's last hidden layer -> log-variance; a
                 separate top-level entry so that multiscale (paper 000 Sec 6) can stack one per
                 level (`level_collections`); labelled 'encoder' by `partition`
  decoder        z -> hidden layers (the encoder's, reversed) -> Bernoulli logits (Dense 'logits')

Units (models/base.py): `Recon.nll` = `Recon.loss` = -log p(x | z) summed over pixels, nats;
`kl_scale` = 1, so beta = 1 is the ELBO.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from alala_jax.models import base

ACTIVATIONS = ("tanh", "relu", "elu", "gelu", "softplus", "sigmoid", "silu", "celu")


def activation_fn(name: str) -> Callable[[jax.Array], jax.Array]:
  """The `jax.nn` activation called `name` (one of ACTIVATIONS)."""
  if name not in ACTIVATIONS:
    raise ValueError(f"unknown activation {name!r}: expected one of {ACTIVATIONS}")
  return getattr(jax.nn, name)


@dataclasses.dataclass(frozen=True)
class ImageVAEConfig:
  """Hyper-parameters of `DenseImageVAE` (defaults: the IWAE paper's MNIST model, App C)."""

  num_pixels: int  # P = H * W
  latent_dim: int = 50  # D, Gaussian latent units
  hidden: tuple[int, ...] = (200, 200)  # encoder hidden widths; the decoder uses them reversed
  activation: str = "tanh"  # name of a jax.nn activation (ACTIVATIONS)

  def __post_init__(self):
    if self.num_pixels < 1 or self.latent_dim < 1:
      raise ValueError(
        f"num_pixels ({self.num_pixels}) and latent_dim ({self.latent_dim}) must be positive"
      )
    object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
    activation_fn(self.activation)  # validates the name


class Encoder(nn.Module):
  """x [B, P] -> (last hidden layer [B, H], posterior mean [B, D])."""

  hidden: tuple[int, ...]
  latent_dim: int
  activation: str = "tanh"

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    act = activation_fn(self.activation)
    h = x
    for i, width in enumerate(self.hidden):
      h = act(nn.Dense(width, name=f"hidden_{i}")(h))
    return h, nn.Dense(self.latent_dim, name="mean")(h)


class Decoder(nn.Module):
  """z [B, D] -> Bernoulli logits [B, P]."""

  hidden: tuple[int, ...]
  num_pixels: int
  activation: str = "tanh"

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    act = activation_fn(self.activation)
    h = z
    for i, width in enumerate(self.hidden):
      h = act(nn.Dense(width, name=f"hidden_{i}")(h))
    return nn.Dense(self.num_pixels, name="logits")(h)


class ImageVAENet(nn.Module):
  """The flax module of `DenseImageVAE`: top-level params encoder / encoder_scale / decoder."""

  config: ImageVAEConfig

  def setup(self):
    c = self.config
    self.encoder = Encoder(c.hidden, c.latent_dim, c.activation)
    self.encoder_scale = nn.Dense(c.latent_dim)  # log-variance head (module doc)
    self.decoder = Decoder(tuple(reversed(c.hidden)), c.num_pixels, c.activation)

  def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """x [B, P] -> (mean [B, D], logvar [B, D])."""
    h, mean = self.encoder(x)
    return mean, self.encoder_scale(h)

  def decode(self, z: jax.Array) -> jax.Array:
    """z [B, D] -> logits [B, P]."""
    return self.decoder(z)

  def __call__(self, x: jax.Array) -> jax.Array:
    """Touches every parameter (for `init`): the logits at the posterior mean [B, P]."""
    mean, _ = self.encode(x)
    return self.decode(mean)


def bernoulli_nll(logits: jax.Array, x: jax.Array) -> jax.Array:
  """-log prod_p Bernoulli(x_p; sigmoid(logits_p)) = sum_p BCE, nats: [..., P] -> [...]."""
  return jnp.sum(optax.sigmoid_binary_cross_entropy(logits, x), -1)


@dataclasses.dataclass(frozen=True)
class DenseImageVAE(base.VAEModel):
  """A dense Bernoulli VAE on flattened binary images (module doc); immutable and hashable.

  Equality and hash come from `config` alone, so a model is a valid static argument of
  `jax.jit` and two models with the same config share compiled programs.
  """

  config: ImageVAEConfig
  net: ImageVAENet = dataclasses.field(init=False, repr=False, compare=False)

  kl_scale = 1.0
  level_collections = types.MappingProxyType({"params": ("encoder_scale",)})

  def __post_init__(self):
    object.__setattr__(self, "net", ImageVAENet(self.config))

  @property
  def latent_dim(self) -> int:
    return self.config.latent_dim

  @property
  def num_pixels(self) -> int:
    return self.config.num_pixels

  def _check_x(self, x: Any) -> jax.Array:
    x = jnp.asarray(x, jnp.float32)
    if x.ndim != 2 or x.shape[-1] != self.config.num_pixels:
      raise ValueError(
        f"images must be [B, {self.config.num_pixels}] (flattened), got shape {x.shape}"
      )
    return x

  def _check_z(self, z: jax.Array) -> jax.Array:
    if z.ndim != 2 or z.shape[-1] != self.config.latent_dim:
      raise ValueError(f"latents must be [B, {self.config.latent_dim}], got shape {z.shape}")
    return z

  def init(self, key: jax.Array, x: Any) -> dict:
    """{'params': {'encoder', 'encoder_scale', 'decoder'}} for example images x [B, P]."""
    return {"params": self.net.init(key, self._check_x(x))["params"]}

  def encode(self, variables: dict, x: Any) -> tuple[base.DiagGaussian, None]:
    """(q(z | x) = N(mean, exp(logvar)) with mean, scale [B, D], aux None)."""
    mean, logvar = self.net.apply(variables, self._check_x(x), method=ImageVAENet.encode)
    return base.DiagGaussian(mean, jnp.exp(0.5 * logvar)), None

  def logits(self, variables: dict, z: jax.Array) -> jax.Array:
    """Bernoulli logits of p(x | z): [n, P] for z [n, D]."""
    return self.net.apply(variables, self._check_z(z), method=ImageVAENet.decode)

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
    """-log p(x | z) summed over pixels [B] (nats); loss = nll; fields {'pixels': nll}."""
    del aux, key, step, train
    nll = bernoulli_nll(self.logits(variables, z), self._check_x(x))
    return base.Recon(nll=nll, loss=nll, fields={"pixels": nll})

  def decode(
    self, variables: dict, z: jax.Array, key: jax.Array, *, greedy: bool = False
  ) -> jax.Array:
    """Binary images [n, P] float32: Bernoulli samples of p(x | z), or logits > 0 if greedy."""
    logits = self.logits(variables, z)
    if greedy:
      return (logits > 0).astype(jnp.float32)
    return jax.random.bernoulli(key, jax.nn.sigmoid(logits)).astype(jnp.float32)

  def partition(self, params: Any) -> Any:
    """'encoder' under encoder and encoder_scale, 'decoder' under decoder."""
    return base.partition_by_top_level(params, {"encoder", "encoder_scale"})
