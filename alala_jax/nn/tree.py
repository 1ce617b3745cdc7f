"""The tree-recursive encoder/decoder generated from the schema (paper 000, Sec 2.3, App B.3).

Every node module has the same two methods:

* ``encode(data, mask, train) -> enc``: ``enc['emb']`` is the node's [B, H] embedding; composite
  nodes keep their children's `enc` trees (needed for teacher forcing and the skew loss).
* ``decode(emb, target, enc, ctx) -> DecodeOut``: decodes [B, H]; with ``target``/``enc`` it
  also returns the weighted reconstruction loss, without them (generation) it only samples.

Modules: `Tuple` (App B.3), `SimpleTuple` (pass-through baseline, App G), `Single` (a one-field
record is its field, App F's text model), the leaves `StringField`
(a view on the shared StringLiteral) and `FloatsField` (ScalarTuple), and three extensions that no
paper has: `CategoryField` (a softmax over a low-cardinality field's values), `OptionalField`
(presence bit) and `ListField` (recurrent list with a stop bit).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from alala_jax import schema as sc
from alala_jax.data.codec import END_ID, OOV_VALUE
from alala_jax.nn import layers
from alala_jax.nn.gru import GRUCell
from alala_jax.nn.scalar_tuple import ScalarTuple
from alala_jax.nn.string_literal import StringLiteral

GROUP_WASTE = 1.5  # 'grouped' string scans: padded work <= 1.5 x the unpadded work per group
STRING_SCANS = ("field", "grouped", "packed")  # ModelConfig.string_scan


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Model hyper-parameters (paper 000 App B defaults). Hashable: a static jit argument."""

  vocab_size: int
  max_len: tuple[tuple[str, int], ...]  # string path name -> max length (per field padding)
  max_items: tuple[tuple[str, int], ...] = ()  # list path name -> max items
  categories: tuple[tuple[str, int], ...] = ()  # category path name -> number of value ids
  latent_dim: int = 128
  char_dim: int = 16
  tuple_type: str = "tuple"  # 'tuple' (App B.3) or 'simple' (App G)
  string_scan: str = "field"  # 'field': one scan per string field; 'grouped':
  # a Tuple's string fields share padded scans (see `string_groups`); 'packed': all of a
  # Tuple's string fields share scans without padding (`StringLiteral.encode_packed`); the
  # same numbers up to rounding
  gru_remat: str = "none"  # string GRU cells under nn.remat: none | dots |
  # full (gru.cell_class); same numbers
  sigma_layers: int = 3
  stats_decay: float = 0.999
  whiten_eps: float = 1e-5

  def steps(self, path) -> int:
    return dict(self.max_len)[sc.path_name(path)] + 1

  def items(self, path) -> int:
    return dict(self.max_items)[sc.path_name(path)]

  def values(self, path) -> int:
    return dict(self.categories)[sc.path_name(path)]


class DecodeContext(NamedTuple):
  """Decoding context: ground-truth probabilities at the Tuple and String levels."""

  p_tuple: Any
  p_string: Any
  greedy: bool = False


@struct.dataclass
class DecodeOut:
  loss: jax.Array  # [B] weighted reconstruction + skew loss (not yet divided by num_fields)
  nats: jax.Array  # [B] unweighted string cross-entropy, nats, over characters + END tokens
  chars: jax.Array  # [B] number of string characters + END tokens
  sample: Any  # the decoder's own output in codec layout
  fields: dict  # field name -> [B] reconstruction loss of that field
  nll: jax.Array  # [B] unweighted -log p(x | z), nats: string CE + float Gaussian NLL (raw
  # units) + Bernoulli presence/stop terms; no skew, no field weights
  field_nll: dict = struct.field(default_factory=dict)  # field name (as in `fields`) -> [B]
  # its part of `nll` (conditional generation scores the fixed fields with it)


def _zeros_like_batch(emb):
  return jnp.zeros(emb.shape[:1], emb.dtype)


