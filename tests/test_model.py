"""Schema -> model: shapes, the loss structure (field weights, skew), generation layout."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alala_jax import schema as sc
from alala_jax.data import codec, synthetic
from alala_jax.nn import tree, vae
from tests.conftest import Person, Tagged

B, D = 8, 16


def _setup(cls, records, tuple_type="tuple"):
  root = sc.parse_schema(cls)
  spec = codec.build_spec(root, records)
  arrays, _ = codec.encode(root, spec, records[:B])
  cfg = tree.ModelConfig(
    vocab_size=spec.vocab_size,
    max_len=tuple(sorted(spec.max_len.items())),
    max_items=tuple(sorted(spec.max_items.items())),
    latent_dim=D,
    char_dim=4,
    tuple_type=tuple_type,
  )
  model = vae.RecordVAE(root, cfg)
  k = jax.random.key(0)
  variables = jax.jit(lambda a: model.init({"params": k, "latent": k, "sample": k}, a, 1.0, 1.0))(
    arrays
  )
  return root, spec, arrays, model, variables


def _apply(model, variables, arrays, p_tuple, p_string, seed=0):
  k = jax.random.key(seed)
  out, _ = model.apply(
    variables, arrays, p_tuple, p_string, rngs={"latent": k, "sample": k}, mutable=["batch_stats"]
  )
  return out


@pytest.fixture(scope="module")
def address():
  return _setup(sc.Address, synthetic.synthetic_addresses(64, seed=2))


def test_address_shapes_and_generation_layout(address):
  root, spec, arrays, model, variables = address
  out = jax.jit(lambda v, a: _apply(model, v, a, 0.5, 1.0))(variables, arrays)
  for x in (out.mu, out.sigma, out.z):
    chex.assert_shape(x, (B, D))
  chex.assert_shape([out.kl, out.dec.loss, out.dec.nats, out.dec.chars], [(B,)] * 4)
  chex.assert_tree_all_finite(out)
  assert set(out.dec.fields) == {
    "number",
    "street",
    "unit",
    "city",
    "district",
    "region",
    "postcode",
    "(lat,long)",
  }
  sample = model.apply(
    variables,
    B,
    rngs={"latent": jax.random.key(1), "sample": jax.random.key(2)},
    method=vae.RecordVAE.generate,
  )
  chex.assert_trees_all_equal_shapes(sample, arrays)
  for c in root.children[:-1]:  # untrained, yet the OOV id is never sampled
    assert not np.any(np.asarray(sample[c.key]["chars"]) == codec.OOV_ID), c.key
  recs = codec.decode(root, spec, jax.device_get(sample))
  assert len(recs) == B and all(isinstance(r, sc.Address) for r in recs)


def test_parameters_follow_the_paper(address):
  root, spec, arrays, model, variables = address
  p = variables["params"]
  body = p["body"]
  # one shared StringLiteral; 8 x 2 encoder cells; 8 emit layers; K - 1 decoder cells
  assert "literal" in p and not any("own" in k for k in body)
  assert sum(k.startswith("fwd_") for k in body) == 8
  assert sum(k.startswith("bwd_") for k in body) == 8
  assert sum(k.startswith("emit_") for k in body) == 8
  assert sum(k.startswith("dec_cells_") for k in body) == 7
  chex.assert_shape(p["literal"]["char_embedding"], (spec.vocab_size, 4))
  emb = np.asarray(p["literal"]["char_embedding"])
  assert emb.min() >= 0 and emb.max() <= 1  # U(0, 1)
  chex.assert_shape(body["h_init"], (D,))
  chex.assert_shape(body["enc_out"]["Dense_0"]["kernel"], (2 * D, D))


def test_loss_is_fields_plus_skew_and_skew_reaches_encoder_and_decoder(address):
  root, spec, arrays, model, variables = address

  def skew(params):
    out = _apply(model, {**variables, "params": params}, arrays, 1.0, 1.0)
    return jnp.mean(out.dec.loss - sum(out.dec.fields.values()))

  s, g = jax.jit(jax.value_and_grad(skew))(variables["params"])
  assert float(s) > 0  # the skew terms are present
  norm = lambda t: float(optax_global_norm(t))
  assert norm(g["literal"]["enc_out"]) > 0  # child encoder side
  assert norm(g["body"]["emit_0"]) > 0  # Tuple decoder side
  assert norm(g["body"]["kids_7"]["st"]["enc"]) > 0  # ScalarTuple encoder


def optax_global_norm(t):
  return jnp.sqrt(sum(jnp.sum(x**2) for x in jax.tree.leaves(t)))


def test_teacher_forcing_is_deterministic_sampling_is_not(address):
  root, spec, arrays, model, variables = address
  f = jax.jit(
    lambda v, a, pt, ps, seed: _apply(model, v, a, pt, ps, seed).dec.fields["street"],
    static_argnums=4,
  )
  # the latent noise is part of both; fix z by making sigma's effect identical (same seed 'latent')
  tf = [f(variables, arrays, 1.0, 1.0, s) for s in (0, 0)]
  chex.assert_trees_all_close(tf[0], tf[1])
  a, b = f(variables, arrays, 0.0, 0.0, 0), f(variables, arrays, 0.0, 0.0, 1)
  assert not np.allclose(a, b)


def test_simple_tuple_has_separate_strings_and_no_skew():
  root, spec, arrays, model, variables = _setup(
    sc.Address, synthetic.synthetic_addresses(64, seed=2), tuple_type="simple"
  )
  assert "literal" not in variables["params"]
  own = [k for k, v in variables["params"]["body"].items() if "own" in v]
  assert len(own) == 7
  out = jax.jit(lambda v, a: _apply(model, v, a, 0.0, 1.0))(variables, arrays)
  chex.assert_trees_all_close(out.dec.loss, sum(out.dec.fields.values()), rtol=1e-6)


def test_nested_list_optional_model_trains_and_generates():
  recs = [
    Tagged(
      f"t{i % 5}",
      Person("ab"[i % 2] * (i % 3), 1.5 + i / 100),
      ["x" * (i % 3 + 1)] * (i % 3),
      None if i % 4 == 0 else "n",
      i / 10,
      -i / 7,
    )
    for i in range(32)
  ]
  root, spec, arrays, model, variables = _setup(Tagged, recs)

  def loss(params):
    out = _apply(model, {**variables, "params": params}, arrays, 0.5, 0.5)
    return jnp.mean(out.dec.loss / root.num_fields + out.kl / D), out

  (l, out), g = jax.jit(jax.value_and_grad(loss, has_aux=True))(variables["params"])
  assert np.isfinite(float(l))
  chex.assert_tree_all_finite(g)
  assert {"owner.(height)", "tags.[]", "tags#", "nickname", "nickname?"} <= set(out.dec.fields)
  sample = model.apply(
    variables,
    B,
    rngs={"latent": jax.random.key(1), "sample": jax.random.key(2)},
    method=vae.RecordVAE.generate,
  )
  chex.assert_trees_all_equal_shapes(sample, arrays)
  gen = codec.decode(root, spec, jax.device_get(sample))
  assert all(isinstance(r, Tagged) and isinstance(r.owner, Person) for r in gen)
  assert all(isinstance(r.tags, list) and len(r.tags) <= spec.max_items["tags"] for r in gen)


def test_string_groups_bound_the_padding():
  steps = [5, 23, 13, 6, 2, 2, 2]  # number, street, city, postcode, unit, ...
  groups = tree.string_groups(steps)
  assert groups == [[4, 5, 6], [0, 3], [2, 1]]
  assert sorted(i for g in groups for i in g) == list(range(len(steps)))
  for g in groups:
    assert len(g) * max(steps[i] for i in g) <= tree.GROUP_WASTE * sum(steps[i] for i in g)
  assert tree.string_groups(steps, max_waste=1.0) == [[4, 5, 6], [0], [3], [2], [1]]


@pytest.mark.parametrize("steps", [[6, 24, 14, 7, 3, 3, 3], [5, 5], [9, 2, 30, 2]])
def test_packed_scan_plan_runs_every_field_its_own_width_without_padding(steps):
  from alala_jax.nn import string_literal

  order, segments = string_literal._pack_plan(steps)
  assert sorted(order) == list(range(len(steps)))
  assert [steps[i] for i in order] == sorted(steps, reverse=True)
  assert segments[0][0] == 0 and segments[-1][1] == max(steps)
  assert all(a[1] == b[0] for a, b in zip(segments, segments[1:]))  # contiguous in time
  for j, i in enumerate(order):  # field i runs exactly while t < steps[i]
    assert sum(t1 - t0 for t0, t1, n in segments if j < n) == steps[i]
  assert sum(n * (t1 - t0) for t0, t1, n in segments) == sum(steps)  # no padded step


@pytest.mark.parametrize("scan, num_groups", [("grouped", 2), ("packed", 1)])
def test_shared_string_scans_equal_one_scan_per_field(address, scan, num_groups):
  """Same variables, 'grouped' / 'packed' vs 'field' scans: teacher-forced losses, embeddings
  and per-field terms agree; generation keeps every field's layout and max length."""
  import dataclasses

  root, spec, arrays, model, variables = address
  grouped = vae.RecordVAE(root, dataclasses.replace(model.cfg, string_scan=scan))
  groups = grouped.bind(variables).body._groups()
  assert len(groups) >= num_groups and all(len(g) >= 2 for g in groups)
  f = jax.jit(lambda v, a: _apply(model, v, a, 1.0, 1.0))
  g = jax.jit(lambda v, a: _apply(grouped, v, a, 1.0, 1.0))
  ref, got = f(variables, arrays), g(variables, arrays)
  chex.assert_trees_all_close(got.mu, ref.mu, rtol=1e-5, atol=1e-6)
  for name in ("loss", "nats", "chars"):
    chex.assert_trees_all_close(
      getattr(got.dec, name), getattr(ref.dec, name), rtol=1e-5, atol=1e-5
    )
  chex.assert_trees_all_close(got.dec.fields, ref.dec.fields, rtol=1e-5, atol=1e-5)
  sample = grouped.apply(
    variables,
    B,
    rngs={"latent": jax.random.key(1), "sample": jax.random.key(2)},
    method=vae.RecordVAE.generate,
  )
  chex.assert_trees_all_equal_shapes(sample, arrays)
  for c in root.children[:-1]:
    n = np.asarray(sample[c.key]["length"])
    assert n.max() <= dict(spec.max_len)[c.key], c.key
    chars = np.asarray(sample[c.key]["chars"])
    assert np.all(chars[np.arange(chars.shape[1])[None, :] >= n[:, None]] == codec.END_ID)


