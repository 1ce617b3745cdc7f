"""A VAE whose decoder is a fixed synthetic oracle (paper 004's "oracle generator" rows).

The oracle LSTM of `alala_jax.data.text` (`OracleParams`: x_1 uniform, then
x_{t+1} ~ softmax(h_t W_out_h + z W_out_z + b_out), h_t = LSTM([emb(x_t), z], h_{t-1}), h_0 =
tanh(c_0), c_0 = z W_zc + b_zc) is the decoder p(x | z); only the encoder (`models.text`'s
LSTM encoder) trains, alone or refined by SVI (alala_jax/refine.py). This gives the table's
oracle row: how close amortized (VAE), iterative (SVI) and semi-amortized (SA-VAE) inference
get to the true NLL when the generator is exact.

The oracle's parameters live in the non-gradient collection 'oracle' of the variables
(checkpointed with the run, never updated). Batches are `data.text` rows whose n words are
oracle words (token ids 4..V+3, every row of the same length); `recon.nll` = -log p(x | z) of
the n words (log V for the uniform first word; </s> is not scored: the oracle's length is
fixed), `units` = n.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from alala_jax.data import text as text_data
from alala_jax.models import base
from alala_jax.models.text import TextVAE, TextVAEConfig, finish_sequences

ORACLE_FIELDS = ("embedding", "w_x", "w_h", "b", "w_zc", "b_zc", "w_out_h", "w_out_z", "b_out")


def oracle_variables(params: text_data.OracleParams) -> dict:
  """The 'oracle' collection: the oracle's arrays as float32 jnp arrays."""
  return {k: jnp.asarray(getattr(params, k), jnp.float32) for k in ORACLE_FIELDS}


def _lstm_step(o, z_gates, carry, word):
  c, h = carry
  gates = o["embedding"][word] @ o["w_x"][: o["embedding"].shape[1]] + z_gates + h @ o["w_h"]
  i, f, g, og = jnp.split(gates, 4, axis=-1)
  c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
  h = jax.nn.sigmoid(og) * jnp.tanh(c)
  return c, h


def _start(o, z):
  e = o["embedding"].shape[1]
  c = z @ o["w_zc"] + o["b_zc"]
  return (c, jnp.tanh(c)), z @ o["w_x"][e:] + o["b"], z @ o["w_out_z"] + o["b_out"]


def oracle_log_prob(o: dict, words: jax.Array, z: jax.Array) -> jax.Array:
  """log p(words | z) [B] for oracle words [B, L] (ids 0..V-1) and z [B, Z], float32."""
  carry, z_gates, z_logits = _start(o, z)

  def body(carry, pair):
    word, target = pair
    carry = _lstm_step(o, z_gates, carry, word)
    logp = jax.nn.log_softmax(carry[1] @ o["w_out_h"] + z_logits)
    return carry, jnp.take_along_axis(logp, target[:, None], -1)[:, 0]

  _, lp = jax.lax.scan(body, carry, (words[:, :-1].T, words[:, 1:].T))
  return jnp.sum(lp, 0) - math.log(o["embedding"].shape[0])


@dataclasses.dataclass(frozen=True, eq=False)
class OracleDecoderVAE(base.VAEModel):
  """The text VAE's LSTM encoder with the oracle as its fixed decoder (module doc). Hashed by
  identity (it holds the oracle's numpy parameters): build it once per run."""

  encoder_config: TextVAEConfig
  oracle: text_data.OracleParams
  num_words: int  # n, the oracle's sequence length
  encoder_net: TextVAE = dataclasses.field(init=False, repr=False)

  kl_scale = 1.0

  def __post_init__(self):
    oz = self.oracle.w_zc.shape[0]
    if self.encoder_config.latent_dim != oz:
      raise ValueError(f"latent_dim {self.encoder_config.latent_dim} != the oracle's z size {oz}")
    object.__setattr__(self, "encoder_net", TextVAE(self.encoder_config, self.num_words + 2))

  @property
  def latent_dim(self) -> int:
    return self.encoder_config.latent_dim

  def init(self, key, x):
    p = self.encoder_net.init(key, x)["params"]
    return {
      "params": {k: p[k] for k in ("encoder", "encoder_scale")},
      "oracle": oracle_variables(self.oracle),
    }

  def _words(self, x):
    tokens = jnp.asarray(x["tokens"], jnp.int32)
    return tokens[:, 1 : 1 + self.num_words] - len(text_data.SPECIALS)

  def encode(self, variables, x):
    v = {"params": {**variables["params"], "decoder": {}}}
    return self.encoder_net.encode(v, x)

  def recon(self, variables, x, z, aux, *, key, step=0, train=False):
    del aux, key, step, train
    nll = -oracle_log_prob(variables["oracle"], self._words(x), z)
    n = jnp.full(nll.shape, float(self.num_words))
    return base.Recon(nll=nll, loss=nll, fields={"tokens": nll}, extras={"tokens": n})

  def units(self, recon):
    return recon.extras["tokens"]

  def decode(self, variables, z, key, *, greedy=False):
    o = variables["oracle"]
    k_first, k_rest = jax.random.split(key)
    v = o["embedding"].shape[0]
    first = jax.random.randint(k_first, (z.shape[0],), 0, v)
    carry, z_gates, z_logits = _start(o, z)

    def body(state, t):
      carry, word = state
      carry = _lstm_step(o, z_gates, carry, word)
      logits = carry[1] @ o["w_out_h"] + z_logits
      if greedy:
        nxt = jnp.argmax(logits, -1)
      else:
        nxt = jax.random.categorical(jax.random.fold_in(k_rest, t), logits)
      return (carry, nxt), nxt

    _, rest = jax.lax.scan(body, (carry, first), jnp.arange(self.num_words - 1))
    words = jnp.concatenate([first[:, None], rest.T], 1) + len(text_data.SPECIALS)
    eos = jnp.full((z.shape[0], 1), text_data.EOS)
    return finish_sequences(jnp.concatenate([words, eos], 1).astype(jnp.int32))

  def partition(self, params):
    return base.partition_by_top_level(params, {"encoder", "encoder_scale"})


def grid_nll(
  variables: dict, x: Any, num_words: int, half_width: float = 5.0, points: int = 81
) -> jax.Array:
  """-log p(x) = -log integral p(x | z) N(z; 0, I) dz by quadrature on a 2-d grid [B] (the
  oracle's "true NLL"; a Riemann sum over [-w, w]^2 with `points`^2 nodes)."""
  o = variables["oracle"]
  words = jnp.asarray(x["tokens"], jnp.int32)[:, 1 : 1 + num_words] - len(text_data.SPECIALS)
  g = jnp.linspace(-half_width, half_width, points)
  zz = jnp.stack(jnp.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)  # [G, 2]
  log_area = 2 * math.log(2 * half_width / (points - 1))

  def one(z):
    zb = jnp.broadcast_to(z, (words.shape[0], 2))
    return oracle_log_prob(o, words, zb) + jnp.sum(-0.5 * z**2 - 0.5 * math.log(2 * math.pi))

  lp = jax.lax.map(one, zz, batch_size=64)  # [G, B]
  return -(jax.nn.logsumexp(lp, 0) + log_area)


__all__ = ["OracleDecoderVAE", "grid_nll", "oracle_log_prob", "oracle_variables"]
