"""One SPMD program for the multiscale step: a `Mesh` with a 'data' and a 'beta' axis.

The level axis of everything per-level — the entries the model declares per level
(`VAEModel.level_collections`: the record VAE's ``params['sigma_net']`` and
``batch_stats['latent_moments']``), their optimiser moments, and every objective state (the
augmented latents) — is sharded over 'beta'; a training batch [B, ...] is sharded over ('beta', 'data') in that order, so that
`multiscale.Levels.split`'s reshape to [n_levels, B / n_levels, ...] puts level i's rows on the
devices of its 'beta' slice, split over 'data'. Shared parameters are replicated; jit propagates
these input shardings through the vmapped step and all-reduces the shared gradients, so the
compiled `train.step.train_step` runs unchanged on sharded inputs (computation follows data).

Multi-host: call `jax.distributed.initialize()` first on every host; `make_mesh` then spans
`jax.devices()` of all hosts (README, "Many devices").
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA, BETA = "data", "beta"


def make_mesh(data: int, beta: int, devices=None) -> Mesh:
  """A (data, beta) mesh with Auto axis types over the first data * beta devices."""
  devices = jax.devices() if devices is None else devices
  if data * beta > len(devices):
    raise ValueError(
      f"a {data} x {beta} mesh needs {data * beta} devices, found "
      f"{len(devices)} (on CPU: XLA_FLAGS=--xla_force_host_platform_device_count"
      f"={data * beta})"
    )
  return jax.make_mesh(
    (data, beta), (DATA, BETA), axis_types=(AxisType.Auto,) * 2, devices=devices[: data * beta]
  )


def mesh_from_config(spec: str) -> Mesh | None:
  """`config.train.mesh`: '' (one device) or 'DATA,BETA', e.g. '2,4'."""
  if not spec:
    return None
  try:
    data, beta = (int(x) for x in spec.split(","))
  except ValueError:
    raise ValueError(f"train.mesh must be 'DATA,BETA' (e.g. '2,4'), got {spec!r}") from None
  return make_mesh(data, beta)


def _key_name(k) -> Any:
  return getattr(k, "key", getattr(k, "name", None))


def state_shardings(state: Any, mesh: Mesh, setup: Any) -> Any:
  """NamedShardings for a TrainState: the leaves on the level axis on 'beta', the rest
  replicated. The level axis is read from declarations, never from shapes: the entries the
  model declares per level (`level_collections`) wherever they occur (params, their optimiser
  moments, EMA params, model state) and every leaf of the objective state."""
  n_levels = setup.levels.n
  if n_levels % mesh.shape[BETA]:
    raise ValueError(
      f"{n_levels} levels do not split over a 'beta' axis of {mesh.shape[BETA]} devices"
    )
  declared = {name for names in setup.model.level_collections.values() for name in names}

  def spec(path, leaf):
    names = [_key_name(k) for k in path]
    per_level = names[0] == "objective_state" or bool(declared & set(names[1:]))
    if per_level:
      if np.ndim(leaf) < 1 or np.shape(leaf)[0] != n_levels:
        raise ValueError(
          f"state leaf {jax.tree_util.keystr(path)} is declared per level but "
          f"has shape {np.shape(leaf)}, not [{n_levels}, ...]"
        )
      return NamedSharding(mesh, P(BETA))
    return NamedSharding(mesh, P())

  return jax.tree_util.tree_map_with_path(spec, state)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """A batch [B, ...]: rows over ('beta', 'data') (see the module docstring)."""
  return NamedSharding(mesh, P((BETA, DATA)))


def shard(state: Any, batch: Any, mesh: Mesh, setup: Any) -> tuple[Any, Any]:
  """Places a TrainState and a batch on the mesh."""
  b = jax.tree.leaves(batch)[0].shape[0]
  if b % (mesh.shape[BETA] * mesh.shape[DATA]):
    raise ValueError(
      f"batch {b} does not split over the {mesh.shape[BETA]} x "
      f"{mesh.shape[DATA]} devices of the mesh"
    )
  return (
    jax.device_put(state, state_shardings(state, mesh, setup)),
    jax.device_put(batch, batch_sharding(mesh)),
  )
