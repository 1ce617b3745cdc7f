"""Coordinate errors of reconstructed records and a ridge readout (issue #13's precision study).

* `km_error`: per-row distance in km between predicted and true (lat, long), equirectangular
  (exact to well under 1 % at the scale of a state);
* `ridge_fit`: least squares with an intercept and an L2 penalty on the slopes, the linear
  readout of how much of the coordinates a representation carries.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

KM_PER_DEGREE = 111.195  # mean Earth radius 6371.0 km x pi / 180


def km_error(pred: np.ndarray, target: np.ndarray, names: Sequence[str]) -> np.ndarray:
  """[B] km between rows of `pred` and `target` [B, k] over their 'lat' and 'long' columns
  (`names` names the k columns); NaN rows if either column is missing."""
  names = list(names)
  if "lat" not in names or "long" not in names:
    return np.full(len(pred), np.nan)
  i, j = names.index("lat"), names.index("long")
  dlat = pred[:, i] - target[:, i]
  dlon = (pred[:, j] - target[:, j]) * np.cos(np.radians(target[:, i]))
  return KM_PER_DEGREE * np.hypot(dlat, dlon)


def ridge_fit(x: np.ndarray, y: np.ndarray, penalty: float) -> tuple[np.ndarray, np.ndarray]:
  """(W [d, k], b [k]) minimising |x W + b - y|^2 / n + penalty |W|^2 (intercept unpenalised)."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  mx, my = x.mean(0), y.mean(0)
  xc, yc = x - mx, y - my
  w = np.linalg.solve(xc.T @ xc + penalty * len(x) * np.eye(x.shape[1]), xc.T @ yc)
  return w, my - mx @ w
