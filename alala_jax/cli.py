"""Helpers shared by the experiment entry points (reading a workdir's saved config)."""

from __future__ import annotations

import json
import os

import ml_collections


def load_workdir_config(workdir: str) -> ml_collections.ConfigDict:
  """The ConfigDict a workdir was trained with (``workdir/config.json``)."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: is {workdir!r} a training workdir?")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))
