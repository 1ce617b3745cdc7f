r"""Where the record VAE loses coordinate precision: g(mu(x)) taken apart stage by stage (#13).

  python -m experiments.coord_precision --workdir=/tmp/ttq12k            # a trained workdir
  python -m experiments.coord_precision --workdir=/tmp/rl/vae --rows=2000

Prints, for training and test rows of a trained record model, the whitened squared error of
the float fields (summed over them: the data's own variance is k, 2 for (lat, long)) and the
median error in km at each stage of `alala_jax.analysis.coordinate_precision`: the ScalarTuple
decoder on its encoder's embedding, g(mu(x)) with the Tuple decoder's inputs teacher-forced,
g(mu(x)) as generation decodes, g(z) with z ~ q(z|x), and a ridge readout of mu(x).

Reading: teacher-forced ≈ generation means the Tuple order does not matter; the readout well
above g(mu(x)) means mu(x) carries the coordinates non-linearly and the decoder uses them;
g(z) well above g(mu(x)) means the posterior's noise, i.e. the KL / reconstruction balance
(β, or GECO's constraint level), sets the precision that training and generation see.
"""

from __future__ import annotations

import numpy as np
from absl import app, flags

from alala_jax import runtime

_WORKDIR = flags.DEFINE_string("workdir", None, "A trained record workdir.", required=True)
_ROWS = flags.DEFINE_integer("rows", 2000, "Training and test rows scored (each).")
_RIDGE = flags.DEFINE_float("ridge", 1e-3, "Ridge penalty of the linear readout.")
_SEED = flags.DEFINE_integer("seed", 0, "Key of z ~ q(z|x) and of the decoders' sampling.")


def main(argv):
  del argv
  import jax

  from alala_jax import analysis, cli
  from alala_jax.train import loop

  config = cli.load_workdir_config(_WORKDIR.value)
  state, task = loop.load_trained(_WORKDIR.value, config)
  res = analysis.coordinate_precision(
    task,
    state,
    task.train_arrays,
    task.test_arrays,
    jax.random.key(_SEED.value),
    _ROWS.value,
    _RIDGE.value,
  )
  print(
    f"{_WORKDIR.value}: step {int(state.step)}; float fields {res['fields']} at position "
    f"{res['position']} of {len(res['order'])} in the Tuple decoder's order {res['order']}; "
    f"{res['rows']} training and test rows each; squared error of the whitened floats summed "
    f"over the fields (the data's variance: {len(res['fields'])}); km: median distance"
  )
  print(
    "whitened training rows: mean "
    + np.array2string(res["whitened_train_mean"], precision=3)
    + ", covariance "
    + np.array2string(res["whitened_train_cov"], precision=3).replace("\n", "")
    + " (the whitening fits the data when these are 0 and I)"
  )
  print("| stage | train sq. error | test sq. error | train km | test km |")
  print("|---|---|---|---|---|")
  for name in analysis.COORD_STAGES:
    sq = [f"{np.mean(res[(name, s)]['sq']):.4f}" for s in ("train", "test")]
    km = [f"{np.median(res[(name, s)]['km']):.2f}" for s in ("train", "test")]
    print(f"| {name} | " + " | ".join(sq + km) + " |")


if __name__ == "__main__":
  runtime.setup()
  app.run(main)