def _scale(out: DecodeOut, w: jax.Array) -> DecodeOut:
  return out.replace(
    loss=out.loss * w,
    nats=out.nats * w,
    chars=out.chars * w,
    fields={k: v * w for k, v in out.fields.items()},
    nll=out.nll * w,
    field_nll={k: v * w for k, v in out.field_nll.items()},
  )


def _skew(e: jax.Array, target_emb: jax.Array, weight: float) -> jax.Array:
  """Skew loss (Sec 2.3): MSE between decoder-emitted and child-encoder embedding, x weight."""
  return weight * jnp.mean((e - target_emb) ** 2, -1)


def _reshape_lead(tree, shape):
  return jax.tree.map(lambda a: a.reshape(shape + a.shape[1:]), tree)


def _flatten_lead(tree, n):
  return jax.tree.map(lambda a: a.reshape((a.shape[0] * n,) + a.shape[2:]), tree)


def string_groups(steps: list[int], max_waste: float = GROUP_WASTE) -> list[list[int]]:
  """Groups string fields (by their scan lengths `steps`) into batched scans.

  Fields are sorted by length; a field joins the current group while the group's padded work
  (members x longest) stays within `max_waste` x the unpadded sum. Returns index lists.
  """
  order = sorted(range(len(steps)), key=lambda i: steps[i])
  groups: list[list[int]] = []
  for i in order:
    if groups:
      g = groups[-1] + [i]
      if len(g) * steps[i] <= max_waste * sum(steps[j] for j in g):
        groups[-1] = g
        continue
    groups.append([i])
  return groups


def _string_out(node: sc.StringNode, emb: jax.Array, loss, nats, sample, target) -> DecodeOut:
  """A string field's DecodeOut from the StringLiteral's decode results."""
  if target is None:
    z = _zeros_like_batch(emb)
    return DecodeOut(z, z, z, sample, {}, z)
  chars = (target["length"] + 1).astype(emb.dtype)
  name = sc.path_name(node.path)
  return DecodeOut(loss, nats, chars, sample, {name: loss}, nats, {name: nats})


def _pad_time(a: jax.Array, steps: int) -> jax.Array:
  """[B, T] -> [B, steps] padded with END ids."""
  return jnp.pad(a, ((0, 0), (0, steps - a.shape[1])))


def _cut_sample(sample: dict, steps: int) -> dict:
  """A sample decoded for more steps than a field's `steps`: cut as `normalize_chars` would
  have (no END within `steps` -> max_len = steps - 1 characters)."""
  length = jnp.minimum(sample["length"], steps - 1)
  chars = jnp.where(jnp.arange(steps) < length[:, None], sample["chars"][:, :steps], END_ID)
  return {"chars": chars.astype(sample["chars"].dtype), "length": length}


class StringField(nn.Module):
  """A string field: a view on the shared StringLiteral, or its own one if `literal` is None."""

  node: sc.StringNode
  literal: StringLiteral | None
  cfg: ModelConfig

  def setup(self):
    if self.literal is None:
      self.own = StringLiteral(
        self.cfg.vocab_size, self.cfg.latent_dim, self.cfg.char_dim, self.cfg.gru_remat
      )

  def _lit(self) -> StringLiteral:
    return self.own if self.literal is None else self.literal

  def encode(self, data, mask, train):
    del mask, train
    return self._lit().encode(data["chars"], data["length"])

  def decode(self, emb, target, enc, ctx: DecodeContext) -> DecodeOut:
    del enc
    loss, nats, sample = self._lit().decode(
      emb, target, self.cfg.steps(self.node.path), ctx.p_string, ctx.greedy
    )
    return _string_out(self.node, emb, loss, nats, sample, target)


