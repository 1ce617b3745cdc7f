"""Conditional generation by inference (alala_jax.conditional) on a tiny, untrained record task:
every record satisfies its condition, the importance weights are the fixed fields' likelihood
(explicit per-candidate loop), resampling favours likely candidates, bad conditions name their
column, and the rejection baseline keeps only matching records."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from alala_jax import conditional, latent_priors, refine
from alala_jax import config as base_config
from alala_jax.data import codec
from alala_jax.tasks import records as records_task


@pytest.fixture(scope="module")
def task_state():
  c = base_config.smoke(base_config.base_config())
  c.data.num_synthetic = 300
  c.data.categorical = "city,postcode"
  c.model.latent_dim = 16
  c.model.char_dim = 4
  task = records_task.RecordTask.from_config(c)
  state = task.trainer.create_state(0, task.example_batch(8))
  v = task.variables(state)
  prior = latent_priors.gaussian(jnp.zeros(16), jnp.eye(16))
  return task, state, v, prior


def test_every_record_satisfies_its_condition(task_state):
  task, state, _, prior = task_state
  city = task.spec.categories["city"][3]
  conds = [{"city": city}, {"postcode": task.spec.categories["postcode"][0], "number": "12"}] * 3
  conds.append({"street": "MAIN ST", "unit": ""})
  recs, rep = conditional.sample(
    task, state, conds, jax.random.key(0), prior=prior, candidates=64, chunk=32
  )
  assert len(recs) == len(conds) and rep.groups == 3 and rep.candidates == 64
  for r, c in zip(recs, conds):
    assert all(getattr(r, k) == v for k, v in c.items())
  assert 1.0 <= rep.min_ess <= rep.mean_ess <= 64.0
  # one condition for n records
  recs, rep = conditional.sample(
    task, state, {"city": city}, jax.random.key(1), n=5, prior=prior, candidates=32, chunk=32
  )
  assert [r.city for r in recs] == [city] * 5 and rep.groups == 1


def test_weights_are_the_fixed_fields_likelihood(task_state):
  task, _, v, prior = task_state
  cond = {"city": task.spec.categories["city"][1], "number": "7"}
  z = prior.sample(jax.random.key(2), 20)
  x1, _ = codec.encode(task.root, task.spec, [conditional._template(task.root, cond)])
  got = conditional._score(task, v, x1, ["city", "number"], z, jax.random.key(3), chunk=8)
  # explicit loop: each candidate alone, its own full batch of one
  want = []
  for m in range(20):
    nll = task.field_nll(v, x1, z[m : m + 1], jax.random.key(4))
    want.append(-(float(nll["city"][0]) + float(nll["number"][0])))
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_resampling_favours_the_likely_candidates(task_state):
  task, _, v, prior = task_state
  cond = {"postcode": task.spec.categories["postcode"][2]}
  # an untrained decoder barely depends on z: sharpen the postcode's softmax so it does
  v = jax.tree.map(lambda a: a, v)
  k = [c.key for c in task.root.children].index("postcode")
  logits = v["params"]["body"][f"kids_{k}"]["logits"]
  logits["kernel"] = 30.0 * logits["kernel"]
  z, ess = conditional.infer_latents(
    task, v, cond, 400, jax.random.key(5), prior, candidates=256, chunk=128
  )
  x1, _ = codec.encode(task.root, task.spec, [conditional._template(task.root, cond)])
  score = lambda zz: conditional._score(task, v, x1, ["postcode"], zz, jax.random.key(6), 128)
  prior_z = prior.sample(jax.random.key(7), 256)
  assert float(jnp.mean(score(z[:256]))) > float(jnp.mean(score(prior_z)))
  assert 1.0 <= ess <= 256.0


@pytest.mark.parametrize(
  "cond, needle",
  [
    ({"citty": "X"}, "'citty': unknown column"),
    ({"lat": 44.0, "long": -72.0}, "'lat': float fields cannot be fixed yet"),
    ({"city": "NOWHERE"}, "'city': 'NOWHERE' is not one of the field's"),
    ({"city": 5}, "'city': expected a string, got int"),
    ({"street": "MAIN Ä"}, r"'street': characters \['Ä'\] are outside the model's vocabulary"),
    ({"street": "A" * 500}, "'street': 500 characters, longer than any training value"),
    ({"unit": None}, "'unit': None is only a value of Optional fields"),
  ],
)
def test_bad_conditions_name_the_column(task_state, cond, needle):
  task, _, _, _ = task_state
  with pytest.raises(conditional.ConditionError, match=needle):
    conditional.check_conditions(task.root, task.spec, cond)


def test_rejection_baseline_keeps_only_matching_records(task_state):
  task, state, _, prior = task_state
  city = task.spec.categories["city"][0]
  recs, rep = conditional.rejection_sample(
    task, state, {"city": city}, 3, jax.random.key(8), prior=prior, chunk=64, max_generated=640
  )
  assert all(r.city == city for r in recs) and len(recs) == rep.accepted <= 3
  assert rep.generated <= 640 and 0.0 <= rep.acceptance <= 1.0
  assert dataclasses.is_dataclass(recs[0]) if recs else rep.generated == 640


def test_svi_with_no_fixed_field_fits_q_to_the_prior(task_state):
  """With no field fixed the SVI objective is KL(q || p_gen): from a narrow start, q_lambda
  moves to the prior N(0, I) (a sign error in the entropy or prior term would diverge)."""
  task, _, v, prior = task_state
  svi = dataclasses.replace(conditional.DEFAULT_SVI, steps=300, lr=0.05)
  run = conditional._refine_fn(task.model, svi)
  x1, _ = codec.encode(task.root, task.spec, [conditional._template(task.root, {"city": "A"})])
  xb = jax.tree.map(lambda a: jnp.repeat(jnp.asarray(a), 64, 0), x1)
  fixed = {k: jnp.float32(0.0) for k in conditional.nll_keys(task.root)}
  z0 = 2.0 + 0.1 * jax.random.normal(jax.random.key(5), (64, 16))
  lam, losses = run(v, xb, fixed, (z0, jnp.full_like(z0, np.log(0.01))), prior, jax.random.key(6))
  mean, scale = lam[0], jnp.exp(0.5 * lam[1])
  assert losses[-1] < 0.05 * losses[0]
  np.testing.assert_allclose(np.mean(np.asarray(mean)), 0.0, atol=0.1)
  np.testing.assert_allclose(np.median(np.asarray(scale)), 1.0, atol=0.1)


def test_svi_objective_is_the_fixed_fields_nll_plus_log_q_minus_log_prior(task_state):
  """The first step's loss against an explicit computation with the same noise: the fixed
  field's nll from `task.field_nll`, log q from scipy, log p from scipy's N(0, I) density."""
  task, _, v, prior = task_state
  city = task.spec.categories["city"][2]
  svi = dataclasses.replace(conditional.DEFAULT_SVI, steps=1)
  run = conditional._refine_fn(task.model, svi)
  x1, _ = codec.encode(task.root, task.spec, [conditional._template(task.root, {"city": city})])
  xb = jax.tree.map(lambda a: jnp.repeat(jnp.asarray(a), 8, 0), x1)
  fixed = {k: jnp.float32(k == "city") for k in conditional.nll_keys(task.root)}
  mu = jax.random.normal(jax.random.key(10), (8, 16))
  logvar = jnp.log(0.3 + jax.random.uniform(jax.random.key(11), (8, 16)))
  key = jax.random.key(12)
  _, losses = run(v, xb, fixed, (mu, logvar), prior, key)
  eps, keys = refine._step_inputs(key, (8, 16), 1)
  scale = np.exp(0.5 * np.asarray(logvar))
  z = np.asarray(mu) + scale * np.asarray(eps[0])
  nll = np.asarray(task.field_nll(v, xb, jnp.asarray(z), keys[0])["city"])
  log_q = stats.norm.logpdf(z, np.asarray(mu), scale).sum(-1)
  log_p = stats.multivariate_normal.logpdf(z, np.zeros(16), np.eye(16))
  np.testing.assert_allclose(float(losses[0]), np.sum(nll + log_q - log_p), rtol=1e-4)
  with pytest.raises(ValueError, match="per_example"):
    conditional.refine_latents(
      task, v, x1, ["city"], mu, prior, 1.0, key, dataclasses.replace(svi, mode="reference")
    )


def test_svi_refinement_keeps_conditions_and_lowers_the_fixed_fields_loss(task_state):
  task, state, v, prior = task_state
  city = task.spec.categories["city"][2]
  svi = dataclasses.replace(conditional.DEFAULT_SVI, steps=10)
  recs, rep = conditional.sample(
    task,
    state,
    {"city": city},
    jax.random.key(7),
    n=16,
    prior=prior,
    candidates=8,
    chunk=16,
    svi=svi,
  )
  assert [r.city for r in recs] == [city] * 16 and rep.groups == 1
  keys = conditional.nll_keys(conditional.check_conditions(task.root, task.spec, {"city": city})[0])
  x1, _ = codec.encode(task.root, task.spec, [conditional._template(task.root, {"city": city})])
  z0 = jnp.repeat(prior.sample(jax.random.key(8), 1), 16, 0)  # one candidate for all 16
  z, losses = conditional.refine_latents(
    task, v, x1, keys, z0, prior, 1.0, jax.random.key(9), svi, chunk=16
  )
  chex.assert_shape(z, (16, 16))
  assert losses.shape == (10,) and losses[-1] < losses[0]
  assert len({tuple(np.round(np.asarray(r), 5)) for r in z}) == 16  # each record its own draw
