"""The LSTM text VAE (models/text.py) against a float64 numpy LSTM written as an explicit loop
over time; padding, dropout, sampling format and the parameter partition."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alala_jax.models import base
from alala_jax.models.text import (
  BOS,
  EOS,
  PAD,
  TextVAE,
  TextVAEConfig,
  finish_sequences,
  target_mask,
)

V, D, E, H = 13, 3, 5, 7
T = 8


def _model(**kw):
  cfg = dict(vocab_size=V, latent_dim=D, embed_dim=E, enc_hidden=H, dec_hidden=H + 1)
  cfg.update(kw)
  return TextVAE(TextVAEConfig(**cfg), max_tokens=T)


MODEL = _model()


def _batch():
  words = [[4, 5, 6], [7, 8, 9, 10, 11, 12], [4], [12, 11]]
  tokens = np.zeros((len(words), T), np.int32)
  for i, w in enumerate(words):
    tokens[i, : len(w) + 2] = [BOS] + w + [EOS]
  return {"tokens": tokens, "length": np.array([len(w) + 1 for w in words], np.int32)}


@functools.cache
def _variables(scale=30.0):
  """Parameters scaled up from the U(-0.01, 0.01) init so that every term matters."""
  v = MODEL.init(jax.random.key(0), _batch())
  return jax.tree.map(lambda a: a * scale, v)


def _sig(x):
  return 1 / (1 + np.exp(-x))


def _lstm_np(p, xs, c, h):
  """Explicit loop: xs [T, B, I] -> hs [T, B, H] (PyTorch gate order i, f, g, o)."""
  hs = []
  for x in xs:
    g = x @ p["x_kernel"] + h @ p["h_kernel"] + p["bias"]
    i, f, gg, o = np.split(g, 4, -1)
    c = _sig(f) * c + _sig(i) * np.tanh(gg)
    h = _sig(o) * np.tanh(c)
    hs.append(h)
  return np.stack(hs)


def _np(tree):
  return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def test_encoder_matches_a_numpy_loop_up_to_each_sentences_end():
  v, x = _variables(), _batch()
  p = _np(v["params"])
  q, aux = MODEL.encode(v, x)
  assert aux is None
  enc = p["encoder"]
  emb = enc["embed"]["embedding"][x["tokens"]]  # [B, T, E]
  for b in range(len(x["length"])):
    n = x["length"][b] + 1  # <s> w.. </s>
    z0 = np.zeros((1, H))
    hs = _lstm_np(enc["lstm"]["cell"], emb[b : b + 1, :n].transpose(1, 0, 2), z0, z0)
    h = hs[-1]
    np.testing.assert_allclose(q.mean[b], (h @ enc["mean"]["kernel"])[0], rtol=1e-4, atol=1e-5)
    logvar = (h @ p["encoder_scale"]["kernel"])[0]
    np.testing.assert_allclose(q.scale[b], np.exp(0.5 * logvar), rtol=1e-4, atol=1e-5)


def test_padding_does_not_change_the_posterior():
  v, x = _variables(), _batch()
  q, _ = MODEL.encode(v, x)
  garbage = x["tokens"].copy()
  pad = np.arange(T)[None, :] > x["length"][:, None]
  garbage[pad] = 11
  q2, _ = MODEL.encode(v, {"tokens": garbage, "length": x["length"]})
  chex.assert_trees_all_close(q, q2, rtol=1e-6)


@pytest.mark.parametrize("z_in_output", [False, True])
def test_decoder_nll_matches_a_numpy_loop(z_in_output):
  model = _model(z_in_output=z_in_output, out_bias=z_in_output)
  x = _batch()
  v = jax.tree.map(lambda a: 30 * a, model.init(jax.random.key(1), x))
  z = np.asarray(jax.random.normal(jax.random.key(2), (4, D)))
  rec = model.recon(v, x, jnp.asarray(z, jnp.float32), None, key=None)
  p = _np(v["params"])["decoder"]
  c0 = z @ p["z_to_c0"]["kernel"]
  inp = p["embed"]["embedding"][x["tokens"][:, :-1]]  # [B, T-1, E]
  inp = np.concatenate([inp, np.broadcast_to(z[:, None], (4, T - 1, D))], -1)
  hs = _lstm_np(p["lstm"]["cell"], inp.transpose(1, 0, 2), c0, np.tanh(c0)).transpose(1, 0, 2)
  if z_in_output:
    hs = np.concatenate([hs, np.broadcast_to(z[:, None], (4, T - 1, D))], -1)
  logits = hs @ p["out"]["kernel"] + (p["out"]["bias"] if z_in_output else 0)
  logp = logits - np.log(np.sum(np.exp(logits), -1, keepdims=True))
  want = []
  for b in range(4):
    n = x["length"][b]
    want.append(-sum(logp[b, t, x["tokens"][b, t + 1]] for t in range(n)))
  np.testing.assert_allclose(rec.nll, want, rtol=1e-4)
  chex.assert_trees_all_equal(rec.loss, rec.nll)
  np.testing.assert_array_equal(model.units(rec), x["length"])


def test_latent_dim_0_is_the_lstm_language_model():
  """latent_dim 0: no encoder and no z parameters; the decoder starts from a zero state and its
  NLL matches a numpy LSTM loop; the posterior is empty, so KL and the likelihood bounds are
  the exact log-likelihood."""
  model = _model(latent_dim=0)
  x = _batch()
  v = jax.tree.map(lambda a: 30 * a, model.init(jax.random.key(1), x))
  assert set(v["params"]) == {"decoder"} and "z_to_c0" not in v["params"]["decoder"]
  q, _ = model.encode(v, x)
  chex.assert_shape([q.mean, q.scale], (4, 0))
  z = model.reparameterize(v, q, jax.random.key(0))
  rec = model.recon(v, x, z, None, key=None)
  np.testing.assert_array_equal(model.kl(q, z), np.zeros(4))
  p = _np(v["params"])["decoder"]
  inp = p["embed"]["embedding"][x["tokens"][:, :-1]].transpose(1, 0, 2)
  zeros = np.zeros((4, H + 1))
  logits = _lstm_np(p["lstm"]["cell"], inp, zeros, zeros).transpose(1, 0, 2) @ p["out"]["kernel"]
  logp = logits - np.log(np.sum(np.exp(logits), -1, keepdims=True))
  want = [
    -sum(logp[b, t, x["tokens"][b, t + 1]] for t in range(n)) for b, n in enumerate(x["length"])
  ]
  np.testing.assert_allclose(rec.nll, want, rtol=1e-4)
  assert model.level_collections == {}


def test_dropout_only_in_training():
  v, x = _variables(), _batch()
  z = jnp.ones((4, D))
  k = jax.random.key(5)
  a = MODEL.recon(v, x, z, None, key=k, train=False).nll
  b = MODEL.recon(v, x, z, None, key=k, train=True).nll
  c = MODEL.recon(v, x, z, None, key=jax.random.key(6), train=True).nll
  chex.assert_trees_all_close(a, MODEL.recon(v, x, z, None, key=None).nll)
  assert not np.allclose(a, b) and not np.allclose(b, c)
  no_drop = _model(dec_dropout_in=0.0, dec_dropout_out=0.0)
  chex.assert_trees_all_close(
    no_drop.recon(v, x, z, None, key=k, train=True).nll, a, rtol=1e-6
  )  # same parameters, no dropout: training equals evaluation


def test_samples_are_well_formed_and_greedy_is_deterministic():
  v = _variables()
  z = jax.random.normal(jax.random.key(3), (64, D))
  out = jax.jit(MODEL.decode, static_argnames="greedy")(v, z, jax.random.key(4))
  tokens, length = np.asarray(out["tokens"]), np.asarray(out["length"])
  chex.assert_shape(tokens, (64, T))
  assert np.all(tokens[:, 0] == BOS)
  for row, n in zip(tokens, length):
    assert 1 <= n <= T - 1
    assert row[n] == EOS and np.all(row[n + 1 :] == PAD)
    assert np.all(row[1:n] > EOS)  # no <pad>, <s>, </s> inside a sentence
  g1 = MODEL.decode(v, z, jax.random.key(4), greedy=True)
  g2 = MODEL.decode(v, z, jax.random.key(9), greedy=True)
  chex.assert_trees_all_equal(g1, g2)
  # the first sampled word's frequencies follow softmax(logits at <s>)
  first = tokens[:, 1]
  assert len(np.unique(first)) > 1


def test_finish_sequences_cuts_at_the_first_end_token():
  words = jnp.array([[5, 2, 6, 2], [5, 6, 7, 8], [2, 5, 5, 5]])
  out = finish_sequences(words)
  np.testing.assert_array_equal(out["tokens"], [[1, 5, 2, 0, 0], [1, 5, 6, 7, 2], [1, 2, 0, 0, 0]])
  np.testing.assert_array_equal(out["length"], [2, 4, 1])
  np.testing.assert_array_equal(target_mask(out["tokens"], out["length"]).sum(1), out["length"])


def test_partition_and_bad_input():
  v = _variables()
  labels = MODEL.partition(v["params"])
  assert set(jax.tree.leaves(labels["encoder"])) == {base.ENCODER}
  assert set(jax.tree.leaves(labels["encoder_scale"])) == {base.ENCODER}
  assert set(jax.tree.leaves(labels["decoder"])) == {base.DECODER}
  with pytest.raises(ValueError, match="tokens"):
    MODEL.encode(v, np.zeros((2, T), np.int32))
  with pytest.raises(ValueError, match="vocab_size"):
    TextVAEConfig(vocab_size=2)
  with pytest.raises(ValueError, match="dropout"):
    TextVAEConfig(vocab_size=10, dec_dropout_in=1.0)


def test_init_is_uniform_in_the_papers_ranges():
  v = MODEL.init(jax.random.key(0), _batch())["params"]
  emb = np.asarray(v["decoder"]["embed"]["embedding"])
  kern = np.asarray(v["decoder"]["lstm"]["cell"]["h_kernel"])
  assert 0.05 < np.abs(emb).max() <= 0.1 and 0.005 < np.abs(kern).max() <= 0.01
