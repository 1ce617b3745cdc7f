r"""Early-training probe of paper 002's hierarchies on binarized MNIST: for each setting, train
`images.py:mnist,VARIANT` with config overrides for --steps and print the mean training loss and
-log p(x | z) over the last 200 steps (the same data order and seed for every setting).

  python -m experiments.hierarchy_probe --variant=lvae -- \
      "" "model.q_dropout=0,model.p_dropout=0" "model.init_scale=0.1" \
      "model.latent_dims=32-16,optim.name=adam,optim.learning_rate=1e-3"

Each positional argument is one setting: comma-separated `key=value` overrides of the config
(values parsed as int, float, bool (true/false), '-'-separated int tuples, else strings; ""
for the config as it is). For questions like "what makes the hierarchy learn slowly at our
budget" (BUILD_NOTES, issue #15).
"""

from __future__ import annotations

import time

from absl import app, flags

from alala_jax import runtime
from experiments.overrides import apply_overrides

_VARIANT = flags.DEFINE_string("variant", "lvae", "lvae | lvae+ | biva")
_STEPS = flags.DEFINE_integer("steps", 1500, "Training steps per setting (batch 48).")


def main(argv):
  import numpy as np

  from alala_jax.tasks.images import ImageTask
  from experiments.configs import images as images_config

  for spec in argv[1:] or [""]:
    c = images_config.get_config(f"mnist,{_VARIANT.value}")
    apply_overrides(c, spec)
    task = ImageTask.from_config(c)
    train = np.asarray(task.data.train, np.float32)
    b = c.train.batch_size
    state = task.trainer.create_state(c.seed, train[:b])
    step = task.trainer.phase_step("train")
    t0, losses, nlls = time.time(), [], []
    n_batches = min(1000, len(train) // b)  # cycles over the first 1000 batches
    for i in range(_STEPS.value):
      state, m, _ = step(state, train[(i % n_batches) * b :][:b])
      if i >= _STEPS.value - 200:
        losses.append(m["loss"])
        nlls.append(m["nll"])
    print(
      f"{_VARIANT.value} [{spec or 'as configured'}]: loss {float(np.mean(losses)):.1f}, "
      f"-log p(x|z) {float(np.mean(nlls)):.1f} over the last 200 of {_STEPS.value} steps "
      f"({time.time() - t0:.0f} s)",
      flush=True,
    )


if __name__ == "__main__":
  runtime.setup()
  app.run(main)
