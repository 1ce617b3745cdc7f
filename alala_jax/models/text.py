"""The LSTM text VAE of papers 001 and 004 (He et al. 2019 App B; Kim et al. 2018).

Sentences come as `alala_jax.data.text` batches: {'tokens': int32 [B, T] = [<s>, w1..wn, </s>,
<pad>...], 'length': int32 [B] = n + 1 predicted tokens}.

  encoder   embedding -> 1-layer LSTM over <s> w1..wn </s> -> final hidden state h
            mean = W_mu h, logvar = W_logvar h (no biases: the reference's one
            Linear(enc_nh, 2 nz, bias=False) split in two, so that multiscale can stack the
            log-variance head per level)
  decoder   c0 = W_c z (no bias), h0 = tanh(c0)                   (z_to_h0; reference dec_lstm)
            input_t = [dropout(embed(w_{t-1})), z]               (z_in_input)
            out_t   = dropout(LSTM_t) (, z)                       (z_in_output: paper 001's
                                                                   oracle wiring)
            logits  = W_out out_t + b                             (out_bias; reference: no bias)
  p(x | z)  = prod_t softmax(logits_t)[w_t] over the n + 1 targets w1..wn </s>

LSTM cell (PyTorch gate order, one bias vector): gates = x W_x + h W_h + b split into
(i, f, g, o); c' = sigmoid(f) c + sigmoid(i) tanh(g); h' = sigmoid(o) tanh(c').

Initialisation (paper 001 App B.2 and the reference code's `reset_parameters`): every parameter
U(-0.01, 0.01) (`init_scale`), the embeddings U(-0.1, 0.1) (`embed_init_scale`). Sizes: paper
001/004 text models use embeddings 512, LSTMs 1024, latent 32, dropout 0.5 on the decoder's
input embeddings and outputs; the synthetic experiment of paper 001 uses 50 / 50 and a scalar
latent (experiments/configs/text.py).

Units (models/base.py): `Recon.nll` = `Recon.loss` = -log p(x | z) summed over the predicted
tokens (nats per sentence; </s> included); `kl_scale` = 1, so beta = 1 is the ELBO. Dropout
runs only when `recon(..., train=True)` (the training step); evaluation and the likelihood
metrics see the deterministic decoder. Sampling excludes <pad> and <s> (never targets, so
training drives their probabilities towards 0) so that every sample is a well-formed sentence.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from alala_jax.models import base

PAD, BOS, EOS = 0, 1, 2  # alala_jax.data.text's special ids


def uniform(scale: float) -> nn.initializers.Initializer:
  """U(-scale, scale) (PyTorch's `uniform_(-scale, scale)`)."""

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -scale, scale)

  return init


@dataclasses.dataclass(frozen=True)
class TextVAEConfig:
  """Hyper-parameters of `TextVAE` (defaults: paper 001 App B.2 / paper 004's text model)."""

  vocab_size: int  # V, specials included
  latent_dim: int = 32  # D; 0: the LSTM language model baseline (the decoder alone, no z)
  embed_dim: int = 512  # E, encoder and decoder word embeddings (separate tables)
  enc_hidden: int = 1024
  dec_hidden: int = 1024
  dec_dropout_in: float = 0.5  # on the decoder's input embeddings
  dec_dropout_out: float = 0.5  # on the decoder's LSTM outputs, before the vocabulary layer
  z_to_h0: bool = True  # c0 = W z, h0 = tanh(c0); else zero initial state
  z_in_input: bool = True  # z concatenated to every decoder input
  z_in_output: bool = False  # z concatenated to every decoder output (paper 001's oracle)
  out_bias: bool = False  # a bias on the vocabulary layer (the reference has none)
  init_scale: float = 0.01  # U(-s, s) for every parameter but the embeddings
  embed_init_scale: float = 0.1  # U(-s, s) for the embeddings

  def __post_init__(self):
    if self.latent_dim < 0:
      raise ValueError(f"TextVAEConfig.latent_dim must be >= 0, got {self.latent_dim}")
    for name in ("vocab_size", "embed_dim", "enc_hidden", "dec_hidden"):
      if getattr(self, name) < 1:
        raise ValueError(f"TextVAEConfig.{name} must be positive, got {getattr(self, name)}")
    if self.vocab_size <= EOS:
      raise ValueError(f"vocab_size {self.vocab_size} leaves no room for <pad>, <s>, </s>")
    for name in ("dec_dropout_in", "dec_dropout_out"):
      if not 0.0 <= getattr(self, name) < 1.0:
        raise ValueError(f"TextVAEConfig.{name} must be in [0, 1), got {getattr(self, name)}")