def test_remat_gru_cells_give_the_same_loss_and_gradients(address):
  """`gru_remat` only changes what the backward pass stores: same parameter tree, same loss,
  same gradients (under scheduled sampling, so both scans and their sampling run). Checked for
  the config default 'full'; both policies are checked in a bare scan below."""
  import dataclasses

  root, spec, arrays, model, variables = address
  rematted = vae.RecordVAE(root, dataclasses.replace(model.cfg, gru_remat="full"))
  k = jax.random.key(0)
  init = jax.jit(lambda a: rematted.init({"params": k, "latent": k, "sample": k}, a, 1.0, 1.0))
  chex.assert_trees_all_equal_shapes(init(arrays), variables)

  def loss(m):
    def f(params):
      out = _apply(m, {**variables, "params": params}, arrays, 0.5, 0.7, seed=3)
      return jnp.mean(out.dec.loss)

    return jax.jit(jax.value_and_grad(f))(variables["params"])

  (l_ref, g_ref), (l_got, g_got) = loss(model), loss(rematted)
  np.testing.assert_allclose(l_got, l_ref, rtol=1e-6)
  chex.assert_trees_all_close(g_got, g_ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("remat", ["dots", "full"])
def test_remat_cell_in_a_scan_matches_the_plain_cell(remat):
  import flax.linen as nn

  from alala_jax.nn import gru

  def scan_loss(cell_cls):
    class Net(nn.Module):
      @nn.compact
      def __call__(self, xs):
        def step(cell, h, x):
          return cell(h, x), h

        h, hs = nn.scan(step, variable_broadcast="params", split_rngs={"params": False})(
          cell_cls(6, name="cell"), jnp.zeros((3, 6)), xs
        )
        return jnp.sum(h**2) + jnp.mean(jnp.tanh(hs))

    return Net()

  xs = jax.random.normal(jax.random.key(1), (5, 3, 4))
  ref_net, net = scan_loss(gru.GRUCell), scan_loss(gru.cell_class(remat))
  params = ref_net.init(jax.random.key(0), xs)
  chex.assert_trees_all_equal_shapes(net.init(jax.random.key(0), xs), params)
  ref = jax.value_and_grad(ref_net.apply)(params, xs)
  got = jax.value_and_grad(net.apply)(params, xs)
  chex.assert_trees_all_close(got, ref, rtol=1e-5, atol=1e-6)


def test_unknown_remat_policy_is_an_error():
  from alala_jax.nn import gru

  with pytest.raises(ValueError, match="gru_remat must be one of"):
    gru.cell_class("some")
