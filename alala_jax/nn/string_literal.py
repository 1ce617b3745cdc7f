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
    return _decoded(None if target is None else _cross_entropy(logits, tgt), sampled, target)

  def encode_packed(self, chars: list[jax.Array], length: list[jax.Array]) -> list[dict]:
    """Several fields' `encode` in scans shared by all of them, without padding.

    The fields' rows are stacked (longest field first), and time runs in segments: while t is
    below every field's width all rows step together; from then on only the rows of fields
    still running (a prefix of the stack) do. Every GRU step is then one matmul per gate for
    all fields, and no field runs past its own width T_i. Same numbers as `encode` per field.

    Args:
      chars: per field [B, T_i] int.
      length: per field [B].

    Returns:
      per field {'emb': [B, H]}, in the order given.
    """
    order, segments = _pack_plan([c.shape[1] for c in chars])
    b = chars[0].shape[0]
    h = jnp.zeros((len(chars) * b, self.features), self.table.dtype)
    for t0, t1, n in segments:
      rows = order[:n]
      x = jnp.concatenate([chars[i][:, t0:t1] for i in rows], 0)  # [n B, L]
      n_len = jnp.concatenate([length[i] for i in rows], 0)
      active = jnp.arange(t0, t1)[:, None] < n_len[None, :]  # [L, n B]
      h_run, _ = self.enc_scan(h[: n * b], (jnp.swapaxes(self.table[x], 0, 1), active))
      h = jnp.concatenate([h_run, h[n * b :]], 0)
    emb = jnp.split(self.enc_out(h), len(chars), 0)  # stacked in `order`
    return [{"emb": emb[order.index(i)]} for i in range(len(chars))]

  def decode_packed(
    self, emb: list[jax.Array], target: list[dict] | None, steps: list[int], p_teacher, greedy
  ):
    """Several fields' `decode` in shared scans without padding (as `encode_packed`).

    Args:
      emb: per field [B, H].
      target: per field {'chars': [B, steps_i], 'length': [B]}, or None to generate.
      steps: per field T_i.
      p_teacher, greedy: as in `decode`.

    Returns:
      per field, in the order given, what `decode` returns for it.
    """
    order, segments = _pack_plan(steps)
    b = emb[0].shape[0]
    h = self.dec_h0(jnp.concatenate([emb[i] for i in order], 0))
    ce = [[] for _ in steps]  # per field, its [L, B] pieces over the segments
    sampled = [[] for _ in steps]
    for t0, t1, n in segments:
      rows, shape = order[:n], (t1 - t0, n * b)
      if greedy:
        gumbel = jnp.zeros(shape + (self.vocab_size,), h.dtype)
      else:
        gumbel = jax.random.gumbel(self.make_rng("sample"), shape + (self.vocab_size,), h.dtype)
      if target is None:
        tgt, teacher = jnp.zeros(shape, jnp.int32), jnp.zeros(shape, bool)
      else:
        tgt = jnp.concatenate([target[i]["chars"][:, t0:t1] for i in rows], 0).T
        teacher = jax.random.uniform(self.make_rng("sample"), shape) < p_teacher
      h_run, (logits, smp) = self.dec_scan(h[: n * b], (tgt, teacher, gumbel), self.table)
      h = jnp.concatenate([h_run, h[n * b :]], 0)
      seg_ce = None if target is None else _cross_entropy(logits, tgt)
      for j, i in enumerate(rows):
        sampled[i].append(smp[:, j * b : (j + 1) * b])
        if seg_ce is not None:
          ce[i].append(seg_ce[:, j * b : (j + 1) * b])
    return [
      _decoded(
        None if target is None else jnp.concatenate(ce[i], 0),
        jnp.concatenate(sampled[i], 0),
        None if target is None else target[i],
      )
      for i in range(len(steps))
    ]


def _pack_plan(steps: list[int]) -> tuple[list[int], list[tuple[int, int, int]]]:
  """Fields by descending width, and the time segments (t0, t1, fields still running).

  >>> _pack_plan([5, 23, 5])
  ([1, 0, 2], [(0, 5, 3), (5, 23, 1)])
  """
  order = sorted(range(len(steps)), key=lambda i: -steps[i])
  ends = sorted(set(steps))
  starts = [0] + ends[:-1]
  return order, [(t0, t1, sum(s >= t1 for s in steps)) for t0, t1 in zip(starts, ends)]


def _cross_entropy(logits: jax.Array, tgt: jax.Array) -> jax.Array:
  """[T, B, V] logits, [T, B] targets -> [T, B] nats."""
  return jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, tgt[..., None], -1)[..., 0]


def _decoded(ce: jax.Array | None, sampled: jax.Array, target: dict | None):
  """(loss, nats, sample) of `StringLiteral.decode` from the [T, B] CE and sampled ids."""
  sample = normalize_chars(sampled.T)
  if target is None:
    return None, None, sample
  mask = jnp.arange(ce.shape[0])[:, None] <= target["length"][None, :]  # [T, B] incl. END
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