class LSTMCell(nn.Module):
  """One LSTM step (module doc). Call as ``(c, h) = cell((c, h), x)``."""

  features: int
  init_scale: float = 0.01

  @nn.compact
  def __call__(self, carry, x):
    c, h = carry
    init = uniform(self.init_scale)
    w_x = self.param("x_kernel", init, (x.shape[-1], 4 * self.features))
    w_h = self.param("h_kernel", init, (self.features, 4 * self.features))
    b = self.param("bias", init, (4 * self.features,))
    gates = x @ w_x + h @ w_h + b
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return c, h


class _MaskedStep(nn.Module):
  """Scan body: one LSTM step that keeps the old state where mask is False."""

  features: int
  init_scale: float

  @nn.compact
  def __call__(self, carry, inputs):
    x, mask = inputs  # [B, I], [B]
    new = LSTMCell(self.features, self.init_scale, name="cell")(carry, x)
    keep = mask[:, None]
    carry = jax.tree.map(lambda n, o: jnp.where(keep, n, o), new, carry)
    return carry, carry[1]


def run_lstm(features: int, init_scale: float, name: str):
  """An LSTM over time (axis 1) under `nn.scan`: (carry, (x [B, T, I], mask [B, T])) ->
  (final carry, h [B, T, H]); the parameters are shared over time."""
  return nn.scan(
    _MaskedStep,
    variable_broadcast="params",
    split_rngs={"params": False},
    in_axes=1,
    out_axes=1,
  )(features, init_scale, name=name)


class TextEncoder(nn.Module):
  """tokens [B, T], length [B] -> (final hidden state [B, H], mean [B, D])."""

  config: TextVAEConfig

  @nn.compact
  def __call__(self, tokens, length):
    c = self.config
    emb = nn.Embed(
      c.vocab_size, c.embed_dim, embedding_init=uniform(c.embed_init_scale), name="embed"
    )(tokens)
    b = tokens.shape[0]
    zeros = jnp.zeros((b, c.enc_hidden), emb.dtype)
    mask = jnp.arange(tokens.shape[1])[None, :] <= length[:, None]  # <s> .. </s>
    (_, h), _ = run_lstm(c.enc_hidden, c.init_scale, "lstm")((zeros, zeros), (emb, mask))
    mean = nn.Dense(c.latent_dim, use_bias=False, kernel_init=uniform(c.init_scale), name="mean")
    return h, mean(h)


class TextDecoder(nn.Module):
  """(z [B, D], input tokens [B, S]) -> logits [B, S, V]; `step` one sampling step."""

  config: TextVAEConfig

  def setup(self):
    c = self.config
    init = uniform(c.init_scale)
    self.embed = nn.Embed(c.vocab_size, c.embed_dim, embedding_init=uniform(c.embed_init_scale))
    if c.z_to_h0 and c.latent_dim:
      self.z_to_c0 = nn.Dense(c.dec_hidden, use_bias=False, kernel_init=init)
    self.lstm = run_lstm(c.dec_hidden, c.init_scale, "lstm")
    self.out = nn.Dense(c.vocab_size, use_bias=c.out_bias, kernel_init=init, bias_init=init)
    self.drop_in = nn.Dropout(c.dec_dropout_in)
    self.drop_out = nn.Dropout(c.dec_dropout_out)

  def initial_state(self, z):
    if self.config.z_to_h0 and self.config.latent_dim:
      c0 = self.z_to_c0(z)
      return c0, jnp.tanh(c0)
    zeros = jnp.zeros((z.shape[0], self.config.dec_hidden), z.dtype)
    return zeros, zeros

  def _inputs(self, z, emb):
    if self.config.z_in_input:
      zz = jnp.broadcast_to(z[:, None, :], emb.shape[:2] + z.shape[-1:])
      emb = jnp.concatenate([emb, zz], -1)
    return emb

  def _logits(self, z, h):
    if self.config.z_in_output:
      zz = jnp.broadcast_to(z[..., None, :], h.shape[:-1] + z.shape[-1:])
      h = jnp.concatenate([h, zz], -1)
    return self.out(h)

  def __call__(self, z, inputs, *, deterministic: bool = True):
    emb = self.drop_in(self.embed(inputs), deterministic=deterministic)
    mask = jnp.ones(inputs.shape, bool)
    _, hs = self.lstm(self.initial_state(z), (self._inputs(z, emb), mask))
    return self._logits(z, self.drop_out(hs, deterministic=deterministic))

  def step(self, z, carry, token):
    """One deterministic step: (carry, token [B]) -> (carry, logits [B, V])."""
    emb = self._inputs(z, self.embed(token)[:, None, :])
    carry, hs = self.lstm(carry, (emb, jnp.ones(token.shape + (1,), bool)))
    return carry, self._logits(z, hs[:, 0])


