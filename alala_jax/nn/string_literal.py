"""StringLiteral: the one char-RNN seq2seq module shared by every string field (App B.1).

* 16-d character embedding, U(0, 1) init, shared by encoder and decoder.
* Encoder: GRU(H) from h0 = 0 over the characters, then dense(H -> H) + CELU on the final state.
* Decoder: h0 = CELU(dense(embedding)); a softmax predicts character t from h_{t-1} (the first
  character from h0); the string ends with the END token (id 0).
* Decoder input at step t: the ground-truth character (teacher forcing), a sample from its own
  softmax (always sampling), or a per-example, per-step Bernoulli mix with ground-truth
  probability `p_teacher` (scheduled sampling, Bengio et al. 2015).
* Loss: cross-entropy in nats, every field weighted 1 in total: each character and the END token
  weigh 1 / (len + 1).
* Sampling (and greedy decoding) never emits the out-of-vocabulary id, which is never a training
  target; the loss still normalises over all ids.

Time runs under `nn.scan` (DESIGN §5: never a Python loop over time). Sampling uses Gumbel-max
noise drawn before the scan from the 'sample' RNG stream.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from alala_jax.data.codec import END_ID, OOV_ID
from alala_jax.nn import gru, layers


class _EncStep(nn.Module):
  features: int
  remat: str = "none"

  @nn.compact
  def __call__(self, h, inputs):
    x, active = inputs  # [B, C], [B]
    h_new = gru.cell_class(self.remat)(self.features, name="cell")(h, x)
    return jnp.where(active[:, None], h_new, h), None


class _DecStep(nn.Module):
  features: int
  vocab_size: int
  remat: str = "none"

  @nn.compact
  def __call__(self, h, inputs, table):
    target, teacher, gumbel = inputs  # [B] int, [B] bool, [B, V]
    logits = layers.Dense(self.vocab_size, name="logits")(h)
    # never sample the out-of-vocabulary id: it is no training target (the loss keeps it)
    sampled = jnp.argmax((logits + gumbel).at[:, OOV_ID].set(-jnp.inf), -1).astype(jnp.int32)
    chosen = jnp.where(teacher, target, sampled)
    h = gru.cell_class(self.remat)(self.features, name="cell")(h, table[chosen])
    return h, (logits, sampled)


_scan_kw = dict(variable_broadcast="params", split_rngs={"params": False})
_EncScan = nn.scan(_EncStep, in_axes=0, out_axes=0, **_scan_kw)
_DecScan = nn.scan(_DecStep, in_axes=(0, nn.broadcast), out_axes=0, **_scan_kw)


class StringLiteral(nn.Module):
  vocab_size: int
  features: int = 128
  char_dim: int = 16
  remat: str = "none"  # GRU cells under nn.remat: none | dots | full (gru.cell_class)

  def setup(self):
    self.table = self.param(
      "char_embedding", nn.initializers.uniform(1.0), (self.vocab_size, self.char_dim)
    )
    self.enc_scan = _EncScan(self.features, self.remat)
    self.enc_out = layers.CeluDense(self.features)
    self.dec_h0 = layers.CeluDense(self.features)
    self.dec_scan = _DecScan(self.features, self.vocab_size, self.remat)

  def encode(self, chars: jax.Array, length: jax.Array) -> dict:
    """chars [B, T] int, length [B] -> {'emb': [B, H]}."""
    x = jnp.swapaxes(self.table[chars], 0, 1)  # [T, B, C]
    active = jnp.arange(chars.shape[1])[:, None] < length[None, :]  # [T, B]
    h0 = jnp.zeros((chars.shape[0], self.features), x.dtype)
    h, _ = self.enc_scan(h0, (x, active))
    return {"emb": self.enc_out(h)}

  def decode(self, emb: jax.Array, target: dict | None, steps: int, p_teacher, greedy: bool):
    """Runs the decoder for `steps` = max_len + 1 steps.

    Args:
      emb: [B, H] embedding to decode.
      target: {'chars': [B, T], 'length': [B]} ground truth, or None to generate.
      steps: T.
      p_teacher: ground-truth input probability (1 = teacher forcing, 0 = always sampling).
      greedy: argmax instead of sampling (generation option).

    Returns:
      (loss [B] or None, nats [B] or None, sample {'chars': [B, T], 'length': [B]}); `loss` is
      the per-field weighted cross-entropy, `nats` the unweighted sum over characters + END.
    """
    b = emb.shape[0]
    h0 = self.dec_h0(emb)
    if greedy:
      gumbel = jnp.zeros((steps, b, self.vocab_size), emb.dtype)
    else:
      gumbel = jax.random.gumbel(self.make_rng("sample"), (steps, b, self.vocab_size), emb.dtype)
    if target is None:
      tgt = jnp.zeros((steps, b), jnp.int32)
      teacher = jnp.zeros((steps, b), bool)
    else:
      tgt = target["chars"].T
      teacher = jax.random.uniform(self.make_rng("sample"), (steps, b)) < p_teacher
    _, (logits, sampled) = self.dec_scan(h0, (tgt, teacher, gumbel), self.table)
    sample = normalize_chars(sampled.T)
    if target is None:
      return None, None, sample
    ce = jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, tgt[..., None], -1)[..., 0]
    mask = jnp.arange(steps)[:, None] <= target["length"][None, :]  # [T, B] incl. END
    nats = jnp.sum(jnp.where(mask, ce, 0.0), 0)
    return nats / (target["length"] + 1).astype(nats.dtype), nats, sample


def normalize_chars(chars: jax.Array) -> dict:
  """Sampled chars [B, T] -> codec layout: END from the first END on; length = its position.

  A sample with no END within T steps is cut at T - 1 = max_len characters.
  """
  t = chars.shape[-1]
  is_end = (chars == END_ID) | (jnp.arange(t) == t - 1)
  length = jnp.argmax(is_end, -1).astype(jnp.int32)
  chars = jnp.where(jnp.arange(t) < length[..., None], chars, END_ID)
  return {"chars": chars, "length": length}