class CategoryField(nn.Module):
  """A category field (not in the paper): the value id's embedding, then dense + CELU, encodes;
  one dense softmax over the ids decodes. Loss: cross-entropy in nats with weight 1, like a
  string field (it adds no characters to BPC). Sampling (Gumbel-max) and greedy decoding never
  emit the outside-value id, which is no training target (the loss still normalises over it)."""

  node: sc.CategoryNode
  cfg: ModelConfig

  def setup(self):
    n, h = self.cfg.values(self.node.path), self.cfg.latent_dim
    self.table = nn.Embed(n, h, name="value_embedding")
    self.enc_out = layers.CeluDense(h)
    self.logits = layers.Dense(n)

  def encode(self, data, mask, train):
    del mask, train
    return {"emb": self.enc_out(self.table(data))}

  def decode(self, emb, target, enc, ctx: DecodeContext) -> DecodeOut:
    del enc
    logits = self.logits(emb)
    allowed = logits.at[:, OOV_VALUE].set(-jnp.inf)
    if ctx.greedy:
      sample = jnp.argmax(allowed, -1)
    else:
      sample = jax.random.categorical(self.make_rng("sample"), allowed)
    sample = sample.astype(jnp.int32)
    z = _zeros_like_batch(emb)
    if target is None:
      return DecodeOut(z, z, z, sample, {}, z)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, target)
    name = sc.path_name(self.node.path)
    return DecodeOut(ce, z, z, sample, {name: ce}, ce, {name: ce})


class FloatsField(nn.Module):
  node: sc.FloatsNode
  cfg: ModelConfig

  def setup(self):
    self.st = ScalarTuple(
      len(self.node.names), self.cfg.latent_dim, self.cfg.stats_decay, self.cfg.whiten_eps
    )

  def encode(self, data, mask, train):
    return self.st.encode(data, mask, train)

  def decode(self, emb, target, enc, ctx: DecodeContext) -> DecodeOut:
    del enc, ctx
    loss, nll, pred = self.st.decode(emb, target)
    z = _zeros_like_batch(emb)
    if target is None:
      return DecodeOut(z, z, z, pred, {}, z)
    name = floats_name(self.node)
    return DecodeOut(loss, z, z, pred, {name: loss}, nll, {name: nll})


def floats_name(node: sc.FloatsNode) -> str:
  """The name of a record's float fields in `DecodeOut.fields`, e.g. '(lat,long)'."""
  prefix = sc.path_name(node.path[:-1])
  return ("" if prefix == "<root>" else prefix + ".") + "(" + ",".join(node.names) + ")"


class OptionalField(nn.Module):
  """Optional[X]: emb = CELU(dense([present * emb_X, present])); decoder predicts a presence
  logit from the embedding and decodes X from the same embedding. Loss = BCE(present) +
  present * loss_X (the field keeps X's weight; the presence bit adds its BCE on top)."""

  node: sc.OptionalNode
  literal: Any
  cfg: ModelConfig

  def setup(self):
    self.child = build(self.node.child, self.literal, self.cfg)
    self.enc_out = layers.CeluDense(self.cfg.latent_dim)
    self.presence = layers.Dense(1)

  def encode(self, data, mask, train):
    present = data["present"]
    m = present if mask is None else mask * present
    child = self.child.encode(data["value"], m, train)
    emb = self.enc_out(jnp.concatenate([child["emb"] * present[:, None], present[:, None]], -1))
    return {"emb": emb, "child": child}

  def decode(self, emb, target, enc, ctx: DecodeContext) -> DecodeOut:
    logit = self.presence(emb)[:, 0]
    out = self.child.decode(
      emb, None if target is None else target["value"], None if enc is None else enc["child"], ctx
    )
    if target is None:
      present = (
        logit > 0
        if ctx.greedy
        else jax.random.bernoulli(self.make_rng("sample"), jax.nn.sigmoid(logit))
      )
      return out.replace(sample={"present": present.astype(emb.dtype), "value": out.sample})
    p = target["present"]
    bce = optax.sigmoid_binary_cross_entropy(logit, p)
    out = _scale(out, p)
    name = sc.path_name(self.node.path)
    return out.replace(
      loss=out.loss + bce,
      fields={**out.fields, name + "?": bce},
      nll=out.nll + bce,
      field_nll={**out.field_nll, name + "?": bce},
      sample={"present": (logit > 0).astype(emb.dtype), "value": out.sample},
    )