class TextVAENet(nn.Module):
  """The flax module of `TextVAE`: top-level params encoder / encoder_scale / decoder."""

  config: TextVAEConfig

  def setup(self):
    c = self.config
    if c.latent_dim:  # latent_dim 0: the LSTM language model (TextVAEConfig), no encoder
      self.encoder = TextEncoder(c)
      self.encoder_scale = nn.Dense(c.latent_dim, use_bias=False, kernel_init=uniform(c.init_scale))
    self.decoder = TextDecoder(c)

  def encode(self, tokens, length):
    if not self.config.latent_dim:
      empty = jnp.zeros((tokens.shape[0], 0), jnp.float32)
      return empty, empty
    h, mean = self.encoder(tokens, length)
    return mean, self.encoder_scale(h)

  def logits(self, z, tokens, deterministic: bool = True):
    return self.decoder(z, tokens[:, :-1], deterministic=deterministic)

  def sample_tokens(self, z, key, num_steps: int, greedy: bool):
    """Autoregressive decoding of num_steps tokens after <s> (a scan over time): [n, S]."""

    def body(decoder, carry, t):
      state, token = carry
      state, logits = decoder.step(z, state, token)
      logits = logits.at[:, jnp.array([PAD, BOS])].set(-jnp.inf)  # never targets (module doc)
      if greedy:
        token = jnp.argmax(logits, -1).astype(jnp.int32)
      else:
        token = jax.random.categorical(jax.random.fold_in(key, t), logits).astype(jnp.int32)
      return (state, token), token

    scan = nn.scan(body, variable_broadcast="params", split_rngs={"params": False})
    first = jnp.full((z.shape[0],), BOS, jnp.int32)
    _, words = scan(self.decoder, (self.decoder.initial_state(z), first), jnp.arange(num_steps))
    return words.T  # [S, n] -> [n, S]

  def __call__(self, tokens, length):
    mean, _ = self.encode(tokens, length)
    return self.logits(mean, tokens)


def target_mask(tokens: jax.Array, length: jax.Array) -> jax.Array:
  """[B, T-1] bool: target t (tokens[:, t+1]) is one of the n + 1 predicted tokens."""
  return jnp.arange(tokens.shape[1] - 1)[None, :] < length[:, None]


def token_nll(logits: jax.Array, tokens: jax.Array, length: jax.Array) -> jax.Array:
  """-log p(targets) summed over the predicted tokens: [B] nats."""
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:])
  return jnp.sum(jnp.where(target_mask(tokens, length), ce, 0.0), -1)


def finish_sequences(words: jax.Array) -> dict[str, jax.Array]:
  """Sampled tokens [n, S] -> the data format: [<s>, w.., </s>, <pad>..] [n, S + 1] and length.

  Everything after the first </s> becomes <pad>; a row without </s> gets one at its end."""
  n, s = words.shape
  is_eos = words == EOS
  first = jnp.where(jnp.any(is_eos, 1), jnp.argmax(is_eos, 1), s - 1)  # index of the </s>
  pos = jnp.arange(s)[None, :]
  words = jnp.where(pos < first[:, None], words, jnp.where(pos == first[:, None], EOS, PAD))
  tokens = jnp.concatenate([jnp.full((n, 1), BOS, jnp.int32), words.astype(jnp.int32)], 1)
  return {"tokens": tokens, "length": (first + 1).astype(jnp.int32)}


