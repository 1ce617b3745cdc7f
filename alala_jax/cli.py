"""Helpers shared by the experiment entry points (reading a workdir's saved config)."""

from __future__ import annotations

import json
import os

import ml_collections


def load_workdir_config(workdir: str) -> ml_collections.ConfigDict:
  """The ConfigDict a workdir was trained with (``workdir/config.json``).

  Evaluation settings added to the library after the run was trained (keys of `eval` the saved
  file lacks) take today's defaults, except the generation prior, which stays the one such a
  run used ('tracked'), so an older workdir can still be evaluated and reports what it did;
  nothing else is filled in, so what was trained is exactly what the file says."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: is {workdir!r} a training workdir?")
  with open(path) as f:
    saved = json.load(f)
  if isinstance(saved.get("eval"), dict):
    from alala_jax import config as config_lib

    defaults = config_lib.base_config().eval.to_dict()
    # a run from before the fitted priors generated from its tracked Gaussian: keep that
    defaults["generation_prior"] = "tracked"
    saved["eval"] = {
      **{k: v for k, v in defaults.items() if k not in saved["eval"]},
      **saved["eval"],
    }
  return ml_collections.ConfigDict(saved)