class _ListDecStep(nn.Module):
  features: int

  @nn.compact
  def __call__(self, h, inputs):
    teacher_emb, teacher = inputs  # [B, H], [B] bool
    e = layers.CeluDense(self.features, name="emit")(h)
    stop = layers.Dense(1, name="stop")(h)[:, 0]
    h = GRUCell(self.features, name="cell")(h, jnp.where(teacher[:, None], teacher_emb, e))
    return h, (e, stop)


class _ListEncStep(nn.Module):
  features: int

  @nn.compact
  def __call__(self, h, inputs):
    x, active = inputs
    h_new = GRUCell(self.features, name="cell")(h, x)
    return jnp.where(active[:, None], h_new, h), None


_scan_kw = dict(variable_broadcast="params", split_rngs={"params": False}, in_axes=0, out_axes=0)


class ListField(nn.Module):
  """list[X] (not in the paper): a GRU over item embeddings (masked by the count) encodes; the
  decoder is autoregressive like the Tuple decoder with ONE shared cell and emit layer, and a
  stop logit per step (item i exists iff no stop before i). Scheduled sampling uses the Tuple
  level's probability. Loss = stop cross-entropy over steps 0..count / (count + 1) + the mean over
  present items of (item loss + skew loss)."""

  node: sc.ListNode
  literal: Any
  cfg: ModelConfig

  def setup(self):
    self.child = build(self.node.child, self.literal, self.cfg)
    h = self.cfg.latent_dim
    self.enc_scan = nn.scan(_ListEncStep, **_scan_kw)(h)
    self.enc_out = layers.CeluDense(h)
    self.dec_h0 = layers.CeluDense(h)
    self.dec_scan = nn.scan(_ListDecStep, **_scan_kw)(h)

  def encode(self, data, mask, train):
    count = data["count"]
    b, n = count.shape[0], jax.tree.leaves(data["items"])[0].shape[1]
    active = (jnp.arange(n)[None, :] < count[:, None]).astype(jnp.float32)  # [B, N]
    item_mask = active if mask is None else active * mask[:, None]
    child = self.child.encode(_flatten_lead(data["items"], n), item_mask.reshape(-1), train)
    x = child["emb"].reshape(b, n, -1)
    h0 = jnp.zeros((b, self.cfg.latent_dim), x.dtype)
    h, _ = self.enc_scan(h0, (jnp.swapaxes(x, 0, 1), active.T > 0))
    return {"emb": self.enc_out(h), "child": child}

  def decode(self, emb, target, enc, ctx: DecodeContext) -> DecodeOut:
    b = emb.shape[0]
    n = self.cfg.items(self.node.path)
    if enc is None:
      teacher_emb = jnp.zeros((n, b, self.cfg.latent_dim), emb.dtype)
      teacher = jnp.zeros((n, b), bool)
    else:
      teacher_emb = jnp.swapaxes(enc["child"]["emb"].reshape(b, n, -1), 0, 1)
      teacher = jax.random.uniform(self.make_rng("sample"), (n, b)) < ctx.p_tuple
    _, (e, stop) = self.dec_scan(self.dec_h0(emb), (teacher_emb, teacher))  # [N,B,H], [N,B]
    e_flat = jnp.swapaxes(e, 0, 1).reshape(b * n, -1)
    out = self.child.decode(
      e_flat,
      None if target is None else _flatten_lead(target["items"], n),
      None if enc is None else enc["child"],
      ctx,
    )
    items = _reshape_lead(out.sample, (b, n))
    if target is None:
      stop_now = (
        stop > 0
        if ctx.greedy
        else jax.random.bernoulli(self.make_rng("sample"), jax.nn.sigmoid(stop))
      )
      stop_now = jnp.concatenate([stop_now, jnp.ones((1, b), bool)], 0)
      count = jnp.argmax(stop_now, 0).astype(jnp.int32)
      z = _zeros_like_batch(emb)
      return DecodeOut(z, z, z, {"count": count, "items": items}, {}, z)
    count = target["count"]
    steps = jnp.arange(n)[:, None]
    stop_t = (steps == count[None, :]).astype(emb.dtype)
    stop_ce = optax.sigmoid_binary_cross_entropy(stop, stop_t)
    stop_loss = jnp.sum(jnp.where(steps <= count[None, :], stop_ce, 0.0), 0) / (count + 1)
    present = (steps < count[None, :]).T.astype(emb.dtype)  # [B, N]
    skew = _skew(e_flat, enc["child"]["emb"], self.node.child.weight).reshape(b, n)
    per_item = out.loss.reshape(b, n) + skew
    denom = jnp.maximum(count, 1).astype(emb.dtype)
    item_loss = jnp.sum(present * per_item, 1) / denom
    red = lambda v: jnp.sum(present * v.reshape(b, n), 1)
    name = sc.path_name(self.node.path)
    fields = {k: red(v) / denom for k, v in out.fields.items()}
    fields[name + "#"] = stop_loss
    stop_nll = jnp.sum(jnp.where(steps <= count[None, :], stop_ce, 0.0), 0)
    field_nll = {k: red(v) for k, v in out.field_nll.items()}
    field_nll[name + "#"] = stop_nll
    return DecodeOut(
      stop_loss + item_loss,
      red(out.nats),
      red(out.chars),
      {"count": count, "items": items},
      fields,
      stop_nll + red(out.nll),
      field_nll,
    )


