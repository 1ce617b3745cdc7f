"""The oracle as a fixed decoder (models/oracle.py): its likelihood equals the data module's
float64 oracle, the grid 'true NLL' is a lower bound of the IW-NLL and close to a large-k
prior-proposal estimate, only the encoder trains, samples are oracle-formatted."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from alala_jax.data import text as text_data
from alala_jax.metrics import likelihood
from alala_jax.models import base
from alala_jax.models.oracle import OracleDecoderVAE, grid_nll
from alala_jax.models.text import TextVAEConfig


@functools.cache
def _setup():
  data, oracle = text_data.oracle_004(seed=3, num_sequences=140)
  cfg = TextVAEConfig(
    vocab_size=data.vocab_size, latent_dim=2, embed_dim=8, enc_hidden=8, dec_hidden=8
  )
  model = OracleDecoderVAE(cfg, oracle, data.max_tokens - 2)
  x = {k: v[:16] for k, v in data.train.items()}
  return data, oracle, model, x, model.init(jax.random.key(0), x)


def test_likelihood_equals_the_float64_oracle():
  _, oracle, model, x, v = _setup()
  z = oracle.z["train"][:16]
  rec = model.recon(v, x, jnp.asarray(z, jnp.float32), None, key=None)
  want = -text_data.oracle_log_prob(oracle, x["tokens"], z)
  np.testing.assert_allclose(rec.nll, want, rtol=2e-5)
  np.testing.assert_array_equal(model.units(rec), model.num_words)


def test_grid_nll_is_the_marginal_likelihood():
  _, _, model, x, v = _setup()
  true = np.asarray(jax.jit(grid_nll, static_argnums=(2, 3, 4))(v, x, model.num_words, 5.0, 41))
  # finer grid and wider box change nothing: converged quadrature
  finer = np.asarray(jax.jit(grid_nll, static_argnums=(2, 3, 4))(v, x, model.num_words, 6.0, 61))
  np.testing.assert_allclose(true, finer, atol=1e-3)
  # an independent estimate: importance sampling from the prior with many samples
  k = 8000
  z = jax.random.normal(jax.random.key(1), (k, 2))
  words_x = {kk: np.repeat(a[:4], 1, 0) for kk, a in x.items()}
  lp = jax.vmap(
    lambda zz: -model.recon(v, words_x, jnp.broadcast_to(zz, (4, 2)), None, key=None).nll
  )(z)
  prior_is = -(jax.nn.logsumexp(lp, 0) - np.log(k))
  np.testing.assert_allclose(true[:4], prior_is, atol=0.08)
  # the amortized bound (an upper bound in expectation) with an untrained encoder: above the
  # truth on average, and close to it (the untrained posterior is near the prior)
  iw = np.asarray(likelihood.iw_nll(model, v, x, jax.random.key(2), num_samples=200, chunk=50))
  assert np.mean(iw) >= np.mean(true) - 0.02
  assert np.mean(iw) - np.mean(true) < 1.0


def test_only_the_encoder_is_a_parameter_and_samples_are_well_formed():
  data, _, model, x, v = _setup()
  assert set(v["params"]) == {"encoder", "encoder_scale"}
  assert set(jax.tree.leaves(model.partition(v["params"]))) == {base.ENCODER}
  out = model.decode(v, jnp.zeros((5, 2)), jax.random.key(0))
  tokens = np.asarray(out["tokens"])
  assert tokens.shape == (5, data.max_tokens)
  assert np.all(tokens[:, 0] == text_data.BOS) and np.all(tokens[:, -1] == text_data.EOS)
  assert np.all(tokens[:, 1:-1] >= len(text_data.SPECIALS))
