"""One SPMD program for the multiscale step: a `Mesh` with a 'data' and a 'beta' axis.

The level axis of everything per-level — ``params['sigma_net']``, its optimiser moments,
``batch_stats['latent_moments']`` and the augmented latents in ``objective_state`` — is sharded
over 'beta'; a training batch [B, ...] is sharded over ('beta', 'data') in that order, so that
`multiscale.Levels.split`'s reshape to [n_levels, B / n_levels, ...] puts level i's rows on the
devices of its 'beta' slice, split over 'data'. Shared parameters are replicated; jit propagates
these input shardings through the vmapped step and all-reduces the shared gradients, so the
compiled `Programs.train_step` runs unchanged on sharded inputs (computation follows data).

Multi-host: call `jax.distributed.initialize()` first on every host; `make_mesh` then spans
`jax.devices()` of all hosts (README, "Many devices").
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from alala_jax.objectives import multiscale

DATA, BETA = "data", "beta"


def make_mesh(data: int, beta: int, devices=None) -> Mesh:
  """A (data, beta) mesh with Auto axis types over the first data * beta devices."""
  devices = jax.devices() if devices is None else devices
  if data * beta > len(devices):
    raise ValueError(f"a {data} x {beta} mesh needs {data * beta} devices, found "
                     f"{len(devices)} (on CPU: XLA_FLAGS=--xla_force_host_platform_device_count"
                     f"={data * beta})")
  return jax.make_mesh((data, beta), (DATA, BETA), axis_types=(AxisType.Auto,) * 2,
                       devices=devices[:data * beta])


def mesh_from_config(spec: str) -> Mesh | None:
  """`config.train.mesh`: '' (one device) or 'DATA,BETA', e.g. '2,4'."""
  if not spec:
    return None
  try:
    data, beta = (int(x) for x in spec.split(","))
  except ValueError:
    raise ValueError(f"train.mesh must be 'DATA,BETA' (e.g. '2,4'), got {spec!r}") from None
  return make_mesh(data, beta)


def _is_level_leaf(path) -> bool:
  keys = {getattr(k, "key", getattr(k, "name", None)) for k in path}
  return bool(keys & {multiscale.LEVEL_PARAMS, multiscale.LEVEL_STATS})


def state_shardings(state: Any, mesh: Mesh, n_levels: int) -> Any:
  """NamedShardings for a TrainState: level-stacked leaves on 'beta', the rest replicated."""
  if n_levels % mesh.shape[BETA]:
    raise ValueError(f"{n_levels} levels do not split over a 'beta' axis of "
                     f"{mesh.shape[BETA]} devices")

  def spec(path, leaf):
    per_level = (_is_level_leaf(path) or
                 any(getattr(k, "name", None) == "objective_state" for k in path))
    if per_level and np.ndim(leaf) >= 1 and np.shape(leaf)[0] == n_levels:
      return NamedSharding(mesh, P(BETA))
    return NamedSharding(mesh, P())
  return jax.tree_util.tree_map_with_path(spec, state)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """A batch [B, ...]: rows over ('beta', 'data') (see the module docstring)."""
  return NamedSharding(mesh, P((BETA, DATA)))


def shard(state: Any, batch: Any, mesh: Mesh, n_levels: int) -> tuple[Any, Any]:
  """Places a TrainState and a batch on the mesh."""
  b = jax.tree.leaves(batch)[0].shape[0]
  if b % (mesh.shape[BETA] * mesh.shape[DATA]):
    raise ValueError(f"batch {b} does not split over the {mesh.shape[BETA]} x "
                     f"{mesh.shape[DATA]} devices of the mesh")
  return (jax.device_put(state, state_shardings(state, mesh, n_levels)),
          jax.device_put(batch, batch_sharding(mesh)))
