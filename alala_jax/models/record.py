"""The record VAE of paper 000 on the model interface (`alala_jax.models.base`).

`RecordModel` wraps the flax module `alala_jax.nn.vae.RecordVAE` (the schema-generated
tree-recursive encoder/decoder, the sigma-network and the tracked latent moments) and exposes
it as pure functions of its variables:

* posterior q(z | x) = N(mu(x), sigma(mu(x))^2), mu the encoder's embedding (App B.4);
* `recon.loss` = (field-weighted reconstruction + skew) / number of fields (Sec 2.3), and
  `kl_scale` = 1 / latent_dim: beta is "per latent dimension" (beta_end 0.384, Table 1);
* `recon.nll`: string cross-entropies in nats, a unit-variance Gaussian on the whitened
  floats in raw units (nn/scalar_tuple.py), Bernoulli presence and stop bits. It is computed
  in the same decoder pass as the loss, so it is -log p(x | z) exactly when that pass is
  teacher-forced (schedules at 1: evaluation of a TF model, or `p_tuple`/`p_string` = 1);
  under scheduled or always sampling it scores x given the decoder's own sampled prefixes;
* decoding schedules (Tuple- and String-level scheduled sampling, Table 1) are the model's: the
  ground-truth probabilities at `step` come from `p_tuple(step)` / `p_string(step)`;
* `update_stats` moves the ScalarTuple whitening statistics (BN-style: before encoding, so a
  batch is whitened with statistics that include it); `track_latents` the moving mean and
  covariance of the sampled latents, from which `sample_latents` draws (Sec 2.4).

Per level under multiscale (Sec 6): the sigma-network and the latent moments.
Partition: encoder = the encoder halves of every node and the sigma-network; decoder = the
decoder halves and the character embedding, which encoder and decoder share (App B.1) and is
counted with the decoder, so encoder-only updates never move what the decoder reads.

The RNG streams are derived exactly as the earlier `RecordVAE.__call__` derived them, so the
interface reproduces earlier runs bit for bit (tests/test_record_regression.py).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from alala_jax import schema as sc
from alala_jax.models import base
from alala_jax.nn import tree
from alala_jax.nn.moments import MovingMoments
from alala_jax.nn.sigma import SigmaNet
from alala_jax.nn.vae import RecordVAE

LEVEL_PARAMS = "sigma_net"  # params entry stacked on the multiscale level axis
LEVEL_STATS = "latent_moments"  # batch_stats entry stacked on the level axis

_ENCODER_NAMES = frozenset({"sigma_net", "h_init", "enc_out", "enc_scan", "enc", "value_embedding"})
_ENCODER_PREFIXES = ("fwd_", "bwd_")


def _is_encoder_path(path) -> bool:
  for k in path:
    name = getattr(k, "key", getattr(k, "name", None))
    if isinstance(name, str) and (name in _ENCODER_NAMES or name.startswith(_ENCODER_PREFIXES)):
      return True
  return False


@dataclasses.dataclass(frozen=True, eq=False)
class RecordModel(base.VAEModel):
  """Paper 000's record VAE for the schema `root` (module doc)."""

  root: sc.RecordNode
  cfg: tree.ModelConfig
  p_tuple: Callable = optax.constant_schedule(1.0)  # step -> Tuple ground-truth probability
  p_string: Callable = optax.constant_schedule(1.0)  # step -> String ground-truth probability
  level_collections = {"params": (LEVEL_PARAMS,), "batch_stats": (LEVEL_STATS,)}

  @property
  def module(self) -> RecordVAE:
    return RecordVAE(self.root, self.cfg)

  @property
  def latent_dim(self) -> int:
    return self.cfg.latent_dim

  @property
  def kl_scale(self) -> float:
    return 1.0 / self.cfg.latent_dim

  @property
  def num_fields(self) -> float:
    """The divisor of the reconstruction loss (Sec 2.3): the schema's total leaf weight."""
    return self.root.num_fields

  def init(self, key: jax.Array, x: Any) -> dict:
    k_params, k_latent, k_sample, _ = jax.random.split(key, 4)
    return self.module.init(
      {"params": k_params, "latent": k_latent, "sample": k_sample}, x, 1.0, 1.0, train=True
    )

  def init_levels(self, key: jax.Array, x: Any, n: int) -> dict:
    """n sigma-networks initialised independently from the 4th key of `init`'s split (as the
    trainer before the model interface did, so runs start from the same parameters), and n
    copies of the initial latent moments."""
    del x
    d = self.cfg.latent_dim
    sigma = jax.vmap(
      lambda k: SigmaNet(d, self.cfg.sigma_layers).init(k, jnp.zeros((1, d)))["params"]
    )(jax.random.split(jax.random.split(key, 4)[3], n))
    moments = MovingMoments(d, self.cfg.stats_decay).init(jax.random.key(0))["batch_stats"]
    return {
      "params": {LEVEL_PARAMS: sigma},
      "batch_stats": {
        LEVEL_STATS: jax.tree.map(lambda a: jnp.broadcast_to(a, (n,) + a.shape), moments)
      },
    }

  def update_stats(self, variables, x, row_mask):
    _, upd = self.module.apply(
      variables, x, row_mask, method=RecordVAE.observe, mutable=["batch_stats"]
    )
    return {**base.non_params(variables), **upd}

  def encode(self, variables, x):
    mu, sigma, enc = self.module.apply(variables, x, method=RecordVAE.posterior)
    return base.DiagGaussian(mu, sigma), enc

  def reparameterize(self, variables, posterior, key):
    return self.module.apply(
      variables,
      posterior.mean,
      posterior.scale,
      method=RecordVAE.reparameterize,
      rngs={"latent": key},
    )

  def recon(self, variables, x, z, aux, *, key, step=0, train=False) -> base.Recon:
    del train  # no dropout; decoding follows the schedules at `step` in training and evaluation
    dec = self.module.apply(
      variables,
      z,
      x,
      aux,
      self.p_tuple(step),
      self.p_string(step),
      method=RecordVAE.decode,
      rngs={"sample": key},
    )
    return base.Recon(
      nll=dec.nll,
      loss=dec.loss / self.num_fields,
      fields=dec.fields,
      extras={"string_nats": dec.nats, "string_chars": dec.chars},
    )

  def field_nll(self, variables, x, z, key) -> dict[str, jax.Array]:
    """-log p(x_f | z) per field f (names as in `Recon.fields`), nats, [B] each, decoding as
    generation does: the Tuple level feeds back its own emitted embeddings (p_tuple = 0), so
    the fields are conditionally independent given z and the sum over any subset of fields is
    that subset's negative log-likelihood; strings are scored under teacher forcing. Used by
    conditional generation (`alala_jax.conditional`) to score the fixed fields."""
    _, _, enc = self.module.apply(variables, x, method=RecordVAE.posterior)
    dec = self.module.apply(
      variables, z, x, enc, 0.0, 1.0, method=RecordVAE.decode, rngs={"sample": key}
    )
    return dec.field_nll

  def track_latents(self, variables, z, row_mask):
    _, upd = self.module.apply(
      variables, z, row_mask, method=RecordVAE.track, mutable=["batch_stats"]
    )
    return {**base.non_params(variables), **upd}

  def decode(self, variables, z, key, *, greedy=False):
    return self.module.apply(
      variables, z, greedy, method=RecordVAE.decode_latents, rngs={"sample": key}
    )

  def sample_latents(self, variables, key, n):
    return self.module.apply(variables, n, method=RecordVAE.sample_latents, rngs={"latent": key})

  def prior_moments(self, variables):
    """The moving mean and covariance of the sampled training latents (Sec 2.4)."""
    return self.module.apply(variables, method=lambda m: m.latent_moments())

  def reconstruct(self, variables, x, key, *, greedy=False):
    """g(mu(x)): decodes the posterior means of a batch (App E, the Levenshtein metric)."""
    return self.module.apply(
      variables, x, greedy, method=RecordVAE.reconstruct, rngs={"sample": key}
    )

  def batch_metrics(self, recon, step):
    """BPC (bits per string character, END tokens counted: Sigma nats / Sigma chars / ln 2)
    and the decoding schedules' ground-truth probabilities at `step`."""
    bpc = (
      jnp.sum(recon.extras["string_nats"])
      / jnp.maximum(jnp.sum(recon.extras["string_chars"]), 1.0)
      / math.log(2.0)
    )
    return {"bpc": bpc, "p_tuple": self.p_tuple(step), "p_string": self.p_string(step)}

  def partition(self, params):
    return jax.tree_util.tree_map_with_path(
      lambda path, _: base.ENCODER if _is_encoder_path(path) else base.DECODER, params
    )
