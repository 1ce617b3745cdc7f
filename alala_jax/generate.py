"""Sampling records from a trained model and reconstructing records g(mu(x)).

Generation samples z ~ N(moving mean, moving cov) of the sampled training latents (paper 000
Sec 2.4), or z ~ a prior fitted after training (`alala_jax.latent_priors`), and decodes by
sampling from the decoder (Sec 2.1); greedy argmax decoding is an option.
Work is done in fixed-size chunks so each program compiles once.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import jax

from alala_jax import latent_priors
from alala_jax import schema as sc
from alala_jax.data import codec


def generate_records(
  task,
  state,
  n: int,
  key: jax.Array,
  chunk: int = 1000,
  greedy: bool = False,
  as_dict: bool = False,
  prior: latent_priors.Prior | None = None,
  temperature: float = 1.0,
) -> list[Any]:
  """Generates n records (dataclass instances, or dicts if `as_dict`) from the model's own
  generation prior, or from z ~ `prior` (a fitted `alala_jax.latent_priors` prior, its
  spread scaled by `temperature`)."""
  out: list[Any] = []
  variables = task.variables(state)
  i = 0
  while len(out) < n:
    k = jax.random.fold_in(key, i)
    if prior is None:
      arrays = task.generate(variables, k, chunk, greedy)
    else:
      k_z, k_x = jax.random.split(k)
      arrays = task.decode_latents(variables, _sample(prior, k_z, chunk, temperature), k_x, greedy)
    out.extend(codec.decode(task.root, task.spec, jax.device_get(arrays), as_dict))
    i += 1
  return out[:n]


@functools.partial(jax.jit, static_argnums=2)
def _sample(prior: latent_priors.Prior, key: jax.Array, n: int, temperature) -> jax.Array:
  return prior.sample(key, n, temperature)


def reconstruct_records(
  task, state, records: Sequence[Any], key: jax.Array, chunk: int = 1000, greedy: bool = False
) -> tuple[list[Any], codec.EncodeReport]:
  """g(mu(x)) for each record: encode to the posterior mean, decode (sampling by default)."""
  out: list[Any] = []
  report = codec.EncodeReport()
  for i in range(0, len(records), chunk):
    part = list(records[i : i + chunk])
    pad = chunk - len(part)
    arrays, rep = codec.encode(task.root, task.spec, part + [part[-1]] * pad)
    report = report.merge(rep)
    rec = task.reconstruct(task.variables(state), jax.random.fold_in(key, i), arrays, greedy)
    out.extend(codec.decode(task.root, task.spec, jax.device_get(rec))[: len(part)])
  return out, report


def string_key(record: Any, root) -> tuple:
  """A record's string fields as a tuple (exact-copy comparisons ignore continuous floats)."""
  return tuple(
    repr(getattr(record, c.key)) for c in root.children if not isinstance(c, sc.FloatsNode)
  )
