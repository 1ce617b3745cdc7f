r"""Plots train / test / generated loss and BPC of a workdir (paper 000 Figs 1-4).

python -m experiments.plot_losses --workdir=/tmp/alala [--output=/tmp/alala/losses.png]
"""

import os

from absl import app, flags

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir.", required=True)
_OUTPUT = flags.DEFINE_string("output", None, "PNG path (default: <workdir>/losses.png).")
_TITLE = flags.DEFINE_string("title", "", "Figure title.")


def main(argv):
  del argv
  from alala_jax import viz

  out = _OUTPUT.value or os.path.join(_WORKDIR.value, "losses.png")
  viz.plot_loss_curves(os.path.join(_WORKDIR.value, "metrics.jsonl"), out, _TITLE.value)
  print(f"wrote {out}")


if __name__ == "__main__":
  app.run(main)