class Tuple(nn.Module):
  """The Tuple module (App B.3).

  Encoder: bidirectional GRU over the child embeddings with a DISTINCT cell per element and
  direction, a shared trainable initial state, dense(2H -> H) + CELU on the final states.
  Decoder: h0 = CELU(dense(emb)); element k: e_k = CELU(emit_k(h_{k-1})),
  h_k = GRU_k(in_k, h_{k-1}), in_k = e_k (sampling) or the child encoder's embedding (teacher),
  mixed per example and element with ground-truth probability p_tuple. Child decoders decode
  e_k. Skew loss_k = w_k * MSE(e_k, child encoder embedding), without stop-gradients (BUILD_NOTES).
  The state after the last element is never used, so there are K - 1 decoder cells.
  With ``cfg.string_scan == 'grouped'`` the direct string children run in shared, padded scans
  of the StringLiteral (`string_groups`): child decoders never feed back into the Tuple decoder,
  so all e_k are known before any string is decoded. Same numbers as one scan per field (up to
  float rounding; sampling draws other random numbers).
  """

  node: sc.RecordNode
  literal: Any
  cfg: ModelConfig

  def setup(self):
    h, k = self.cfg.latent_dim, len(self.node.children)
    self.kids = [build(c, self.literal, self.cfg) for c in self.node.children]
    self.fwd = [GRUCell(h) for _ in range(k)]
    self.bwd = [GRUCell(h) for _ in range(k)]
    self.h_init = self.param("h_init", nn.initializers.zeros, (h,))
    self.enc_out = layers.CeluDense(h)
    self.dec_h0 = layers.CeluDense(h)
    self.emit = [layers.CeluDense(h) for _ in range(k)]
    self.dec_cells = [GRUCell(h) for _ in range(k - 1)]

  def _groups(self) -> list[list[int]]:
    """Groups (of >= 2) of direct string children that share a scan (static)."""
    if self.cfg.string_scan not in STRING_SCANS:
      raise ValueError(f"unknown string_scan {self.cfg.string_scan!r}: one of {STRING_SCANS}")
    if self.cfg.string_scan == "field" or self.literal is None:
      return []
    idx = [k for k, c in enumerate(self.node.children) if isinstance(c, sc.StringNode)]
    if self.cfg.string_scan == "packed":
      return [idx] if len(idx) > 1 else []
    groups = string_groups([self.cfg.steps(self.node.children[k].path) for k in idx])
    return [[idx[j] for j in g] for g in groups if len(g) > 1]

  def _steps(self, k: int) -> int:
    return self.cfg.steps(self.node.children[k].path)

  def encode(self, data, mask, train):
    kids: list[Any] = [None] * len(self.kids)
    for g in self._groups():
      field = [data[self.node.children[k].key] for k in g]
      if self.cfg.string_scan == "packed":
        packed = self.literal.encode_packed(
          [f["chars"] for f in field], [f["length"] for f in field]
        )
        for k, e in zip(g, packed):
          kids[k] = e
        continue
      steps = max(self._steps(k) for k in g)
      emb = self.literal.encode(
        jnp.concatenate([_pad_time(f["chars"], steps) for f in field], 0),
        jnp.concatenate([f["length"] for f in field], 0),
      )["emb"]
      for k, e in zip(g, jnp.split(emb, len(g), 0)):
        kids[k] = {"emb": e}
    kids = [
      kids[k] if kids[k] is not None else kid.encode(data[c.key], mask, train)
      for k, (kid, c) in enumerate(zip(self.kids, self.node.children))
    ]
    embs = [e["emb"] for e in kids]
    h0 = jnp.broadcast_to(self.h_init, embs[0].shape)
    hf, hb = h0, h0
    for k in range(len(embs)):
      hf = self.fwd[k](hf, embs[k])
      hb = self.bwd[-1 - k](hb, embs[-1 - k])
    return {"emb": self.enc_out(jnp.concatenate([hf, hb], -1)), "children": kids}

  def decode(self, emb, target, enc, ctx: DecodeContext) -> DecodeOut:
    b = emb.shape[0]
    h = self.dec_h0(emb)
    k_total = len(self.kids)
    if enc is not None:
      coins = jax.random.uniform(self.make_rng("sample"), (k_total, b)) < ctx.p_tuple
    groups = self._groups()
    grouped = {k for g in groups for k in g}
    es, outs = [], [None] * k_total
    for k, (kid, c) in enumerate(zip(self.kids, self.node.children)):
      e = self.emit[k](h)
      es.append(e)
      child_enc = None if enc is None else enc["children"][k]
      if k + 1 < k_total:
        inp = e if enc is None else jnp.where(coins[k][:, None], child_enc["emb"], e)
        h = self.dec_cells[k](h, inp)
      if k not in grouped:
        outs[k] = kid.decode(e, None if target is None else target[c.key], child_enc, ctx)
    for g in groups:
      self._decode_group(g, es, target, ctx, outs)
    z = _zeros_like_batch(emb)
    loss, nats, chars, samples, fields, nll, field_nll = z, z, z, {}, {}, z, {}
    for k, (out, c) in enumerate(zip(outs, self.node.children)):
      samples[c.key] = out.sample
      if enc is not None:
        loss = loss + out.loss + _skew(es[k], enc["children"][k]["emb"], c.weight)
        nats, chars, nll = nats + out.nats, chars + out.chars, nll + out.nll
        fields.update(out.fields)
        field_nll.update(out.field_nll)
    return DecodeOut(loss, nats, chars, samples, fields, nll, field_nll)

  def _decode_group(self, g: list[int], es, target, ctx: DecodeContext, outs: list) -> None:
    """Decodes the string children `g` in one shared scan; fills `outs[k]` for k in g."""
    keys = [self.node.children[k].key for k in g]
    if self.cfg.string_scan == "packed":
      tgts = None if target is None else [target[key] for key in keys]
      decoded = self.literal.decode_packed(
        [es[k] for k in g], tgts, [self._steps(k) for k in g], ctx.p_string, ctx.greedy
      )
      for j, (k, (loss_k, nats_k, sample_k)) in enumerate(zip(g, decoded)):
        outs[k] = _string_out(
          self.node.children[k], es[k], loss_k, nats_k, sample_k, None if tgts is None else tgts[j]
        )
      return
    steps = max(self._steps(k) for k in g)
    tgt = (
      None
      if target is None
      else {
        "chars": jnp.concatenate([_pad_time(target[key]["chars"], steps) for key in keys], 0),
        "length": jnp.concatenate([target[key]["length"] for key in keys], 0),
      }
    )
    loss, nats, sample = self.literal.decode(
      jnp.concatenate([es[k] for k in g], 0), tgt, steps, ctx.p_string, ctx.greedy
    )
    split = lambda a: [None] * len(g) if a is None else jnp.split(a, len(g), 0)
    parts = zip(g, keys, split(loss), split(nats), split(sample["chars"]), split(sample["length"]))
    for k, key, loss_k, nats_k, chars_k, length_k in parts:
      outs[k] = _string_out(
        self.node.children[k],
        es[k],
        loss_k,
        nats_k,
        _cut_sample({"chars": chars_k, "length": length_k}, self._steps(k)),
        None if target is None else target[key],
      )