@dataclasses.dataclass(frozen=True)
class TextVAE(base.VAEModel):
  """The LSTM text VAE (module doc); immutable and hashable (equality from `config` and
  `max_tokens`, so it is a valid static argument of `jax.jit`)."""

  config: TextVAEConfig
  max_tokens: int  # T of the data: sampled sentences have at most T - 2 words
  net: TextVAENet = dataclasses.field(init=False, repr=False, compare=False)

  kl_scale = 1.0

  @property
  def level_collections(self):
    """Per-level: the log-variance head (none for the language model, latent_dim 0)."""
    if not self.config.latent_dim:
      return types.MappingProxyType({})
    return types.MappingProxyType({"params": ("encoder_scale",)})

  def __post_init__(self):
    if self.max_tokens < 3:
      raise ValueError(f"max_tokens must be >= 3 (<s>, a word, </s>), got {self.max_tokens}")
    object.__setattr__(self, "net", TextVAENet(self.config))

  @property
  def latent_dim(self) -> int:
    return self.config.latent_dim

  def _check_x(self, x: Any) -> tuple[jax.Array, jax.Array]:
    if not isinstance(x, dict) or set(x) != {"tokens", "length"}:
      raise ValueError(
        "text batches are {'tokens': int32 [B, T], 'length': int32 [B]} (alala_jax.data.text)"
      )
    tokens, length = jnp.asarray(x["tokens"], jnp.int32), jnp.asarray(x["length"], jnp.int32)
    if tokens.ndim != 2 or length.shape != tokens.shape[:1]:
      raise ValueError(f"tokens [B, T] and length [B] expected, got {tokens.shape}, {length.shape}")
    return tokens, length

  def init(self, key: jax.Array, x: Any) -> dict:
    tokens, length = self._check_x(x)
    return {"params": self.net.init(key, tokens, length)["params"]}

  def encode(self, variables, x):
    tokens, length = self._check_x(x)
    mean, logvar = self.net.apply(variables, tokens, length, method=TextVAENet.encode)
    return base.DiagGaussian(mean, jnp.exp(0.5 * logvar)), None

  def logits(self, variables, x, z, *, dropout_key=None) -> jax.Array:
    """Teacher-forced logits [B, T-1, V]; dropout on when a dropout_key is given."""
    tokens, _ = self._check_x(x)
    rngs = {} if dropout_key is None else {"dropout": dropout_key}
    return self.net.apply(
      variables, z, tokens, dropout_key is None, method=TextVAENet.logits, rngs=rngs
    )

  def recon(self, variables, x, z, aux, *, key, step=0, train=False) -> base.Recon:
    """-log p(x | z) summed over the predicted tokens [B]; dropout only when train."""
    del aux, step
    tokens, length = self._check_x(x)
    dropout = self.config.dec_dropout_in > 0 or self.config.dec_dropout_out > 0
    logits = self.logits(variables, x, z, dropout_key=key if (train and dropout) else None)
    nll = token_nll(logits, tokens, length)
    return base.Recon(
      nll=nll, loss=nll, fields={"tokens": nll}, extras={"tokens": length.astype(jnp.float32)}
    )

  def decode(self, variables, z, key, *, greedy=False):
    """Sentences [n, T] (data format) sampled from p(x | z) (argmax tokens if greedy)."""
    words = self.net.apply(
      variables, z, key, self.max_tokens - 1, greedy, method=TextVAENet.sample_tokens
    )
    return finish_sequences(words)

  def units(self, recon):
    """Predicted tokens per sentence (</s> included) [B]."""
    return recon.extras["tokens"]

  def batch_metrics(self, recon, step):
    """Perplexity of the batch's reconstruction term: exp(sum nll / sum predicted tokens)."""
    del step
    return {
      "recon_ppl": jnp.exp(jnp.sum(recon.nll) / jnp.maximum(jnp.sum(recon.extras["tokens"]), 1))
    }

  def partition(self, params):
    return base.partition_by_top_level(params, {"encoder", "encoder_scale"})