class Single(nn.Module):
  """A record of one field IS that field: no Tuple around it. (App F's comma-separated text
  model is just the StringLiteral and the sigma-network.)"""

  node: sc.RecordNode
  literal: Any
  cfg: ModelConfig

  def setup(self):
    self.kid = build(self.node.children[0], self.literal, self.cfg)

  def encode(self, data, mask, train):
    enc = self.kid.encode(data[self.node.children[0].key], mask, train)
    return {"emb": enc["emb"], "children": [enc]}

  def decode(self, emb, target, enc, ctx: DecodeContext) -> DecodeOut:
    key = self.node.children[0].key
    out = self.kid.decode(
      emb, None if target is None else target[key], None if enc is None else enc["children"][0], ctx
    )
    return out.replace(sample={key: out.sample})


class SimpleTuple(nn.Module):
  """Pass-through baseline (App G): encoder = dense + CELU on the concatenated child
  embeddings; decoder passes the embedding unchanged to every child; no skew loss. Its string
  fields get separate StringLiterals (`build` is called with literal=None)."""

  node: sc.RecordNode
  literal: Any
  cfg: ModelConfig

  def setup(self):
    self.kids = [build(c, None, self.cfg) for c in self.node.children]
    self.enc_out = layers.CeluDense(self.cfg.latent_dim)

  def encode(self, data, mask, train):
    kids = [kid.encode(data[c.key], mask, train) for kid, c in zip(self.kids, self.node.children)]
    return {"emb": self.enc_out(jnp.concatenate([e["emb"] for e in kids], -1)), "children": kids}

  def decode(self, emb, target, enc, ctx: DecodeContext) -> DecodeOut:
    z = _zeros_like_batch(emb)
    loss, nats, chars, samples, fields, nll, field_nll = z, z, z, {}, {}, z, {}
    for k, (kid, c) in enumerate(zip(self.kids, self.node.children)):
      out = kid.decode(
        emb,
        None if target is None else target[c.key],
        None if enc is None else enc["children"][k],
        ctx,
      )
      samples[c.key] = out.sample
      loss, nats, chars = loss + out.loss, nats + out.nats, chars + out.chars
      nll = nll + out.nll
      fields.update(out.fields)
      field_nll.update(out.field_nll)
    return DecodeOut(loss, nats, chars, samples, fields, nll, field_nll)


def build(node: sc.Node, literal: StringLiteral | None, cfg: ModelConfig) -> nn.Module:
  """Module for a schema node. `literal` is the shared StringLiteral (None: a new one)."""
  if isinstance(node, sc.StringNode):
    return StringField(node, literal, cfg)
  if isinstance(node, sc.CategoryNode):
    return CategoryField(node, cfg)
  if isinstance(node, sc.FloatsNode):
    return FloatsField(node, cfg)
  if isinstance(node, sc.OptionalNode):
    return OptionalField(node, literal, cfg)
  if isinstance(node, sc.ListNode):
    return ListField(node, literal, cfg)
  if len(node.children) == 1:
    return Single(node, literal, cfg)
  if cfg.tuple_type == "simple":
    return SimpleTuple(node, literal, cfg)
  if cfg.tuple_type != "tuple":
    raise ValueError(f"unknown tuple_type {cfg.tuple_type!r}; expected 'tuple' or 'simple'")
  return Tuple(node, literal, cfg)
